import { execFileSync } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { ManualClock } from '../core/clock';
import type { Random } from '../core/random';
import { InvalidGrant, InvalidRequest } from './errors';
import { certificateThumbprint } from './access-token';
import {
  DEFAULT_ACCESS_TOKEN_LIFETIME,
  mintAccessToken,
  tokenLifetime,
  type AccessTokenSigningKey,
  type LifetimeBounds,
  type MintFields,
  type MintInput,
} from './sign';
import { T0, T0S, at, ISSUER, CONNECTOR, RESOURCE, granted, fixedRandom, signingKey, connectorCertificate, bounds, mintInput } from '../../test/support/access-tokens';

let dir: string;
let certDer: Uint8Array;
let key: AccessTokenSigningKey;
let publicKey: KeyObject;

beforeAll(() => {
  ({ dir, certDer } = connectorCertificate('writ-sign-'));
  ({ key, publicKey } = signingKey('kid-1'));
});

const input = (over: Partial<MintFields> = {}): MintInput => mintInput(certDer, over);

describe('RFC 9068 §2.1 access token header', () => {
  it('is typ at+jwt, alg ES256, with the kid of the signing key', async () => {
    const { token } = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: 'kid-1' });
    // Verifies with the public key, as a resource server would.
    await expect(jwtVerify(token, publicKey, { algorithms: ['ES256'], typ: 'at+jwt', currentDate: T0 })).resolves.toBeDefined();
  });
});

describe('RFC 9068 §2.2 access token claims', () => {
  it('carries iss, sub, aud, client_id, act, cnf, authorization_details, task_id, sid, iat, exp, jti', async () => {
    const minted = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    const thumbprint = certificateThumbprint(certDer);
    const expected = {
      iss: ISSUER,
      sub: 'alice@example.com',
      aud: RESOURCE,
      client_id: CONNECTOR,
      act: { sub: CONNECTOR },
      cnf: { 'x5t#S256': thumbprint },
      authorization_details: granted,
      task_id: 'task-42',
      sid: 'session-1',
      iat: T0S,
      exp: T0S + DEFAULT_ACCESS_TOKEN_LIFETIME,
      jti: '0b7e9a2c-41f6-4d5e-9b39-1c2d3e4f5a6b',
    };
    expect(decodeJwt(minted.token)).toEqual(expected);
    expect(minted.claims).toEqual(expected);
    expect(minted).toMatchObject({ jti: expected.jti, issuedAt: at(0), expiresAt: at(300), expiresIn: 300 });
  });

  it('aud is the one resource URI, a string', async () => {
    const { token } = await mintAccessToken(input(), key, new ManualClock(T0), fixedRandom());
    expect(decodeJwt(token).aud).toBe(RESOURCE);
  });

  it('leaves sid out when the subject token had none', async () => {
    const { token } = await mintAccessToken(input({ sid: undefined }), key, new ManualClock(T0), fixedRandom());
    expect(decodeJwt(token)).not.toHaveProperty('sid');
  });

  it('jti comes from the injected randomness, one per token', async () => {
    let n = 0;
    const random: Random = { bytes: (l) => new Uint8Array(l), uuid: () => `uuid-${++n}` };
    const a = await mintAccessToken(input(), key, new ManualClock(T0), random);
    const b = await mintAccessToken(input(), key, new ManualClock(T0), random);
    expect([a.jti, b.jti]).toEqual(['uuid-1', 'uuid-2']);
  });

  it('RFC 8693 §4.1: a chained token nests the previous actors under the current connector', async () => {
    const parentAct = { sub: 'spiffe://writ.local/connector/agent', act: { sub: 'spiffe://writ.local/connector/planner' } };
    const { claims } = await mintAccessToken(input({ parentAct }), key, new ManualClock(T0), fixedRandom());
    expect(claims.act).toEqual({ sub: CONNECTOR, act: parentAct });
  });

  it('refuses to mint a token that grants nothing', async () => {
    await expect(mintAccessToken(input({ authorizationDetails: [] }), key, new ManualClock(T0), fixedRandom())).rejects.toMatchObject({ type: 'access_denied' });
  });
});

describe('RFC 9449 §6.1 DPoP-bound access tokens (cnf jkt)', () => {
  const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
  const fields = (): MintFields => {
    const { clientCertificate: _unused, ...rest } = input();
    return rest as MintFields;
  };

  it('binds to the DPoP key thumbprint instead of the certificate', async () => {
    const { claims } = await mintAccessToken({ ...fields(), dpopJkt: jkt }, key, new ManualClock(T0), fixedRandom());
    expect(claims.cnf).toEqual({ jkt });
  });

  it('refuses to mint a token bound to nothing, to both, or to a malformed thumbprint', async () => {
    await expect(mintAccessToken(fields() as MintInput, key, new ManualClock(T0), fixedRandom())).rejects.toThrow(/exactly one/);
    await expect(mintAccessToken({ ...input(), dpopJkt: jkt } as unknown as MintInput, key, new ManualClock(T0), fixedRandom())).rejects.toThrow(/exactly one/);
    await expect(mintAccessToken({ ...fields(), dpopJkt: 'short' }, key, new ManualClock(T0), fixedRandom())).rejects.toThrow(/RFC 7638/);
  });
});

