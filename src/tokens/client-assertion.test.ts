import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { ManualClock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import { hasClientAssertion, JWT_SPIFFE_ASSERTION_TYPE, verifyClientAssertion } from './client-assertion';
import { OAuthError } from './errors';

const ISSUER = 'https://writ.test';
const SPIFFE_ID = 'spiffe://writ.test/agent/a';
const clock = new ManualClock(Date.parse('2026-12-01T12:00:00Z'));
const now = () => Math.floor(clock.now().getTime() / 1000);
const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const bundle = { trustDomain: 'writ.test', sequence: 1, x509Authorities: [], jwtAuthorities: [{ kid: 'k1', publicJwk: pair.publicKey.export({ format: 'jwk' }) }] } as unknown as TrustBundle;

const svid = (over: { sub?: string; aud?: string | string[]; exp?: number; jti?: string | null; typ?: string; key?: KeyObject } = {}) => {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: over.typ ?? 'JWT' }).setSubject(over.sub ?? SPIFFE_ID).setAudience(over.aud ?? [ISSUER]).setIssuedAt(now()).setExpirationTime(over.exp ?? now() + 300);
  if (over.jti !== null) jwt.setJti(over.jti ?? 'b4d9f0b6-8c1e-4c53-9b0e-3f1b2a4c5d6e');
  return jwt.sign(over.key ?? pair.privateKey);
};

const verify = (form: Record<string, unknown>) => verifyClientAssertion(form, { issuer: ISSUER, bundle, clock });
const form = async (assertion: string | Promise<string>, extra: Record<string, unknown> = {}) => ({ client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE, client_assertion: await assertion, ...extra });

async function refusal(promise: Promise<unknown>): Promise<OAuthError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OAuthError);
  return err as OAuthError;
}

describe('draft-ietf-oauth-spiffe-client-auth: a JWT-SVID as client_assertion', () => {
  it('accepts a JWT-SVID of this trust domain for this issuer alone, with client_id equal to sub', async () => {
    await expect(verify(await form(svid(), { client_id: SPIFFE_ID }))).resolves.toEqual({ spiffeId: SPIFFE_ID, jti: 'b4d9f0b6-8c1e-4c53-9b0e-3f1b2a4c5d6e', expiresAt: new Date((now() + 300) * 1000) });
    await expect(verify(await form(svid({ aud: ISSUER })))).resolves.toMatchObject({ spiffeId: SPIFFE_ID }); // a single string aud
  });

  it.each([
    ['another audience', { aud: ['https://other.test'] }, /"aud" is not this broker's issuer/],
    ['more than one audience', { aud: [ISSUER, 'https://other.test'] }, /one audience/],
    ['an expired one', { exp: now() - 1 }, /expired/],
    ['another trust domain in sub', { sub: 'spiffe://other.test/agent/a' }, /not a SPIFFE ID of writ\.test/],
    ['a key outside the bundle', { key: foreign.privateKey }, /signature/],
    ['no jti', { jti: null }, /jti/],
    ['an access token', { typ: 'at+jwt' }, /not a JWT-SVID/],
  ] as const)('refuses %s with invalid_client (401)', async (_what, over, why) => {
    const err = await refusal(verify(await form(svid(over as never))));
    expect(err.type).toBe('invalid_client');
    expect(err.status).toBe(401);
    expect(err.message).toMatch(why);
  });

  it('refuses a client_id that is not sub, another assertion type, a missing or repeated assertion', async () => {
    expect((await refusal(verify(await form(svid(), { client_id: 'spiffe://writ.test/agent/b' })))).message).toMatch(/client_id/);
    expect((await refusal(verify({ client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await svid() }))).type).toBe('invalid_client');
    expect((await refusal(verify({ client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE }))).message).toMatch(/missing/);
    expect((await refusal(verify({ client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE, client_assertion: 'not-a-jwt' }))).message).toMatch(/not a JWT/);
    expect((await refusal(verify({ client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE, client_assertion: [await svid(), await svid()] }))).type).toBe('invalid_request');
  });

  it('knows a request that carries an assertion', () => {
    expect(hasClientAssertion({ client_assertion: 'x' })).toBe(true);
    expect(hasClientAssertion({ client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE })).toBe(true);
    expect(hasClientAssertion({ grant_type: 'x' })).toBe(false);
  });
});
