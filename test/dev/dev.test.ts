/**
 * `writ dev`: its OpenID Provider (oidc-provider) serves discovery and an ES256 JWKS, the
 * authorization code flow with PKCE of `writ dev id-token` yields an ID token that Writ's
 * subject-token verification accepts with the user's groups and sid, the broker started beside
 * it trusts that provider, and NODE_ENV=production is refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { systemClock } from '../../src/core/clock';
import { fetchIdToken, IdTokenFlowError } from '../../src/dev/id-token';
import type { OidcProviderClass } from '../../src/dev/op';
import { DevRefused, refuseProduction, startDev, type Dev } from '../../src/dev/start';
import { IdentityProviders, identityProvidersSchema } from '../../src/tokens/subject-token';

// oidc-provider is ESM-only: jest loads it with a native import (dist uses require(esm)).
// Its Node 20 notice is dropped as loadOidcProvider drops it.
const importProvider = async (): Promise<OidcProviderClass> => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    return ((await (0, eval)('import("oidc-provider")')) as { Provider: OidcProviderClass }).Provider;
  } finally {
    warn.mockRestore();
  }
};

let dir: string;
let dev: Dev;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-dev-'));
  dev = await startDev({ dir: join(dir, 'dev'), port: 0, opsPort: 0, opPort: 0, env: {}, logger: pino({ level: 'silent' }), Provider: await importProvider() });
});
afterAll(async () => {
  await dev?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the provider serves discovery naming itself and an ES256 JWKS of public keys only', async () => {
  const meta = (await (await fetch(`${dev.op.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  expect(meta.issuer).toBe(dev.op.issuer);
  expect(meta.id_token_signing_alg_values_supported).toEqual(['ES256']);
  expect(meta.code_challenge_methods_supported).toEqual(['S256']);
  expect(meta.claims_supported).toEqual(expect.arrayContaining(['groups', 'sid']));
  const jwks = (await (await fetch(meta.jwks_uri as string)).json()) as { keys: Record<string, unknown>[] };
  expect(jwks.keys.length).toBeGreaterThan(0);
  for (const key of jwks.keys) {
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(key).not.toHaveProperty('d');
    expect(typeof key.kid).toBe('string');
  }
});

test("id-token's code flow yields an ID token Writ's subject-token verification accepts, with groups and sid", async () => {
  const token = await fetchIdToken({ issuer: dev.op.issuer, username: 'bob' });
  const meta = (await (await fetch(`${dev.op.issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
  const idps = new IdentityProviders(identityProvidersSchema.parse([{ issuer: dev.op.issuer, jwks_uri: meta.jwks_uri, audience: 'writ-dev', algorithms: ['ES256'] }]), { clock: systemClock });
  const user = await idps.verify(token);
  expect(user).toMatchObject({ sub: 'bob', iss: dev.op.issuer, groups: ['eng', 'maintainers'] });
  expect(typeof user.sid).toBe('string');
  const carol = await idps.verify(await fetchIdToken({ issuer: dev.op.issuer, username: 'carol' }));
  expect(carol.groups).toEqual([]);
});

test('a user not in the users file gets no token', async () => {
  await expect(fetchIdToken({ issuer: dev.op.issuer, username: 'mallory' })).rejects.toThrow(new IdTokenFlowError('login failed: no user "mallory" in the users file'));
});

test('the broker beside it is ready, with its policy, CA and admin token in the dev directory', async () => {
  const ready = await fetch(`${dev.broker.opsUrl}/readyz`);
  expect(ready.status).toBe(200);
  expect(readFileSync(dev.files.policy, 'utf8')).toContain('maintainers-write-internal');
  expect(dev.exports.WRIT_CA).toBe(join(dir, 'dev', 'certs', 'ca.crt'));
  expect(dev.exports.WRIT_ADMIN_TOKEN).toBe(readFileSync(dev.files.adminToken, 'utf8').trim());
});

test('NODE_ENV=production is refused before anything starts', async () => {
  expect(() => refuseProduction({ NODE_ENV: 'production' })).toThrow(DevRefused);
  expect(() => refuseProduction({ NODE_ENV: 'development' })).not.toThrow();
  await expect(startDev({ dir: join(dir, 'refused'), port: 0, opsPort: 0, opPort: 0, env: { NODE_ENV: 'Production' } })).rejects.toThrow(/NODE_ENV=production/);
  expect(() => readFileSync(join(dir, 'refused', 'users.yaml'))).toThrow();
});
