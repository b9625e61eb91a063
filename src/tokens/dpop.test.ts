import fc from 'fast-check';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { ManualClock } from '../core/clock';
import { sha256 } from '../core/hash';
import { OAuthError, TemporarilyUnavailable } from './errors';
import {
  accessTokenHash,
  DpopNonces,
  DpopReplayCache,
  dpopChallenge,
  dpopHeader,
  dpopThumbprint,
  InvalidDpopProof,
  MAX_JTI_LENGTH,
  normalizeHtu,
  UseDpopNonce,
  verifyDpopProof,
  type DpopExpectation,
} from './dpop';

const T0 = new Date('2025-06-01T12:00:00Z');
const T0S = T0.getTime() / 1000;
const URL_ = 'https://broker.example/oauth2/token';

interface Pair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}
let pair: Pair;
let other: Pair;

async function newPair(alg = 'ES256'): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, jwk: await exportJWK(publicKey) };
}

beforeAll(async () => {
  pair = await newPair();
  other = await newPair();
});

let jtiCounter = 0;
const claims = (over: Record<string, unknown> = {}): JWTPayload => ({ jti: `jti-${++jtiCounter}`, htm: 'POST', htu: URL_, iat: T0S, ...over });

/** A proof signed by `key` (default `pair`), claims and header overridable; `undefined` in `over` removes a claim. */
async function proof(over: Record<string, unknown> = {}, opts: { key?: Pair; header?: Record<string, unknown>; signWith?: CryptoKey | Uint8Array } = {}): Promise<string> {
  const key = opts.key ?? pair;
  const payload = Object.fromEntries(Object.entries(claims(over)).filter(([, v]) => v !== undefined));
  const header = { alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk, ...opts.header };
  return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(opts.signWith ?? key.privateKey);
}

let clock: ManualClock;
let replay: DpopReplayCache;
beforeEach(() => {
  clock = new ManualClock(T0);
  replay = new DpopReplayCache({ clock });
});
const expectation = (over: Partial<DpopExpectation> = {}): DpopExpectation => ({ method: 'POST', url: URL_, clock, replay, ...over });

/** The refusal verifyDpopProof throws (fails the test when it resolves). */
async function refusal(p: string | Promise<string>, over: Partial<DpopExpectation> = {}): Promise<OAuthError> {
  try {
    await verifyDpopProof(await p, expectation(over));
  } catch (err) {
    if (err instanceof OAuthError) return err;
    throw err;
  }
  throw new Error('the proof was accepted');
}

const b64json = (v: unknown): string => base64url.encode(JSON.stringify(v));

describe('RFC 9449 §4.3 a valid proof', () => {
  it('is accepted and answers the key thumbprint (RFC 7638) and the claims', async () => {
    const p = await proof({ jti: 'abc' });
    const got = await verifyDpopProof(p, expectation());
    expect(got.jkt).toBe(await calculateJwkThumbprint(pair.jwk, 'sha256'));
    expect(got.jkt).toBe(await dpopThumbprint(pair.jwk));
    expect(got).toMatchObject({ jti: 'abc', htm: 'POST', htu: URL_, iat: T0S });
    expect(got.publicJwk).toEqual({ kty: 'EC', crv: 'P-256', x: pair.jwk.x, y: pair.jwk.y });
    expect(got.nonce).toBeUndefined();
    expect(got.ath).toBeUndefined();
  });

  it('accepts Ed25519 keys (EdDSA and the fully specified Ed25519)', async () => {
    const ed = await newPair('Ed25519');
    for (const alg of ['EdDSA', 'Ed25519']) {
      const p = await proof({}, { key: ed, header: { alg } });
      await expect(verifyDpopProof(p, expectation())).resolves.toMatchObject({ jkt: await dpopThumbprint(ed.jwk) });
    }
  });
});

