import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { ManualClock } from '../core/clock';
import { OAuthError } from './errors';
import {
  mintAccessToken,
  type AccessTokenSigningKey,
  type MintFields,
  type MintInput,
} from './sign';
import { verifyAccessToken } from './verify';
import { T0, ISSUER, RESOURCE, fixedRandom, signingKey, connectorCertificate, mintInput } from '../../test/support/access-tokens';

let certDer: Uint8Array;
let key: AccessTokenSigningKey;
let publicKey: KeyObject;
let otherKey: AccessTokenSigningKey;

beforeAll(() => {
  ({ certDer } = connectorCertificate('writ-verify-'));
  ({ key, publicKey } = signingKey('kid-1'));
  otherKey = signingKey('kid-2').key;
});

const input = (over: Partial<MintFields> = {}): MintInput => mintInput(certDer, over);

const publicJwk = (k: KeyObject) => k.export({ format: 'jwk' });

describe('RFC 9068 §4 validating Writ access tokens', () => {
  const keys = () => [{ kid: key.kid, publicJwk: publicJwk(publicKey) }];

  async function refused(promise: Promise<unknown>, code = 'invalid_grant'): Promise<OAuthError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OAuthError);
    expect((err as OAuthError).type).toBe(code);
    return err as OAuthError;
  }

  it('returns the claims of a token Writ minted', async () => {
    const minted = await mintAccessToken(input({ parentAct: { sub: 'spiffe://writ.local/connector/agent' } }), key, new ManualClock(T0), fixedRandom());
    await expect(verifyAccessToken(minted.token, keys(), { issuer: ISSUER, clock: new ManualClock(T0), audience: RESOURCE })).resolves.toEqual(minted.claims);
  });

  it('refuses an expired token', async () => {
    const { token } = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const clock = new ManualClock(T0);
    clock.advance(301);
    expect((await refused(verifyAccessToken(token, keys(), { issuer: ISSUER, clock }))).message).toMatch(/^access token: the token has expired/);
  });

  it('refuses another issuer and another audience', async () => {
    const { token } = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    expect((await refused(verifyAccessToken(token, keys(), { issuer: 'https://other.example', clock: new ManualClock(T0) }))).message).toMatch(/issuer \("iss"\) does not match/);
    expect((await refused(verifyAccessToken(token, keys(), { issuer: ISSUER, clock: new ManualClock(T0), audience: 'https://mcp.example.com/jira' }))).message).toMatch(/audience/);
  });

  it('refuses a token signed by a key outside the bundle', async () => {
    const { token } = await mintAccessToken(input(), otherKey, new ManualClock(T0), fixedRandom());
    expect((await refused(verifyAccessToken(token, keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message).toMatch(/no key of Writ matches the token \(key ID "kid-2"/);
    const sameKid = await mintAccessToken(input(), { ...otherKey, kid: 'kid-1' }, new ManualClock(T0), fixedRandom());
    expect((await refused(verifyAccessToken(sameKid.token, keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message).toMatch(/bad signature/);
  });

  it('refuses a JWT of another type signed by the same key (a JWT-SVID is not an access token)', async () => {
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const svid = await new SignJWT({ ...minted.claims }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: key.kid }).sign(key.privateKey);
    expect((await refused(verifyAccessToken(svid, keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message).toMatch(/"typ" must be "at\+jwt", RFC 9068 §2\.1/);
  });

  it('refuses an HS256 token keyed with the public key (algorithm confusion)', async () => {
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const secret = new TextEncoder().encode(JSON.stringify(publicJwk(publicKey)));
    const forged = await new SignJWT({ ...minted.claims }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }).sign(secret);
    expect((await refused(verifyAccessToken(forged, keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message).toMatch(/algorithm "HS256" is not allowed/);
  });

  it('refuses malformed act, cnf and authorization_details even when signed', async () => {
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const resign = (claims: object) => new SignJWT({ ...minted.claims, ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }).sign(key.privateKey);
    const verify = async (claims: object) => (await refused(verifyAccessToken(await resign(claims), keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message;
    expect(await verify({ act: { sub: 'spiffe://writ.local/connector/else' } })).toMatch(/"act\.sub" must be the "client_id"/);
    expect(await verify({ act: 'x' })).toMatch(/"act" must be/);
    expect(await verify({ cnf: {} })).toMatch(/x5t#S256/);
    expect(await verify({ authorization_details: [{ type: 'other' }] })).toMatch(/"authorization_details" is malformed/);
    expect(await verify({ aud: [RESOURCE, 'https://x.example'] })).toMatch(/"aud" must be one resource URI/);
  });

  it('accepts cnf with exactly one of x5t#S256 (RFC 8705 §3.1) or jkt (RFC 9449 §6.1), each the base64url of 32 bytes', async () => {
    const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'; // RFC 7638 §3.1's example thumbprint
    const { clientCertificate: _unused, ...fields } = input();
    const dpop = await mintAccessToken({ ...(fields as MintFields), dpopJkt: jkt }, key, new ManualClock(T0), fixedRandom());
    expect((await verifyAccessToken(dpop.token, keys(), { issuer: ISSUER, clock: new ManualClock(T0) })).cnf).toEqual({ jkt });
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const resign = (claims: object) => new SignJWT({ ...minted.claims, ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }).sign(key.privateKey);
    const verify = async (claims: object) => (await refused(verifyAccessToken(await resign(claims), keys(), { issuer: ISSUER, clock: new ManualClock(T0) }))).message;
    const x5t = (minted.claims.cnf as { 'x5t#S256': string })['x5t#S256'];
    expect(await verify({ cnf: { 'x5t#S256': x5t, jkt } })).toMatch(/exactly one/);
    expect(await verify({ cnf: { jkt: jkt.slice(1) } })).toMatch(/"jkt"/);
    expect(await verify({ cnf: { jkt: `${jkt.slice(0, 42)}t` } })).toMatch(/"jkt"/); // 43 characters, but not 32 bytes (non-zero padding bits)
    expect(await verify({ cnf: { jkt: 42 } })).toMatch(/"jkt"/);
    expect(await verify({ cnf: { jwk: { kty: 'EC' } } })).toMatch(/exactly one/);
    expect(await verify({ cnf: 'x' })).toMatch(/exactly one/);
  });

  it('remembers a verified token per key list, yet checks expiry, issuer and audience on every call', async () => {
    const bundleKeys = keys();
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const clock = new ManualClock(T0);
    const first = await verifyAccessToken(minted.token, bundleKeys, { issuer: ISSUER, clock, audience: RESOURCE });
    expect(await verifyAccessToken(minted.token, bundleKeys, { issuer: ISSUER, clock, audience: RESOURCE })).toBe(first); // remembered
    expect((await refused(verifyAccessToken(minted.token, bundleKeys, { issuer: ISSUER, clock, audience: 'https://mcp.example.com/jira' }))).message).toMatch(/audience/);
    expect((await refused(verifyAccessToken(minted.token, bundleKeys, { issuer: 'https://other.example', clock }))).message).toMatch(/issuer \("iss"\) does not match/);
    clock.advance(301);
    expect((await refused(verifyAccessToken(minted.token, bundleKeys, { issuer: ISSUER, clock, audience: RESOURCE }))).message).toMatch(/the token has expired/);
  });

  it('a new key list (a rotated bundle without the signing key) verifies again and refuses', async () => {
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    await verifyAccessToken(minted.token, keys(), { issuer: ISSUER, clock: new ManualClock(T0) });
    const rotated = [{ kid: 'kid-2', publicJwk: publicJwk(createPublicKey(otherKey.privateKey as KeyObject)) }];
    expect((await refused(verifyAccessToken(minted.token, rotated, { issuer: ISSUER, clock: new ManualClock(T0) }))).message).toMatch(/no key of Writ matches/);
  });

  it('answers invalid_token when asked to (a resource server, RFC 6750 §3.1)', async () => {
    const { token } = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const err = await refused(verifyAccessToken(token, keys(), { issuer: 'https://other.example', clock: new ManualClock(T0), errorCode: 'invalid_token' }), 'invalid_token');
    expect(err.status).toBe(401);
  });
});
