/**
 * A real OpenID Provider for tests: `writ dev`'s (panva's `oidc-provider`) on a loopback port,
 * with test users, discovery, a JWKS, the authorization code flow with PKCE for ID tokens, and
 * key rotation. Writ trusts it as it would trust a production provider: by its issuer with
 * `discovery: true`.
 *
 * ```ts
 * const op = await startTestOp({ alice: ['eng'] });
 * const config = { WRIT_IDENTITY_PROVIDERS: JSON.stringify([op.trusted]) };
 * const idToken = await op.idToken('alice');
 * ```
 */
import { randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { fetchIdToken } from '../../src/dev/id-token';
import { newSigningKey, type DevOpKeys } from '../../src/dev/keys';
import { DEV_CLIENT_ID, startDevOp, type OidcProviderClass } from '../../src/dev/op';
import type { DevUser } from '../../src/dev/users';

// oidc-provider is ESM-only: jest loads it with a native import (dist uses require(esm)); its
// Node 20 notice is dropped as loadOidcProvider drops it.
export async function importOidcProvider(): Promise<OidcProviderClass> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime.')) return;
    warn(...args);
  };
  try {
    return ((await (0, eval)('import("oidc-provider")')) as { Provider: OidcProviderClass }).Provider;
  } finally {
    console.warn = warn;
  }
}

/** A TCP port free on 127.0.0.1 now (writ dev's own helper). */
export { freePort } from '../../src/dev/op';

export interface TestOp {
  /** `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  /** Its entry for `identity_providers` (audience: the dev client's id, as in its ID tokens). */
  readonly trusted: { issuer: string; discovery: true; audience: string; algorithms: string[] };
  /** The private JWKs it signs with (the first) and publishes now. */
  readonly signing: readonly JWK[];
  /** An ID token for `user`, through the provider's authorization code flow with PKCE. */
  idToken(user: string): Promise<string>;
  /**
   * Rotates: a new key signs from now on; `keepPrevious` keeps the previous keys published
   * (the overlap a provider gives tokens already issued), else only the new key is.
   */
  rotate(opts: { keepPrevious: boolean }): Promise<JWK>;
  /**
   * A token signed with one of the provider's own keys but with no `kid` in its header, as
   * some providers send them (RFC 7515 §4.1.4: `kid` is optional).
   */
  kidlessToken(user: string, key: JWK, claims?: Record<string, unknown>): Promise<string>;  // claims may override iss, aud, sub
  close(): Promise<void>;
}

/** Starts the provider with users (name → groups); resolves once it listens. */
export async function startTestOp(users: Record<string, string[]>): Promise<TestOp> {
  const accounts = new Map<string, DevUser>(Object.entries(users).map(([name, groups]) => [name, { name, groups }]));
  const cookies = [randomBytes(32).toString('base64url')];
  let keys: DevOpKeys = { signing: [await newSigningKey()], cookies };
  const op = await startDevOp({ host: '127.0.0.1', port: 0, users: accounts, keys, Provider: await importOidcProvider() });
  return {
    issuer: op.issuer,
    trusted: { issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] },
    get signing() {
      return keys.signing;
    },
    idToken: (user) => fetchIdToken({ issuer: op.issuer, username: user }),
    rotate: async ({ keepPrevious }) => {
      const next = await newSigningKey();
      keys = { signing: keepPrevious ? [next, ...keys.signing] : [next], cookies };
      op.rotateKeys(keys);
      return next;
    },
    kidlessToken: async (user, key, claims = {}) => {
      const { kid: _kid, ...material } = key;
      const groups = accounts.get(user)?.groups ?? [];
      return new SignJWT({ groups: [...groups], iss: op.issuer, aud: DEV_CLIENT_ID, sub: user, ...claims })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(await importJWK(material, 'ES256'));
    },
    close: () => op.close(),
  };
}