describe('RFC 9449 §4.3 points 2–7: header and signature', () => {
  it.each([['JWT'], ['application/dpop+jwt'], ['DPOP+JWT'], [undefined]])('refuses typ %p', async (typ) => {
    const err = await refusal(proof({}, { header: { typ } }));
    expect(err).toBeInstanceOf(InvalidDpopProof);
    expect(err.error).toBe('invalid_dpop_proof');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/"typ"/);
  });

  it('refuses alg none (an unsigned JWT)', async () => {
    const unsigned = `${b64json({ alg: 'none', typ: 'dpop+jwt', jwk: pair.jwk })}.${b64json(claims())}.`;
    const err = await refusal(unsigned);
    expect(err).toBeInstanceOf(InvalidDpopProof);
    expect(err.message).toMatch(/algorithm is not allowed/);
  });

  it('refuses HS256 (a MAC is not proof of possession)', async () => {
    const secret = new Uint8Array(32).fill(7);
    const err = await refusal(proof({}, { header: { alg: 'HS256' }, signWith: secret }));
    expect(err).toBeInstanceOf(InvalidDpopProof);
    expect(err.message).toMatch(/algorithm is not allowed/);
  });

  it('refuses an algorithm outside the narrowed list', async () => {
    const es384 = await newPair('ES384');
    const err = await refusal(proof({}, { key: es384, header: { alg: 'ES384' } }), { algorithms: ['ES256'] });
    expect(err.message).toMatch(/allowed: ES256;/);
  });

  it('refuses a jwk header with a private key (point 7)', async () => {
    const privateJwk = await exportJWK(pair.privateKey);
    expect(privateJwk.d).toBeDefined();
    const err = await refusal(proof({}, { header: { jwk: privateJwk } }));
    expect(err.message).toMatch(/private key/);
  });

  it('refuses a symmetric jwk, and a proof without jwk', async () => {
    expect((await refusal(proof({}, { header: { jwk: { kty: 'oct', k: 'AAAA' } } }))).message).toMatch(/private key/);
    expect((await refusal(proof({}, { header: { jwk: undefined } }))).message).toMatch(/no "jwk"/);
    expect((await refusal(proof({}, { header: { jwk: { kty: 'EC', crv: 'P-256', x: pair.jwk.x } } }))).message).toMatch(/not a well-formed public key/);
  });

  it('refuses a proof signed by another key than its jwk (point 6)', async () => {
    const err = await refusal(proof({}, { signWith: other.privateKey }));
    expect(err.message).toMatch(/signature does not verify/);
  });

  it('refuses a key that does not fit the algorithm', async () => {
    // A P-256 proof whose header claims ES384 (jose will not sign that combination).
    const [, payload, signature] = (await proof()).split('.');
    const err = await refusal(`${b64json({ alg: 'ES384', typ: 'dpop+jwt', jwk: pair.jwk })}.${payload}.${signature}`);
    expect(err).toBeInstanceOf(InvalidDpopProof);
    expect(err.message).toMatch(/cannot verify it/);
  });

  it('refuses text that is not a JWT, and an over-long proof', async () => {
    expect((await refusal('not a jwt')).message).toMatch(/not a JWT/);
    expect((await refusal('')).message).toMatch(/missing/);
    expect((await refusal('a'.repeat(9000))).message).toMatch(/longer than/);
  });
});

describe('RFC 9449 §4.2 / §4.3 point 3: required claims', () => {
  it.each(['jti', 'htm', 'htu', 'iat'])('refuses a proof without %s', async (claim) => {
    const err = await refusal(proof({ [claim]: undefined }));
    expect(err).toBeInstanceOf(InvalidDpopProof);
    expect(err.message).toContain(`"${claim}"`);
  });

  it('refuses an empty or over-long jti', async () => {
    expect((await refusal(proof({ jti: '' }))).message).toMatch(/no "jti"/);
    expect((await refusal(proof({ jti: 'x'.repeat(MAX_JTI_LENGTH + 1) }))).message).toMatch(/longer than/);
    await expect(verifyDpopProof(await proof({ jti: 'x'.repeat(MAX_JTI_LENGTH) }), expectation())).resolves.toBeDefined();
  });

  it('refuses claims of the wrong type', async () => {
    expect(await refusal(proof({ jti: 42 }))).toBeInstanceOf(InvalidDpopProof);
    expect(await refusal(proof({ iat: '1700000000' }))).toBeInstanceOf(InvalidDpopProof);
    expect(await refusal(proof({ nonce: 5 }))).toBeInstanceOf(InvalidDpopProof);
  });
});

describe('RFC 9449 §4.3 point 8: htm', () => {
  it.each(['GET', 'post'])('refuses htm %s for a POST', async (htm) => {
    expect((await refusal(proof({ htm }))).message).toMatch(/"htm"/);
  });
});