describe('RFC 8705 §3.1 certificate-bound access tokens (cnf x5t#S256)', () => {
  it('equals openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url', () => {
    const openssl = execFileSync('sh', ['-c', `openssl x509 -in "${join(dir, 'svid.pem')}" -outform DER | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='`], {
      encoding: 'utf8',
    }).trim();
    expect(openssl).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(certificateThumbprint(certDer)).toBe(openssl);
  });

  it('differs for another certificate', () => {
    const other = new Uint8Array(certDer);
    other[other.length - 1] ^= 1;
    expect(certificateThumbprint(other)).not.toBe(certificateThumbprint(certDer));
  });
});

describe('RFC 9068 §2.2 exp: token lifetime capping', () => {
  it(`defaults to ${DEFAULT_ACCESS_TOKEN_LIFETIME} s from iat (whole seconds)`, () => {
    expect(tokenLifetime(T0, bounds())).toEqual({ issuedAt: at(0), expiresAt: at(300), seconds: 300, boundBy: 'default' });
  });

  it('uses the requested lifetime, and a configured default', () => {
    expect(tokenLifetime(T0, bounds({ requested: 120 }))).toMatchObject({ seconds: 120, boundBy: 'requested' });
    expect(tokenLifetime(T0, bounds({ default: 900 }))).toMatchObject({ seconds: 900, boundBy: 'default' });
  });

  it('is capped by the configured maximum', () => {
    expect(tokenLifetime(T0, bounds({ requested: 7200 }))).toMatchObject({ seconds: 3600, boundBy: 'maximum' });
    expect(tokenLifetime(T0, bounds({ maximum: 60, subjectTokenExpiresAt: at(86400) }))).toMatchObject({ seconds: 60, boundBy: 'maximum' });
  });

  it("never outlives the SVID's notAfter (floored to the second)", () => {
    expect(tokenLifetime(T0, bounds({ certificateNotAfter: new Date(at(90).getTime() + 999) }))).toMatchObject({ expiresAt: at(90), seconds: 90, boundBy: 'certificate' });
  });

  it("never outlives the subject token's exp", () => {
    expect(tokenLifetime(T0, bounds({ subjectTokenExpiresAt: at(45) }))).toMatchObject({ expiresAt: at(45), seconds: 45, boundBy: 'subject_token' });
  });

  it("a chained token never outlives its parent's exp", () => {
    expect(tokenLifetime(T0, bounds({ parentTokenExpiresAt: at(30), subjectTokenExpiresAt: at(30) }))).toMatchObject({ seconds: 30, boundBy: 'subject_token' });
    expect(tokenLifetime(T0, bounds({ parentTokenExpiresAt: at(20) }))).toMatchObject({ expiresAt: at(20), seconds: 20, boundBy: 'parent_token' });
  });

  it.each([
    ['certificate', { certificateNotAfter: at(0) }, /client certificate \(X\.509-SVID\), or the JWT-SVID the client authenticated with, expires now or has expired/],
    ['subject_token', { subjectTokenExpiresAt: at(-10) }, /subject token expires now or has expired/],
    ['parent_token', { parentTokenExpiresAt: at(0) }, /parent token .* expires now or has expired/],
    ['maximum', { maximum: 0 }, /configured maximum token lifetime is not positive/],
  ])('refuses with invalid_grant when the %s bound leaves no lifetime', (_bound, over, message) => {
    expect(() => tokenLifetime(T0, bounds(over as Partial<LifetimeBounds>))).toThrow(InvalidGrant);
    expect(() => tokenLifetime(T0, bounds(over as Partial<LifetimeBounds>))).toThrow(message);
  });

  it('refuses a requested lifetime that is not a positive whole number', () => {
    for (const requested of [0, -5, 1.5, Number.NaN]) expect(() => tokenLifetime(T0, bounds({ requested }))).toThrow(InvalidRequest);
  });

  it('mintAccessToken applies the bounds', async () => {
    const minted = await mintAccessToken(input({ lifetime: bounds({ subjectTokenExpiresAt: at(42) }) }), key, new ManualClock(T0), fixedRandom());
    expect(minted.claims.exp - minted.claims.iat).toBe(42);
    await expect(mintAccessToken(input({ lifetime: bounds({ subjectTokenExpiresAt: at(-1) }) }), key, new ManualClock(T0), fixedRandom())).rejects.toBeInstanceOf(InvalidGrant);
  });
});
