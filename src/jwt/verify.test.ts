import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { JwksUnavailable, JwtError, type JwtFailure } from './errors';
import { StaticJwks, type KeySource } from './jwks';
import { trustedIssuerOptions, verifyJwt } from './verify';

const ISSUER = 'https://idp.example.com';
const NOW = new Date('2026-11-27T12:00:00Z');
const T = Math.floor(NOW.getTime() / 1000);
const issuer = { issuer: ISSUER, audience: 'writ', algorithms: ['ES256'] as const, clockSkew: 0 };
const options = () => trustedIssuerOptions(issuer, NOW, ['exp', 'sub']);

let key: CryptoKey;
let jwk: JWK;
let other: CryptoKey;
beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  other = (await generateKeyPair('ES256')).privateKey;
});

const keys = (...set: JWK[]): KeySource => new StaticJwks({ keys: set.length > 0 ? set : [jwk] });
const token = (claims: Record<string, unknown> = {}, signWith = key, header: Record<string, unknown> = { kid: 'k1' }) =>
  new SignJWT({ iss: ISSUER, aud: 'writ', sub: 'alice', exp: T + 60, ...claims }).setProtectedHeader({ alg: 'ES256', ...header }).sign(signWith);

async function reasonOf(promise: Promise<unknown>): Promise<{ reason: JwtFailure; claim?: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(JwtError);
    const { reason, claim, message } = err as JwtError;
    return { reason, ...(claim !== undefined ? { claim } : {}), message };
  }
  throw new Error('verified');
}

describe('RFC 7519 §7.2 verifying a JWT, with stable reason codes', () => {
  it('returns the claims of a token that verifies', async () => {
    await expect(verifyJwt(await token(), keys(), options())).resolves.toMatchObject({ sub: 'alice', iss: ISSUER });
  });

  it('§4.1.4: an expired token is "expired"', async () => {
    expect(await reasonOf(verifyJwt(await token({ exp: T - 1 }), keys(), options()))).toMatchObject({ reason: 'expired', claim: 'exp' });
  });

  it('§4.1.3: another audience is "audience", naming the expected one', async () => {
    const refused = await reasonOf(verifyJwt(await token({ aud: 'other' }), keys(), options()));
    expect(refused).toMatchObject({ reason: 'audience', claim: 'aud' });
    expect(refused.message).toContain('"writ"');
  });

  it('§4.1.1: another issuer is "issuer"', async () => {
    expect(await reasonOf(verifyJwt(await token({ iss: 'https://evil.example' }), keys(), options()))).toMatchObject({ reason: 'issuer', claim: 'iss' });
  });

  it('a required claim that is absent is "claim-missing"', async () => {
    expect(await reasonOf(verifyJwt(await token({ sub: undefined }), keys(), options()))).toMatchObject({ reason: 'claim-missing', claim: 'sub' });
  });

  it('RFC 7515 §5.2: a signature by another key is "signature"', async () => {
    expect((await reasonOf(verifyJwt(await token({}, other), keys(), options()))).reason).toBe('signature');
  });

  it('an unknown kid is "no-matching-key"', async () => {
    expect((await reasonOf(verifyJwt(await token({}, key, { kid: 'k9' }), keys(), options()))).reason).toBe('no-matching-key');
  });

  it('RFC 8725 §3.1: an algorithm the issuer does not use is "algorithm-not-allowed"', async () => {
    const refused = await reasonOf(verifyJwt(await token(), keys(), { ...options(), algorithms: ['RS256'] }));
    expect(refused.reason).toBe('algorithm-not-allowed');
    expect(refused.message).toContain('allowed: RS256');
  });

  it('keys that cannot be fetched are "keys-unavailable", the key source\'s own error', async () => {
    const down: KeySource = { getKey: () => Promise.reject(new JwksUnavailable('no answer within 5000 ms')) };
    const err = await verifyJwt(await token(), down, options()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JwksUnavailable);
    expect((err as JwtError).reason).toBe('keys-unavailable');
  });

  it('RFC 7515 §4.1.4: a token without kid that several keys could verify is tried against each', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const decoy = { ...(await exportJWK(publicKey)), kid: 'k0', alg: 'ES256' };
    await expect(verifyJwt(await token({}, key, {}), keys(decoy, jwk), options())).resolves.toMatchObject({ sub: 'alice' });
    expect((await reasonOf(verifyJwt(await token({}, other, {}), keys(decoy, jwk), options()))).reason).toBe('signature');
  });
});