describe('RFC 9449 §4.3 point 9: htu', () => {
  it('ignores the query and fragment of the request URL and of htu', async () => {
    await expect(verifyDpopProof(await proof(), expectation({ url: `${URL_}?a=1#f` }))).resolves.toBeDefined();
    await expect(verifyDpopProof(await proof({ htu: `${URL_}?x=y` }), expectation())).resolves.toBeDefined();
  });

  it.each([
    'HTTPS://Broker.EXAMPLE/oauth2/token',
    'https://broker.example:443/oauth2/token',
    'https://broker.example/oauth2/%74oken', // %74 is "t", unreserved (RFC 3986 §6.2.2.2)
    'https://broker.example/oauth2/x/../token',
  ])('accepts the equivalent htu %s (RFC 3986 §6)', async (htu) => {
    await expect(verifyDpopProof(await proof({ htu }), expectation())).resolves.toBeDefined();
  });

  it.each([
    'https://broker.example/oauth2/token/',
    'https://broker.example/oauth2/Token',
    'http://broker.example/oauth2/token',
    'https://broker.example:8443/oauth2/token',
    'https://other.example/oauth2/token',
    'https://user@broker.example/oauth2/token',
    '/oauth2/token',
    'not a url',
  ])('refuses htu %s', async (htu) => {
    expect((await refusal(proof({ htu }))).message).toMatch(/"htu"/);
  });

  it('compares default ports of the request URL too', async () => {
    await expect(verifyDpopProof(await proof({ htu: 'http://rs.example/mcp' }), expectation({ url: 'http://RS.example:80/mcp' }))).resolves.toBeDefined();
    expect(normalizeHtu('https://a.example/%7e%2f')).toBe('https://a.example/~%2F');
  });
});

describe('RFC 9449 §4.3 point 11: iat window', () => {
  it('accepts a proof up to maxAgeSeconds old and refuses it after', async () => {
    const p = await proof({ jti: 'old' });
    clock.advance(61);
    expect((await refusal(p)).message).toMatch(/more than 60 seconds ago/);
    clock.set(T0);
    clock.advance(60);
    await expect(verifyDpopProof(p, expectation())).resolves.toBeDefined();
  });

  it('honours maxAgeSeconds', async () => {
    const p = await proof();
    clock.advance(11);
    expect((await refusal(p, { maxAgeSeconds: 10 })).message).toMatch(/more than 10 seconds ago/);
  });

  it('accepts iat up to clockSkewSeconds in the future and refuses beyond', async () => {
    await expect(verifyDpopProof(await proof({ iat: T0S + 5 }), expectation())).resolves.toBeDefined();
    expect((await refusal(proof({ iat: T0S + 6 }))).message).toMatch(/in the future/);
    await expect(verifyDpopProof(await proof({ iat: T0S + 6 }), expectation({ clockSkewSeconds: 10 }))).resolves.toBeDefined();
  });

  it('refuses a proof whose own exp has passed, by the injected clock', async () => {
    const p = await proof({ exp: T0S + 10 });
    clock.advance(20);
    expect((await refusal(p)).message).toMatch(/expired/);
  });
});

describe('RFC 9449 §4.3 point 12: ath and the bound key', () => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2ln';

  it('accepts ath = base64url(SHA-256(token))', async () => {
    const ath = base64url.encode(sha256(token));
    expect(accessTokenHash(token)).toBe(ath);
    await expect(verifyDpopProof(await proof({ ath }), expectation({ accessToken: token }))).resolves.toMatchObject({ ath });
  });

  it('requires ath when an access token is presented', async () => {
    expect((await refusal(proof(), { accessToken: token })).message).toMatch(/no "ath"/);
  });

  it('refuses an ath of another token, without echoing either', async () => {
    const err = await refusal(proof({ ath: accessTokenHash('another') }), { accessToken: token });
    expect(err.message).toMatch(/"ath" does not match/);
    expect(err.message).not.toContain(token);
    expect(err.message).not.toContain(accessTokenHash('another'));
  });

  it('refuses a proof by a key other than cnf.jkt, and accepts the bound key', async () => {
    const bound = await dpopThumbprint(other.jwk);
    expect((await refusal(proof(), { jkt: bound })).message).toMatch(/cnf\.jkt/);
    await expect(verifyDpopProof(await proof({}, { key: other }), expectation({ jkt: bound }))).resolves.toMatchObject({ jkt: bound });
  });
});

