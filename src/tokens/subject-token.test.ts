import { DEFAULT_CLOCK_SKEW } from '../jwt';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { ManualClock } from '../core/clock';
import { InvalidGrant, InvalidRequest, OAuthError, TemporarilyUnavailable } from './errors';
import {
  checkRequestedTokenType,
  IdentityProviders,
  identityProviderSchema,
  identityProvidersSchema,
  subjectTokenKind,
  TOKEN_TYPE,
  type IdentityProviderInput,
} from './subject-token';

const ISSUER = 'https://login.example.com';
const AUDIENCE = 'writ-client';
const T0 = new Date('2026-11-27T12:00:00Z');
const epoch = (d: Date) => Math.floor(d.getTime() / 1000);

interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: string, kid: string): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), alg, use: 'sig', kid } };
}

let es256: KeyPair;
let rs256: KeyPair;
let es384: KeyPair;
let stranger: KeyPair; // same kid as es256, not in the JWKS
let dir: string;

beforeAll(async () => {
  [es256, rs256, es384, stranger] = await Promise.all([keyPair('ES256', 'k1'), keyPair('RS256', 'r1'), keyPair('ES384', 'k384'), keyPair('ES256', 'k1')]);
  dir = mkdtempSync(join(tmpdir(), 'writ-idp-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [es256.jwk, rs256.jwk, es384.jwk] }));
});

interface TokenOptions {
  key?: KeyPair;
  alg?: string;
  kid?: string | null;
  iss?: string;
  aud?: string | string[];
  sub?: string | null;
  /** Seconds relative to T0; null leaves the claim out. */
  exp?: number | null;
  nbf?: number;
  claims?: JWTPayload;
}

function idToken(o: TokenOptions = {}): Promise<string> {
  const key = o.key ?? es256;
  const alg = o.alg ?? (key.jwk.alg as string);
  const kid = o.kid === undefined ? key.jwk.kid : (o.kid ?? undefined);
  const claims: JWTPayload = { iss: o.iss ?? ISSUER, aud: o.aud ?? AUDIENCE, iat: epoch(T0), ...o.claims };
  if (o.sub !== null) claims.sub = o.sub ?? 'alice@example.com';
  if (o.exp !== null) claims.exp = epoch(T0) + (o.exp ?? 600);
  if (o.nbf !== undefined) claims.nbf = epoch(T0) + o.nbf;
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) }).sign(key.privateKey);
}

const provider = (over: Partial<IdentityProviderInput> = {}): IdentityProviderInput => ({ issuer: ISSUER, jwks_file: join(dir, 'jwks.json'), audience: AUDIENCE, ...over }) as IdentityProviderInput;

function providers(configs: IdentityProviderInput[] = [provider()], clock = new ManualClock(T0), fetchImpl?: typeof fetch): IdentityProviders {
  return new IdentityProviders(identityProvidersSchema.parse(configs), { clock, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
}

async function refusal(promise: Promise<unknown>): Promise<InvalidGrant> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidGrant);
    expect((err as OAuthError).type).toBe('invalid_grant');
    expect((err as OAuthError).status).toBe(400);
    expect((err as OAuthError).message).toMatch(/^subject_token: /);
    return err as InvalidGrant;
  }
  throw new Error('expected the subject token to be refused');
}

