import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { ManualClock } from '../core/clock';
import { DomainError } from '../core/errors';
import { SetError, TransmitterKeysUnavailable, type SetErrorCode } from './errors';
import { EVENT_TYPE, intentsOf } from './events';
import { SET_MEDIA_TYPE, SetReceiver, signalTransmitterSchema, signalTransmittersSchema, type SignalTransmitterInput } from './set';

const TRANSMITTER = 'https://idp.example.com';
const REMOTE = 'https://ssf.example.net';
const AUDIENCE = 'https://writ.example.com/v1/signals';
const T0 = new Date('2026-11-27T12:00:00Z');
const epoch = (d: Date) => Math.floor(d.getTime() / 1000);

interface KeyPair {
  privateKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: string, kid: string): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), alg, use: 'sig', kid } };
}

let es256: KeyPair; // the transmitter's key, in its jwks_file
let rs256: KeyPair; // the remote transmitter's key, at its jwks_uri
let es384: KeyPair; // in the jwks_file, but ES384 is not among the transmitter's algorithms
let stranger: KeyPair; // same kid as es256, in no key set
let dir: string;
let server: Server;
let jwksUri: string;
let serverBroken = false;

beforeAll(async () => {
  [es256, rs256, es384, stranger] = await Promise.all([keyPair('ES256', 't1'), keyPair('RS256', 'r1'), keyPair('ES384', 't384'), keyPair('ES256', 't1')]);
  dir = mkdtempSync(join(tmpdir(), 'writ-ssf-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [es256.jwk, es384.jwk] }));
  server = createServer((req, res) => {
    if (req.url === '/jwks' && !serverBroken) res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [rs256.jwk] }));
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const SESSION_REVOKED_SUB_ID = { format: 'opaque', id: 'sess-42' };

interface SetOptions {
  key?: KeyPair;
  alg?: string;
  /** null leaves the header out. */
  typ?: string | null;
  kid?: string | null;
  /** null leaves the claim out; the defaults make a valid CAEP session-revoked SET from TRANSMITTER. */
  iss?: string | null;
  aud?: string | string[] | null;
  iat?: number | null;
  jti?: unknown;
  events?: unknown;
  claims?: JWTPayload;
}

const omit = <T>(value: T | null | undefined, fallback: T): T | undefined => (value === null ? undefined : (value ?? fallback));

function claimsOf(o: SetOptions): JWTPayload {
  const claims: JWTPayload = {
    iss: omit(o.iss, TRANSMITTER),
    aud: omit(o.aud, AUDIENCE),
    iat: omit(o.iat, epoch(T0)),
    jti: omit(o.jti as string | null | undefined, 'a5a1f8e2-7c1e-4d1b-9d3b-3e5c0f0b7a10'),
    sub_id: SESSION_REVOKED_SUB_ID,
    events: omit(o.events as JWTPayload | null | undefined, { [EVENT_TYPE.SESSION_REVOKED]: { event_timestamp: epoch(T0) - 5 } }),
    ...o.claims,
  };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return claims;
}

function set(o: SetOptions = {}): Promise<string> {
  const key = o.key ?? es256;
  const alg = o.alg ?? (key.jwk.alg as string);
  const typ = omit(o.typ, 'secevent+jwt');
  const kid = omit(o.kid, key.jwk.kid as string);
  return new SignJWT(claimsOf(o))
    .setProtectedHeader({ alg, ...(typ === undefined ? {} : { typ }), ...(kid === undefined ? {} : { kid }) })
    .sign(key.privateKey);
}

const transmitter = (over: Partial<SignalTransmitterInput> = {}): SignalTransmitterInput =>
  ({ issuer: TRANSMITTER, jwks_file: join(dir, 'jwks.json'), audience: AUDIENCE, ...over }) as SignalTransmitterInput;

const remote = (): SignalTransmitterInput => ({ issuer: REMOTE, jwks_uri: jwksUri, audience: AUDIENCE, algorithms: ['RS256'] }) as SignalTransmitterInput;

function receiver(configs: SignalTransmitterInput[] = [transmitter(), remote()], clock = new ManualClock(T0)): SetReceiver {
  return new SetReceiver(signalTransmittersSchema.parse(configs), { clock });
}

async function refusal(promise: Promise<unknown>, err: SetErrorCode): Promise<SetError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(SetError);
    const error = e as SetError;
    expect({ err: error.err, description: error.description }).toEqual({ err, description: expect.any(String) });
    expect(error.status).toBe(400);
    expect(error.type).toBe(err);
    return error;
  }
  throw new Error(`expected the SET to be refused with ${err}`);
}

describe('signal_transmitters configuration', () => {
  it('turns snake_case into camelCase, with the defaults: RS256 and ES256, 60 s skew, its own issuer for subjects', () => {
    expect(signalTransmitterSchema.parse({ issuer: TRANSMITTER, jwks_uri: 'https://idp.example.com/keys', audience: AUDIENCE })).toEqual({
      issuer: TRANSMITTER,
      jwksUri: 'https://idp.example.com/keys',
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256'],
      clockSkew: 60,
      subjectIssuers: [TRANSMITTER],
    });
    expect(
      signalTransmitterSchema.parse({ issuer: REMOTE, jwks_file: 'ssf.json', audience: AUDIENCE, algorithms: ['EdDSA'], clock_skew: '5m', subject_issuers: ['https://login.example.org'] }),
    ).toEqual({ issuer: REMOTE, jwksFile: 'ssf.json', audience: AUDIENCE, algorithms: ['EdDSA'], clockSkew: 300, subjectIssuers: [REMOTE, 'https://login.example.org'] });
  });

  it.each(['HS256', 'none'])('RFC 8725 §3.1: refuses %s in algorithms', (alg) => {
    expect(signalTransmitterSchema.safeParse(transmitter({ algorithms: [alg as never] })).error?.issues[0]?.path).toEqual(['algorithms', 0]);
  });

  it('refuses both or neither key locations, an http jwks_uri off loopback, unknown keys, and the same issuer twice', () => {
    expect(signalTransmitterSchema.safeParse(transmitter({ jwks_uri: 'https://idp.example.com/keys' })).error?.issues[0]?.message).toMatch(/not both/);
    expect(signalTransmitterSchema.safeParse({ issuer: TRANSMITTER, audience: AUDIENCE }).error?.issues[0]?.message).toMatch(/set one of jwks_file or jwks_uri/);
    expect(signalTransmitterSchema.safeParse({ issuer: TRANSMITTER, audience: AUDIENCE, jwks_uri: 'http://idp.example.com/keys' }).success).toBe(false);
    expect(signalTransmitterSchema.safeParse({ ...transmitter(), secret: 'x' }).success).toBe(false);
    expect(signalTransmitterSchema.safeParse({ ...transmitter(), audience: '' }).success).toBe(false);
    expect(signalTransmittersSchema.safeParse([transmitter(), transmitter()]).error?.issues[0]?.message).toMatch(/more than once/);
  });

  it('names the transmitter when its jwks_file is unusable', () => {
    expect(() => receiver([transmitter({ jwks_file: join(dir, 'missing.json') })])).toThrow(/^signal transmitter https:\/\/idp\.example\.com: jwks_file cannot read/);
  });
});

describe('RFC 8935 §2.1 push delivery: the body is a SET, application/secevent+jwt', () => {
  it('accepts a valid SET and exposes iss, jti, iat, aud and events for replay detection and audit', async () => {
    const verified = await receiver().receive(await set(), SET_MEDIA_TYPE);
    expect(verified).toMatchObject({
      iss: TRANSMITTER,
      jti: 'a5a1f8e2-7c1e-4d1b-9d3b-3e5c0f0b7a10',
      iat: T0,
      aud: [AUDIENCE],
      subId: SESSION_REVOKED_SUB_ID,
      events: { [EVENT_TYPE.SESSION_REVOKED]: { event_timestamp: epoch(T0) - 5 } },
      subjectIssuers: [TRANSMITTER],
    });
    expect(verified.claims.jti).toBe(verified.jti);
    expect(verified.exp).toBeUndefined();
  });

  it('accepts media type parameters, any case, and white space around the body', async () => {
    await expect(receiver().receive(`${await set()}\r\n`, 'Application/SecEvent+JWT; charset=utf-8')).resolves.toMatchObject({ iss: TRANSMITTER });
  });

  it.each([
    ['application/json', /got Content-Type "application\/json"/],
    ['application/jwt', /got Content-Type "application\/jwt"/],
    ['', /got no Content-Type/],
  ])('refuses Content-Type %j with invalid_request', async (contentType, message) => {
    expect((await refusal(receiver().receive(await set(), contentType), 'invalid_request')).description).toMatch(message);
  });

  it('refuses a request without Content-Type with invalid_request', async () => {
    expect((await refusal(receiver().receive(await set()), 'invalid_request')).description).toMatch(/application\/secevent\+jwt \(RFC 8935 §2\.1\), got no Content-Type/);
  });

  it('refuses a body that is not a JWS with invalid_request: empty, garbage, a JWE, too long', async () => {
    const r = receiver();
    await refusal(r.receive('', SET_MEDIA_TYPE), 'invalid_request');
    expect((await refusal(r.receive('not.a.jwt', SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/JWS Compact Serialization/);
    expect((await refusal(r.receive('{"events":{}}', SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/JWS Compact Serialization/);
    expect((await refusal(r.receive('a.b.c.d.e', SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/encrypted SETs \(JWE\) are not supported/);
    expect((await refusal(r.receive('a'.repeat(40_000), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/longer than/);
  });

  it('SetError is a DomainError answered 400 with the RFC 8935 §2.4 body {err, description}', async () => {
    const error = await refusal(receiver().receive(await set({ aud: 'https://other.example' }), SET_MEDIA_TYPE), 'invalid_audience');
    expect(error).toBeInstanceOf(DomainError);
    expect(JSON.parse(JSON.stringify(error))).toEqual({ err: 'invalid_audience', description: error.message });
  });
});

describe('RFC 8417 §2.3 explicit typing ("typ": "secevent+jwt")', () => {
  it.each(['secevent+jwt', 'application/secevent+jwt', 'SECEVENT+JWT'])('accepts typ %j', async (typ) => {
    await expect(receiver().receive(await set({ typ }), SET_MEDIA_TYPE)).resolves.toMatchObject({ iss: TRANSMITTER });
  });

  it('accepts a SET without typ (RFC 8417 §2.3 only recommends it)', async () => {
    await expect(receiver().receive(await set({ typ: null }), SET_MEDIA_TYPE)).resolves.toMatchObject({ iss: TRANSMITTER });
  });

  it.each(['JWT', 'at+jwt', 'logout+jwt'])('RFC 8417 §4.3: refuses another kind of token (typ %j) with invalid_request', async (typ) => {
    expect((await refusal(receiver().receive(await set({ typ }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/a SET is typed secevent\+jwt/);
  });
});

describe('RFC 8417 §2.2 SET claims', () => {
  it('refuses a SET without jti, or with a jti that is not a string, with invalid_request', async () => {
    expect((await refusal(receiver().receive(await set({ jti: null }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/no "jti" claim/);
    expect((await refusal(receiver().receive(await set({ jti: 42 }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/"jti" claim must be a non-empty string/);
    await refusal(receiver().receive(await set({ jti: '' }), SET_MEDIA_TYPE), 'invalid_request');
    await refusal(receiver().receive(await set({ jti: 'j'.repeat(257) }), SET_MEDIA_TYPE), 'invalid_request');
  });

  it('refuses a SET without iat, or whose iat is not a NumericDate, with invalid_request', async () => {
    expect((await refusal(receiver().receive(await set({ iat: null }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/no "iat" claim/);
    const token = await new SignJWT({ ...claimsOf({}), iat: 'yesterday' as never }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 't1' }).sign(es256.privateKey);
    expect((await refusal(receiver().receive(token, SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/"iat" claim is not a NumericDate/);
  });

  it('refuses a SET issued in the future beyond the clock skew, accepts one within it', async () => {
    expect((await refusal(receiver().receive(await set({ iat: epoch(T0) + 61 }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/issued in the future/);
    await expect(receiver().receive(await set({ iat: epoch(T0) + 59 }), SET_MEDIA_TYPE)).resolves.toMatchObject({ iss: TRANSMITTER });
  });

  it('accepts an old SET: delivery may be delayed and retried (RFC 8935 §2.3)', async () => {
    await expect(receiver().receive(await set({ iat: epoch(T0) - 86_400 }), SET_MEDIA_TYPE)).resolves.toMatchObject({ iat: new Date(T0.getTime() - 86_400_000) });
  });

  it('refuses a SET without events, with an empty events object, or an event payload that is not an object', async () => {
    expect((await refusal(receiver().receive(await set({ events: null }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/no "events" claim/);
    expect((await refusal(receiver().receive(await set({ events: {} }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/names no event/);
    expect((await refusal(receiver().receive(await set({ events: [EVENT_TYPE.SESSION_REVOKED] }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/must be a JSON object/);
    const notObject = await set({ events: { [EVENT_TYPE.SESSION_REVOKED]: true } });
    expect((await refusal(receiver().receive(notObject, SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/payload of event .* must be a JSON object/);
    expect((await refusal(receiver().receive(await set({ events: { 'session revoked': {} } }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/is not a URI/);
  });

  it('accepts an empty event payload ({}) for an event type Writ does not act on', async () => {
    const verified = await receiver().receive(await set({ events: { 'https://example.com/event/ping': {} } }), SET_MEDIA_TYPE);
    expect(intentsOf(verified)).toEqual([{ kind: 'ignored', eventType: 'https://example.com/event/ping', transmitter: TRANSMITTER }]);
  });

  it('honours exp when present: refuses an expired SET with invalid_request (ManualClock)', async () => {
    const clock = new ManualClock(T0);
    const r = receiver([transmitter()], clock);
    const token = await set({ claims: { exp: epoch(T0) + 120 } });
    await expect(r.receive(token, SET_MEDIA_TYPE)).resolves.toMatchObject({ exp: new Date(T0.getTime() + 120_000) });
    clock.advance(120 + 60); // past exp and the 60 s skew
    expect((await refusal(r.receive(token, SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/expired \("exp"/);
  });

  it('refuses a SET before its nbf', async () => {
    await refusal(receiver().receive(await set({ claims: { nbf: epoch(T0) + 600 } }), SET_MEDIA_TYPE), 'invalid_request');
  });

  it('reads txn (a number given as a string) and toe; refuses malformed ones and a sub_id that is not an object', async () => {
    const verified = await receiver().receive(await set({ claims: { txn: 8675309, toe: epoch(T0) - 10 } }), SET_MEDIA_TYPE);
    expect(verified).toMatchObject({ txn: '8675309', toe: new Date(T0.getTime() - 10_000) });
    await refusal(receiver().receive(await set({ claims: { txn: { id: 1 } } }), SET_MEDIA_TYPE), 'invalid_request');
    await refusal(receiver().receive(await set({ claims: { toe: 'now' } }), SET_MEDIA_TYPE), 'invalid_request');
    await refusal(receiver().receive(await set({ claims: { sub_id: 'alice' } }), SET_MEDIA_TYPE), 'invalid_request');
  });

  it('refuses a control character in jti, txn or an event type, and NUL anywhere in the claims, naming the claim', async () => {
    const refused = async (o: SetOptions) => (await refusal(receiver().receive(await set(o), SET_MEDIA_TYPE), 'invalid_request')).description;
    expect(await refused({ jti: 'j\u0000' })).toBe('the SET\'s "jti" claim contains a control character');
    expect(await refused({ claims: { txn: 'tx\n1' } })).toBe('the SET\'s "txn" claim contains a control character');
    expect(await refused({ events: { 'urn:x:\u0000': {} } })).toBe('the SET\'s "events" claim names an event type that contains a control character');
    expect(await refused({ claims: { reason_admin: { en: 'bye\u0000' } } })).toBe('the SET\'s claim "reason_admin.en" contains a control character');
    expect(await refused({ claims: { 'bad\u0000name': 1 } })).toBe('the SET\'s claim "bad?name" has a name that contains a control character');
    // Line breaks in descriptive text are kept.
    expect((await receiver().receive(await set({ claims: { reason_admin: { en: 'line 1\nline 2' } } }), SET_MEDIA_TYPE)).jti).toBe('a5a1f8e2-7c1e-4d1b-9d3b-3e5c0f0b7a10');
  });
});

describe('RFC 8935 §2.4 invalid_issuer and invalid_audience', () => {
  it('refuses an issuer that is not a configured transmitter, naming it bounded and escaped', async () => {
    const error = await refusal(receiver().receive(await set({ iss: `https://evil.example/${'x'.repeat(100)}\n` }), SET_MEDIA_TYPE), 'invalid_issuer');
    expect(error.description).toMatch(/^the SET's issuer "https:\/\/evil\.example\/x+…" is not a configured signal transmitter/);
  });

  it('compares iss exactly (a trailing slash is another issuer)', async () => {
    await refusal(receiver().receive(await set({ iss: `${TRANSMITTER}/` }), SET_MEDIA_TYPE), 'invalid_issuer');
  });

  it('refuses a SET without iss with invalid_request', async () => {
    await refusal(receiver().receive(await set({ iss: null }), SET_MEDIA_TYPE), 'invalid_request');
  });

  it('refuses a SET for another audience, or for none', async () => {
    expect((await refusal(receiver().receive(await set({ aud: 'https://other.example/signals' }), SET_MEDIA_TYPE), 'invalid_audience')).description).toMatch(
      /audience \("aud"\) does not include "https:\/\/writ\.example\.com\/v1\/signals"/,
    );
    await refusal(receiver().receive(await set({ aud: null }), SET_MEDIA_TYPE), 'invalid_audience');
  });

  it('accepts an aud array that includes the audience', async () => {
    await expect(receiver().receive(await set({ aud: ['https://other.example', AUDIENCE] }), SET_MEDIA_TYPE)).resolves.toMatchObject({ aud: ['https://other.example', AUDIENCE] });
  });
});

describe('RFC 8935 §2.4 invalid_key and authentication_failed (RFC 7515 signatures, RFC 8725 §3.1)', () => {
  it('refuses a SET forged with another key under the transmitter\'s kid: authentication_failed', async () => {
    expect((await refusal(receiver().receive(await set({ key: stranger }), SET_MEDIA_TYPE), 'authentication_failed')).description).toMatch(/signature does not verify/);
  });

  it('refuses a SET whose payload was altered after signing: authentication_failed', async () => {
    const [h, , s] = (await set()).split('.');
    const altered = base64url.encode(JSON.stringify({ ...claimsOf({}), sub_id: { format: 'opaque', id: 'someone-else' } }));
    await refusal(receiver().receive(`${h}.${altered}.${s}`, SET_MEDIA_TYPE), 'authentication_failed');
  });

  it('refuses a SET signed with a key the transmitter does not have (unknown kid): invalid_key', async () => {
    expect((await refusal(receiver().receive(await set({ key: stranger, kid: 'nope' }), SET_MEDIA_TYPE), 'invalid_key')).description).toMatch(/no key of the issuer matches/);
  });

  it('refuses a SET claiming the local transmitter but signed with the remote one\'s key (a kid not in its key set): invalid_key', async () => {
    expect((await refusal(receiver().receive(await set({ key: rs256 }), SET_MEDIA_TYPE), 'invalid_key')).description).toMatch(/no key of the issuer matches the token \(key ID "r1"/);
  });

  it('refuses an algorithm the transmitter does not allow (ES384 when RS256 and ES256 are): invalid_key', async () => {
    expect((await refusal(receiver().receive(await set({ key: es384 }), SET_MEDIA_TYPE), 'invalid_key')).description).toMatch(/algorithm "ES384" is not allowed for this transmitter/);
  });

  it('refuses an HS256 SET whose secret is the transmitter\'s public key (algorithm confusion): invalid_key', async () => {
    const secret = new TextEncoder().encode(JSON.stringify(es256.jwk));
    const token = await new SignJWT(claimsOf({})).setProtectedHeader({ alg: 'HS256', typ: 'secevent+jwt', kid: 't1' }).sign(secret);
    expect((await refusal(receiver().receive(token, SET_MEDIA_TYPE), 'invalid_key')).description).toMatch(/symmetric algorithm "HS256"/);
  });

  it('refuses an unsigned SET (alg "none"): authentication_failed', async () => {
    const token = new UnsecuredJWT(claimsOf({})).encode();
    expect((await refusal(receiver().receive(token, SET_MEDIA_TYPE), 'authentication_failed')).description).toMatch(/unsigned \(algorithm "none"\)/);
  });
});

describe('RFC 8935 push from a transmitter with a jwks_uri (127.0.0.1)', () => {
  it('fetches the keys and verifies the SET', async () => {
    const verified = await receiver().receive(await set({ key: rs256, iss: REMOTE }), SET_MEDIA_TYPE);
    expect(verified.iss).toBe(REMOTE);
  });

  it('refuses a SET from the remote transmitter signed with the local transmitter\'s key (ES256, where only RS256 is allowed): invalid_key', async () => {
    expect((await refusal(receiver().receive(await set({ key: es256, iss: REMOTE }), SET_MEDIA_TYPE), 'invalid_key')).description).toMatch(/"ES256" is not allowed for this transmitter \(allowed: RS256\)/);
  });

  it('refuses a SET from the remote transmitter forged with another RSA key under its kid: authentication_failed', async () => {
    const forger = await keyPair('RS256', 'r1');
    await refusal(receiver().receive(await set({ key: forger, iss: REMOTE }), SET_MEDIA_TYPE), 'authentication_failed');
  });

  it('answers 503 (TransmitterKeysUnavailable), not 400, when the keys cannot be fetched: the transmitter retries', async () => {
    serverBroken = true;
    try {
      const promise = receiver().receive(await set({ key: rs256, iss: REMOTE }), SET_MEDIA_TYPE);
      await expect(promise).rejects.toBeInstanceOf(TransmitterKeysUnavailable);
      await expect(promise).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/cannot fetch the keys of signal transmitter https:\/\/ssf\.example\.net/) });
    } finally {
      serverBroken = false;
    }
  });
});

describe('CAEP and RISC events through the receiver (RFC 8417 §2.2 events → intents)', () => {
  const user = { format: 'iss_sub', iss: TRANSMITTER, sub: 'alice' };
  const receive = async (events: Record<string, unknown>, subId: unknown = user) => intentsOf(await receiver().receive(await set({ events, claims: { sub_id: subId } }), SET_MEDIA_TYPE));
  const base = (eventType: string) => ({ eventType, transmitter: TRANSMITTER });

  it('CAEP session-revoked with an opaque session ID → revoke-session of that sid', async () => {
    expect(await receive({ [EVENT_TYPE.SESSION_REVOKED]: { initiating_entity: 'admin' } }, { format: 'opaque', id: 'sess-42' })).toEqual([
      { ...base(EVENT_TYPE.SESSION_REVOKED), kind: 'revoke-session', issuer: TRANSMITTER, sid: 'sess-42' },
    ]);
  });

  it('CAEP credential-change → revoke-user', async () => {
    expect(await receive({ [EVENT_TYPE.CREDENTIAL_CHANGE]: { credential_type: 'password', change_type: 'update' } })).toEqual([
      { ...base(EVENT_TYPE.CREDENTIAL_CHANGE), kind: 'revoke-user', issuer: TRANSMITTER, sub: 'alice' },
    ]);
  });

  it('RISC account-disabled → revoke-user', async () => {
    expect(await receive({ [EVENT_TYPE.ACCOUNT_DISABLED]: { reason: 'hijacking' } })).toEqual([{ ...base(EVENT_TYPE.ACCOUNT_DISABLED), kind: 'revoke-user', issuer: TRANSMITTER, sub: 'alice' }]);
  });

  it('RISC account-purged (subject by email) → revoke-user', async () => {
    expect(await receive({ [EVENT_TYPE.ACCOUNT_PURGED]: {} }, { format: 'email', email: 'alice@example.com' })).toEqual([
      { ...base(EVENT_TYPE.ACCOUNT_PURGED), kind: 'revoke-user', issuer: TRANSMITTER, email: 'alice@example.com' },
    ]);
  });

  it('CAEP risk-level-change → risk-level', async () => {
    expect(await receive({ [EVENT_TYPE.RISK_LEVEL_CHANGE]: { principal: 'USER', current_level: 'HIGH', previous_level: 'LOW', risk_reason: 'PASSWORD_FOUND_IN_DATA_BREACH' } })).toEqual([
      { ...base(EVENT_TYPE.RISK_LEVEL_CHANGE), kind: 'risk-level', scale: 'risk', level: 'HIGH', previousLevel: 'LOW', issuer: TRANSMITTER, sub: 'alice' },
    ]);
  });

  it('RFC 8935 §2.4: refuses a known event whose payload does not conform (risk level missing or not LOW/MEDIUM/HIGH) with invalid_request', async () => {
    const r = receiver();
    const bad = (payload: unknown) => set({ events: { [EVENT_TYPE.RISK_LEVEL_CHANGE]: payload }, claims: { sub_id: user } });
    expect((await refusal(r.receive(await bad({ principal: 'USER' }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/"current_level" is required/);
    expect((await refusal(r.receive(await bad({ principal: 'USER', current_level: 'SEVERE' }), SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/LOW, MEDIUM, HIGH/);
  });

  it('RFC 8935 §2.4: refuses a malformed subject of a known event (iss_sub without sub) with invalid_request', async () => {
    const token = await set({ events: { [EVENT_TYPE.ACCOUNT_DISABLED]: {} }, claims: { sub_id: { format: 'iss_sub', iss: TRANSMITTER } } });
    expect((await refusal(receiver().receive(token, SET_MEDIA_TYPE), 'invalid_request')).description).toMatch(/iss_sub needs "iss" and "sub"/);
  });
});
