import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { ManualClock } from '../core/clock';
import { hasControlCharacter } from '../core/text';
import { SetError } from './errors';
import { EVENT_TYPE, intentsOf } from './events';
import { SET_MEDIA_TYPE, SetReceiver, signalTransmittersSchema } from './set';

// SETs arrive from the network (POST /v1/signals). Whatever the body, receive() returns a
// verified SET whose intents can be read without throwing, or throws SetError (RFC 8935 §2.4).

const RUNS = Number(process.env.FC_RUNS ?? 300);
const TRANSMITTER = 'https://idp.example.com';
const AUDIENCE = 'https://writ.example.com/v1/signals';
const T0 = new Date('2026-11-27T12:00:00Z');
const now = Math.floor(T0.getTime() / 1000);

let key: CryptoKey;
let receiver: SetReceiver;
let dir: string;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  dir = mkdtempSync(join(tmpdir(), 'writ-set-prop-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', kid: 't1' }] }));
  const config = signalTransmittersSchema.parse([{ issuer: TRANSMITTER, jwks_file: join(dir, 'jwks.json'), audience: AUDIENCE, algorithms: ['ES256'], subject_issuers: ['https://login.example.com'] }]);
  receiver = new SetReceiver(config, { clock: new ManualClock(T0) });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs receive(); answers the SET, or the SetError it threw (any other outcome fails the property). */
async function outcome(body: string, contentType: string = SET_MEDIA_TYPE) {
  try {
    const set = await receiver.receive(body, contentType);
    expect(() => intentsOf(set)).not.toThrow(); // the contract: a returned SET maps to intents without throwing
    return set;
  } catch (err) {
    expect(err).toBeInstanceOf(SetError);
    expect((err as SetError).status).toBe(400);
    expect((err as SetError).description.length).toBeGreaterThan(0);
    return err as SetError;
  }
}

const text = fc.oneof(fc.string({ maxLength: 24 }), fc.string({ unit: 'binary', maxLength: 24 }), fc.constantFrom('\u0000', 'a\u0001b', '\ud800', '', 'LOW', 'HIGH', 'RFC8176', TRANSMITTER, 'https://login.example.com'));
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(text, tie('value'), { maxKeys: 3 })),
})).value;
const b64 = (value: unknown) => base64url.encode(typeof value === 'string' ? value : JSON.stringify(value) ?? '');

describe('SetReceiver.receive (RFC 8417, RFC 8935), properties', () => {
  it('arbitrary compact-serialization-like strings are SetError invalid_request and the like, never another error', async () => {
    const part = fc.oneof(fc.string({ maxLength: 40 }), json.map(b64), fc.base64String({ maxLength: 40 }));
    await fc.assert(
      fc.asyncProperty(fc.array(part, { minLength: 1, maxLength: 6 }), fc.constantFrom(SET_MEDIA_TYPE, 'application/jwt', 'text/plain', ''), async (parts, type) => {
        const r = await outcome(parts.join('.'), type);
        expect(r).toBeInstanceOf(SetError);
      }),
      { numRuns: RUNS },
    );
  });

  it('unsigned and forged headers around arbitrary payloads are refused', async () => {
    const header = fc.record({ alg: fc.oneof(fc.constantFrom('none', 'HS256', 'ES256', 'RS256', 'EdDSA'), text), typ: fc.option(fc.oneof(fc.constantFrom('secevent+jwt', 'JWT'), text), { nil: undefined }), kid: fc.option(text, { nil: undefined }) }, { requiredKeys: ['alg'] });
    await fc.assert(
      fc.asyncProperty(header, json, fc.string({ maxLength: 60 }), async (h, payload, signature) => {
        expect(await outcome(`${b64(h)}.${b64(payload)}.${base64url.encode(signature)}`)).toBeInstanceOf(SetError);
      }),
      { numRuns: RUNS },
    );
  });

  it('a SET signed by the transmitter with arbitrary claims is verified (its intents readable) or refused with SetError', async () => {
    /** Mostly `valid`, sometimes `hostile`: so that hostile values meet the checks behind the first. */
    const mostly = <T, U>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<U>) => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: hostile });
    const subject = mostly(
      fc.record({ format: fc.constantFrom('iss_sub', 'email', 'opaque'), iss: mostly(fc.constantFrom(TRANSMITTER, 'https://login.example.com'), text), sub: text, email: text, id: text }),
      fc.oneof(json, fc.record({ format: fc.constantFrom('complex', 'aliases', 'phone_number'), user: json, session: json, identifiers: fc.array(json, { maxLength: 2 }) }, { requiredKeys: ['format'] })),
    );
    const payload = fc.record(
      { subject, current_level: mostly(fc.constantFrom('LOW', 'medium', 'HIGH', 'aal2'), json), previous_level: text, namespace: mostly(fc.constant('RFC8176'), json), principal: mostly(fc.constantFrom('USER', 'SESSION'), text), reason_admin: json },
      { requiredKeys: [] },
    );
    const events = mostly(fc.dictionary(mostly(fc.constantFrom(...Object.values(EVENT_TYPE)), text), mostly(payload, json), { minKeys: 1, maxKeys: 3 }), json);
    const claims = fc.record(
      { jti: mostly(fc.uuid(), fc.oneof(text, json)), iat: mostly(fc.constant(now), fc.integer({ min: now - 86400, max: now + 86400 })), txn: mostly(fc.uuid(), fc.oneof(text, json)), toe: mostly(fc.constant(now), json), sub_id: subject, events, extra: json },
      { requiredKeys: ['jti', 'iat', 'events'] },
    );
    let verified = 0;
    await fc.assert(
      fc.asyncProperty(claims, async (c) => {
        const token = await new SignJWT(c as JWTPayload).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 't1' }).setIssuer(TRANSMITTER).setAudience(AUDIENCE).sign(key);
        const r = await outcome(token);
        if (r instanceof SetError) return;
        verified++;
        // What is kept and audited holds no control character in identifiers and no NUL anywhere.
        expect(hasControlCharacter(r.jti)).toBe(false);
        expect(JSON.stringify(r.claims)).not.toMatch(/\\u0000/);
        for (const type of Object.keys(r.events)) expect(hasControlCharacter(type)).toBe(false);
      }),
      { numRuns: RUNS },
    );
    expect(verified).toBeGreaterThan(0); // the generator reaches past the checks
  });
});