describe('identity_providers configuration', () => {
  it('applies the defaults and turns snake_case into camelCase', () => {
    expect(identityProviderSchema.parse({ issuer: ISSUER, jwks_uri: 'https://login.example.com/keys', audience: AUDIENCE })).toEqual({
      issuer: ISSUER,
      jwksUri: 'https://login.example.com/keys',
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256'],
      clockSkew: 60,
      groupsClaim: 'groups',
    });
    expect(
      identityProviderSchema.parse({ issuer: ISSUER, jwks_file: 'idp.json', audience: AUDIENCE, algorithms: ['PS256'], clock_skew: '2m', groups_claim: 'realm_access.roles', risk_claim: 'risk_level' }),
    ).toEqual({ issuer: ISSUER, jwksFile: 'idp.json', audience: AUDIENCE, algorithms: ['PS256'], clockSkew: 120, groupsClaim: 'realm_access.roles', riskClaim: 'risk_level' });
  });

  it.each(['HS256', 'none'])('RFC 8725 §3.1: refuses %s in algorithms', (alg) => {
    const r = identityProviderSchema.safeParse(provider({ algorithms: [alg as never] }));
    expect(r.error?.issues[0]?.path).toEqual(['algorithms', 0]);
  });

  it('refuses both or neither key locations, unknown keys, and the same issuer twice', () => {
    expect(identityProviderSchema.safeParse(provider({ jwks_uri: 'https://login.example.com/keys' })).error?.issues[0]?.message).toMatch(/not both/);
    expect(identityProviderSchema.safeParse({ issuer: ISSUER, audience: AUDIENCE }).error?.issues[0]?.message).toMatch(/set one of jwks_file or jwks_uri/);
    expect(identityProviderSchema.safeParse({ ...provider(), client_secret: 'x' }).success).toBe(false);
    expect(identityProvidersSchema.safeParse([provider(), provider()]).error?.issues[0]?.message).toMatch(/more than once/);
  });

  it('OpenID Connect Discovery: discovery: true stands for the key location, alone, on an issuer keys may be fetched from', () => {
    const discovered = identityProviderSchema.parse({ issuer: 'https://login.example.com', discovery: true, audience: AUDIENCE });
    expect(discovered).toMatchObject({ issuer: 'https://login.example.com', discovery: true });
    expect(discovered).not.toHaveProperty('jwksUri');
    expect(identityProviderSchema.safeParse({ issuer: 'https://login.example.com', discovery: true, jwks_uri: 'https://login.example.com/keys', audience: AUDIENCE }).error?.issues[0]).toMatchObject({ path: ['discovery'], message: expect.stringMatching(/set no jwks_file or jwks_uri with it/) });
    expect(identityProviderSchema.safeParse({ issuer: 'http://login.example.com', discovery: true, audience: AUDIENCE }).error?.issues[0]).toMatchObject({ path: ['issuer'], message: expect.stringMatching(/must be an https:\/\/ URL/) });
    expect(identityProviderSchema.safeParse({ issuer: 'http://127.0.0.1:9400', discovery: true, audience: AUDIENCE }).success).toBe(true);
    expect(identityProviderSchema.safeParse({ issuer: 'https://login.example.com', discovery: false, audience: AUDIENCE }).error?.issues[0]?.message).toMatch(/or discovery: true/);
  });

  it('names the provider when its jwks_file is unusable', () => {
    expect(() => providers([provider({ jwks_file: join(dir, 'missing.json') })])).toThrow(/^identity provider https:\/\/login\.example\.com: jwks_file cannot read/);
  });
});

describe('RFC 8693 §2.1 subject_token_type and requested_token_type', () => {
  it('id_token and jwt are a user; access_token is chaining', () => {
    expect(subjectTokenKind(TOKEN_TYPE.ID_TOKEN)).toBe('user');
    expect(subjectTokenKind('urn:ietf:params:oauth:token-type:jwt')).toBe('user');
    expect(subjectTokenKind('urn:ietf:params:oauth:token-type:access_token')).toBe('chain');
  });

  it('refuses a missing or unsupported type with invalid_request', () => {
    expect(() => subjectTokenKind(undefined)).toThrow(InvalidRequest);
    expect(() => subjectTokenKind('urn:ietf:params:oauth:token-type:saml2')).toThrow(/subject_token_type "urn:ietf:params:oauth:token-type:saml2" is not supported/);
  });

  it('requested_token_type may only be access_token', () => {
    expect(() => checkRequestedTokenType(undefined)).not.toThrow();
    expect(() => checkRequestedTokenType(TOKEN_TYPE.ACCESS_TOKEN)).not.toThrow();
    expect(() => checkRequestedTokenType(TOKEN_TYPE.ID_TOKEN)).toThrow(InvalidRequest);
  });
});