describe('RFC 9449 §8 / §9: nonces', () => {
  it('answers use_dpop_nonce with the fresh nonce when the nonce is missing or wrong', async () => {
    const missing = await refusal(proof(), { nonce: 'n-1' });
    expect(missing).toBeInstanceOf(UseDpopNonce);
    expect(missing.toJSON()).toEqual({ error: 'use_dpop_nonce', error_description: expect.stringMatching(/requires a nonce/) });
    expect((missing as UseDpopNonce).nonce).toBe('n-1');
    expect(missing.status).toBe(400);
    const wrong = await refusal(proof({ nonce: 'n-0' }), { nonce: 'n-1' });
    expect(wrong).toBeInstanceOf(UseDpopNonce);
    expect(wrong.message).toMatch(/not the current one/);
  });

  it('accepts the required nonce', async () => {
    await expect(verifyDpopProof(await proof({ nonce: 'n-1' }), expectation({ nonce: 'n-1' }))).resolves.toMatchObject({ nonce: 'n-1' });
  });

  it('with DpopNonces: accepts the current and previous step, refuses older, hands out the current one', async () => {
    const nonces = new DpopNonces({ clock, stepSeconds: 60, random: { bytes: (n) => new Uint8Array(n).fill(1) } });
    const first = nonces.current();
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expect(verifyDpopProof(await proof({ nonce: first }), expectation({ nonce: nonces }))).resolves.toBeDefined();
    clock.advance(60);
    const second = nonces.current();
    expect(second).not.toBe(first);
    expect(nonces.valid(first)).toBe(true);
    expect(nonces.valid(second)).toBe(true);
    clock.advance(60);
    expect(nonces.valid(first)).toBe(false);
    const err = await refusal(proof({ nonce: first, iat: clock.now().getTime() / 1000 }), { nonce: nonces });
    expect(err).toBeInstanceOf(UseDpopNonce);
    expect((err as UseDpopNonce).nonce).toBe(nonces.current());
  });

  it('DpopNonces with a shared secret agree across replicas; random secrets do not', () => {
    const secret = new Uint8Array(32).fill(9);
    expect(new DpopNonces({ clock, secret }).current()).toBe(new DpopNonces({ clock, secret }).current());
    expect(new DpopNonces({ clock }).valid(new DpopNonces({ clock }).current())).toBe(false);
  });

  it('a refused nonce does not use up the jti', async () => {
    const p1 = await proof({ jti: 'retry' });
    expect(await refusal(p1, { nonce: 'n-1' })).toBeInstanceOf(UseDpopNonce);
    await expect(verifyDpopProof(await proof({ jti: 'retry', nonce: 'n-1' }), expectation({ nonce: 'n-1' }))).resolves.toBeDefined();
  });
});

describe('RFC 9449 §11.1: replay', () => {
  it('refuses a proof used twice, and its jti with another URL', async () => {
    const p = await proof({ jti: 'once' });
    await verifyDpopProof(p, expectation());
    expect((await refusal(p)).message).toMatch(/used before/);
    const sameJtiOtherUrl = await proof({ jti: 'once', htu: 'https://broker.example/oauth2/other' });
    expect((await refusal(sameJtiOtherUrl, { url: 'https://broker.example/oauth2/other' })).message).toMatch(/used before/);
  });

  it('keys by (jkt, jti): another key may use the same jti', async () => {
    await verifyDpopProof(await proof({ jti: 'shared' }), expectation());
    await expect(verifyDpopProof(await proof({ jti: 'shared' }, { key: other }), expectation())).resolves.toBeDefined();
  });

  it('allows a jti again once the first proof is past its window (the old proof stays refused as too old)', async () => {
    const first = await proof({ jti: 'again' });
    await verifyDpopProof(first, expectation());
    clock.advance(60);
    expect((await refusal(first)).message).toMatch(/used before/);
    clock.advance(1);
    expect((await refusal(first)).message).toMatch(/more than 60 seconds ago/);
    const later = await proof({ jti: 'again', iat: clock.now().getTime() / 1000 });
    await expect(verifyDpopProof(later, expectation())).resolves.toBeDefined();
  });

  it('is bounded: refuses (503, fail closed) when full of live entries, evicts expired ones', async () => {
    const small = new DpopReplayCache({ clock, maxEntries: 2 });
    await verifyDpopProof(await proof(), expectation({ replay: small }));
    await verifyDpopProof(await proof(), expectation({ replay: small }));
    expect(small.size).toBe(2);
    const err = await refusal(proof(), { replay: small });
    expect(err).toBeInstanceOf(TemporarilyUnavailable);
    expect(err.status).toBe(503);
    clock.advance(61);
    await expect(verifyDpopProof(await proof({ iat: clock.now().getTime() / 1000 }), expectation({ replay: small }))).resolves.toBeDefined();
    expect(small.size).toBe(1);
  });

  it('remember answers fresh, replayed, full', () => {
    const cache = new DpopReplayCache({ clock, maxEntries: 1 });
    expect(cache.remember('k', 'a', T0S + 10)).toBe('fresh');
    expect(cache.remember('k', 'a', T0S + 10)).toBe('replayed');
    expect(cache.remember('k', 'b', T0S + 10)).toBe('full');
    clock.advance(10);
    expect(cache.remember('k', 'a', T0S + 20)).toBe('replayed');
    clock.advance(1);
    expect(cache.remember('k', 'b', T0S + 20)).toBe('fresh');
    expect(() => new DpopReplayCache({ clock, maxEntries: 0 })).toThrow(RangeError);
  });
});