describe('subject token verification (RFC 7519 §4.1, OpenID Connect Core §3.1.3.7)', () => {
  it('returns the user: sub, iss, sid, exp, groups and risk', async () => {
    const idps = providers([provider({ risk_claim: 'risk' })]);
    const user = await idps.verify(await idToken({ claims: { sid: 'session-1', groups: ['eng', 'oncall', 'eng'], risk: 'low', email: 'a@example.com' } }));
    expect(user).toMatchObject({ sub: 'alice@example.com', iss: ISSUER, sid: 'session-1', exp: new Date(T0.getTime() + 600_000), groups: ['eng', 'oncall'], risk: 'low' });
    expect(user.claims.email).toBe('a@example.com');
  });

  it('has no groups, sid or risk when the claims are absent', async () => {
    const user = await providers().verify(await idToken({ claims: { risk: 'high' } }));
    expect(user.groups).toEqual([]);
    expect(user).not.toHaveProperty('sid');
    expect(user).not.toHaveProperty('risk'); // risk_claim not configured
  });

  it('reads groups from the configured claim, into objects with dots', async () => {
    const idps = providers([provider({ groups_claim: 'realm_access.roles' })]);
    expect((await idps.verify(await idToken({ claims: { realm_access: { roles: ['admin'] } } }))).groups).toEqual(['admin']);
    expect((await providers().verify(await idToken({ claims: { groups: 'eng' } }))).groups).toEqual(['eng']);
  });

  it('refuses a malformed groups, sid or risk claim rather than ignoring it', async () => {
    expect((await refusal(providers().verify(await idToken({ claims: { groups: [1, 'eng'] } })))).message).toMatch(/"groups" claim \(the user's groups\) must be an array of strings/);
    expect((await refusal(providers().verify(await idToken({ claims: { sid: 7 } })))).message).toMatch(/"sid" claim must be a non-empty string/);
    expect((await refusal(providers([provider({ risk_claim: 'risk' })]).verify(await idToken({ claims: { risk: 3 } })))).message).toMatch(/risk level/);
  });

  it('refuses a control character in a claim the broker keeps or looks users up by, naming the claim', async () => {
    const idps = providers([provider({ risk_claim: 'risk', groups_claim: 'realm_access.roles' })]);
    const cases: [string, TokenOptions][] = [
      ['"sub"', { sub: 'alice\u0000' }],
      ['"sid"', { claims: { sid: 'session\u0001' } }],
      ['"email"', { claims: { email: 'alice\u0000@example.com' } }],
      ['"realm_access.roles"', { claims: { realm_access: { roles: ['eng', 'ops\n'] } } }],
      ['"risk"', { claims: { risk: 'low\u007f' } }],
    ];
    for (const [claim, options] of cases) {
      expect((await refusal(idps.verify(await idToken(options)))).message).toBe(`subject_token: the token's ${claim} claim contains a control character`);
    }
  });

  it('refuses NUL or an unpaired surrogate in any claim (the audit trail cannot store it), and allows line breaks in other claims', async () => {
    expect((await refusal(providers().verify(await idToken({ claims: { address: { formatted: 'Main St\u0000' } } })))).message).toBe('subject_token: the token\'s claim "address.formatted" contains a control character');
    expect((await refusal(providers().verify(await idToken({ claims: { name: 'A\ud800' } })))).message).toMatch(/"name" contains an unpaired UTF-16 surrogate/);
    expect((await providers().verify(await idToken({ claims: { address: { formatted: 'Main St 1\r\nTown' } } }))).sub).toBe('alice@example.com');
  });

  it('verifies RS256 tokens too', async () => {
    expect((await providers().verify(await idToken({ key: rs256 }))).sub).toBe('alice@example.com');
  });

  it('§4.1.4 refuses an expired token (past exp and the clock skew)', async () => {
    const clock = new ManualClock(T0);
    const idps = providers([provider()], clock);
    const token = await idToken({ exp: 300 });
    clock.advance(300 + 59); // within the 60 s clock skew: still accepted
    await expect(idps.verify(token)).resolves.toMatchObject({ sub: 'alice@example.com' });
    clock.advance(1);
    expect((await refusal(idps.verify(token))).message).toBe('subject_token: the token has expired ("exp", RFC 7519 §4.1.4)');
  });

  it('§4.1.4 refuses a token without exp', async () => {
    expect((await refusal(providers().verify(await idToken({ exp: null })))).message).toMatch(/no "exp" claim/);
  });

  it('§4.1.5 refuses a token before its nbf', async () => {
    expect((await refusal(providers().verify(await idToken({ nbf: 120 })))).message).toMatch(/not valid yet \("nbf"/);
  });

  it('§4.1.3 refuses a token for another audience', async () => {
    const err = await refusal(providers().verify(await idToken({ aud: 'another-client' })));
    expect(err.message).toBe('subject_token: the token\'s audience ("aud") does not include "writ-client" (RFC 7519 §4.1.3)');
    await expect(providers().verify(await idToken({ aud: ['other', AUDIENCE] }))).resolves.toMatchObject({ sub: 'alice@example.com' });
  });

  it('§4.1.1 refuses an issuer that is not a configured identity provider', async () => {
    const err = await refusal(providers().verify(await idToken({ iss: 'https://evil.example' })));
    expect(err.message).toBe('subject_token: the token\'s issuer "https://evil.example" is not a configured identity provider (RFC 7519 §4.1.1)');
    expect((await refusal(providers().verify(await idToken({ iss: `${ISSUER}/` })))).message).toMatch(/is not a configured identity provider/);
  });

  it('§4.1.2 refuses a token without sub', async () => {
    expect((await refusal(providers().verify(await idToken({ sub: null })))).message).toMatch(/no "sub" claim/);
  });

  it('refuses what is not a JWT, and a missing token with invalid_request', async () => {
    expect((await refusal(providers().verify('not.a.jwt'))).message).toMatch(/not a JWT in JWS Compact Serialization/);
    await expect(providers().verify('')).rejects.toBeInstanceOf(InvalidRequest);
    expect((await refusal(providers().verify('a'.repeat(40 * 1024)))).message).toMatch(/longer than/);
  });
});

describe('subject token signatures (RFC 7515, RFC 8725 §2.1 and §3.1 algorithm verification)', () => {
  it('refuses an unsigned token (alg "none")', async () => {
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const none = `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: ISSUER, aud: AUDIENCE, sub: 'alice@example.com', exp: epoch(T0) + 600 })}.`;
    expect((await refusal(providers().verify(none))).message).toBe('subject_token: the token is unsigned (algorithm "none"), which is never accepted (RFC 8725 §3.1)');
  });

  it('refuses an HS256 token whose secret is the provider\'s public key (algorithm confusion)', async () => {
    const publicPem = createPublicKey(await crypto.subtle.exportKey('spki', rs256.publicKey).then((der) => ({ key: Buffer.from(der), format: 'der' as const, type: 'spki' as const })))
      .export({ format: 'pem', type: 'spki' }) as string;
    for (const secret of [Buffer.from(publicPem), Buffer.from(JSON.stringify(rs256.jwk))]) {
      const forged = await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'admin', exp: epoch(T0) + 600 }).setProtectedHeader({ alg: 'HS256', kid: 'r1' }).sign(new Uint8Array(secret));
      const err = await refusal(providers([provider({ algorithms: ['RS256'] })]).verify(forged));
      expect(err.message).toMatch(/symmetric algorithm "HS256"; only the provider's asymmetric keys are accepted/);
    }
  });

  it('refuses a token signed by a key that is not in the provider\'s JWKS (same kid)', async () => {
    const err = await refusal(providers().verify(await idToken({ key: stranger })));
    expect(err.message).toBe("subject_token: the token's signature does not verify with the issuer's keys (bad signature)");
  });

  it('refuses a token signed by a key that is not in the JWKS (unknown kid, and no kid)', async () => {
    expect((await refusal(providers().verify(await idToken({ key: stranger, kid: 'k9' })))).message).toMatch(/no key of the issuer matches the token \(key ID "k9"/);
    expect((await refusal(providers().verify(await idToken({ key: stranger, kid: null })))).message).toMatch(/bad signature/);
  });

  it('refuses a payload altered after signing', async () => {
    const [h, , s] = (await idToken()).split('.');
    const p = base64url.encode(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'root', exp: epoch(T0) + 600 }));
    expect((await refusal(providers().verify(`${h}.${p}.${s}`))).message).toMatch(/bad signature/);
  });

  it('refuses an asymmetric algorithm the provider does not allow', async () => {
    const err = await refusal(providers([provider({ algorithms: ['ES256'] })]).verify(await idToken({ key: es384 })));
    expect(err.message).toBe('subject_token: the token\'s algorithm "ES384" is not allowed for this identity provider (allowed: ES256)');
  });
});

describe('subject token keys from jwks_uri (the attestor\'s RemoteJwks)', () => {
  it('fetches the provider\'s keys with the injected fetch', async () => {
    const fetchImpl = jest.fn(async () => new Response(JSON.stringify({ keys: [es256.jwk] }), { headers: { 'content-type': 'application/json' } }));
    const idps = providers([provider({ jwks_file: undefined, jwks_uri: 'https://login.example.com/keys' })], new ManualClock(T0), fetchImpl as unknown as typeof fetch);
    await expect(idps.verify(await idToken())).resolves.toMatchObject({ sub: 'alice@example.com' });
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it('answers temporarily_unavailable (503) when the keys cannot be fetched', async () => {
    const fetchImpl = jest.fn(async () => new Response('down', { status: 503 }));
    const idps = providers([provider({ jwks_file: undefined, jwks_uri: 'https://login.example.com/keys' })], new ManualClock(T0), fetchImpl as unknown as typeof fetch);
    const err = await idps.verify(await idToken()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TemporarilyUnavailable);
    expect((err as OAuthError).status).toBe(503);
  });
});

describe('subject tokens seen again (an agent exchanges one ID token for many tasks)', () => {
  const remote = (fetchImpl: jest.Mock, clock: ManualClock) =>
    providers([provider({ jwks_file: undefined, jwks_uri: 'https://login.example.com/keys' })], clock, fetchImpl as unknown as typeof fetch);
  const jwks = (...keys: KeyPair[]) => new Response(JSON.stringify({ keys: keys.map((k) => k.jwk) }), { headers: { 'content-type': 'application/json' } });

  it('still refuses a remembered token once it has expired', async () => {
    const clock = new ManualClock(T0);
    const idps = providers([provider()], clock);
    const token = await idToken({ exp: 60 });
    await expect(idps.verify(token)).resolves.toMatchObject({ sub: 'alice@example.com' });
    await expect(idps.verify(token)).resolves.toMatchObject({ sub: 'alice@example.com' });
    clock.advance(60 + DEFAULT_CLOCK_SKEW - 1); // exp is at 60 s; the provider's clock skew is tolerated, not more
    await expect(idps.verify(token)).resolves.toMatchObject({ sub: 'alice@example.com' });
    clock.advance(1);
    expect((await refusal(idps.verify(token))).message).toMatch(/expired/);
  });

  it('refuses a remembered token once the provider no longer publishes its key', async () => {
    const clock = new ManualClock(T0);
    const fetchImpl = jest.fn(async () => jwks(es256));
    const idps = remote(fetchImpl, clock);
    const token = await idToken({ exp: 3600 });
    await expect(idps.verify(token)).resolves.toMatchObject({ sub: 'alice@example.com' });
    fetchImpl.mockImplementation(async () => jwks(es384)); // the provider rotated es256 out
    clock.advance(601); // past the keys' maximum age: they are fetched again
    await refusal(idps.verify(token));
  });

  it('does not trust a remembered token while the provider\'s keys cannot be refreshed (503)', async () => {
    const clock = new ManualClock(T0);
    const fetchImpl = jest.fn(async () => jwks(es256));
    const idps = remote(fetchImpl, clock);
    const token = await idToken({ exp: 3600 });
    await idps.verify(token);
    fetchImpl.mockImplementation(async () => new Response('down', { status: 503 }));
    clock.advance(601);
    expect(await idps.verify(token).catch((e: unknown) => e)).toBeInstanceOf(TemporarilyUnavailable);
  });
});