describe('RFC 9449 §4.3 point 1: the DPoP header', () => {
  it('answers the one value, or undefined when absent', () => {
    expect(dpopHeader({ dpop: ' a.b.c ' })).toBe('a.b.c');
    expect(dpopHeader({})).toBeUndefined();
  });

  it.each([[{ dpop: 'a.b.c, d.e.f' }], [{ dpop: ['a.b.c', 'd.e.f'] as unknown as string }], [{ dpop: '' }]])('refuses %p', (headers) => {
    expect(() => dpopHeader(headers)).toThrow(InvalidDpopProof);
  });
});

describe('RFC 9449 §7.1 resource servers', () => {
  it('forResource() answers 401 with the same code; dpopChallenge names it and the algs', async () => {
    const err = (await refusal(proof({ htm: 'GET' }))) as InvalidDpopProof;
    const rs = err.forResource();
    expect(rs).toBeInstanceOf(InvalidDpopProof);
    expect(rs.status).toBe(401);
    expect(rs.toJSON()).toEqual(err.toJSON());
    expect(dpopChallenge(rs, { algs: ['ES256'] })).toBe(`DPoP error="invalid_dpop_proof", error_description="${rs.message.replace(/"/g, "'").replace(/§ ?/g, 'section ')}", algs="ES256"`);
    const nonce = new UseDpopNonce('n', 'the server requires a nonce').forResource();
    expect(nonce.status).toBe(401);
    expect(nonce.nonce).toBe('n');
    expect(dpopChallenge(undefined)).toMatch(/^DPoP algs="ES256 ES384 /);
  });
});

describe('property: arbitrary proofs', () => {
  const RUNS = Number(process.env.FC_RUNS ?? 200);
  // Lazily: `pair` exists only once beforeAll has run.
  const goodHeader = fc.constant(null).map(() => b64json({ alg: 'ES256', typ: 'dpop+jwt', jwk: pair.jwk }));
  const part = fc.oneof(fc.string({ maxLength: 40 }), fc.json({ maxDepth: 2 }).map((j) => base64url.encode(j)), fc.constantFrom('', 'e30', b64json({ alg: 'ES256', typ: 'dpop+jwt' })), goodHeader);
  const shaped = fc.tuple(goodHeader, fc.json({ maxDepth: 2 }).map((j) => base64url.encode(j)), fc.uint8Array({ maxLength: 70 }).map((b) => base64url.encode(b))).map((p) => p.join('.'));
  const text = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.array(part, { minLength: 1, maxLength: 4 }).map((p) => p.join('.')), shaped);

  it('never resolves and throws only the module\'s OAuthError', async () => {
    await fc.assert(
      fc.asyncProperty(text, async (p) => {
        try {
          await verifyDpopProof(p, expectation());
        } catch (err) {
          return err instanceof InvalidDpopProof;
        }
        return false;
      }),
      { numRuns: RUNS },
    );
  });
});
