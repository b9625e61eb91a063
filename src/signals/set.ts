/**
 * Security Event Tokens (RFC 8417) pushed to Writ by Shared Signals transmitters (RFC 8935
 * push delivery; OpenID SSF, CAEP, RISC), verified against the transmitters trusted in the
 * config file (`signal_transmitters:`). Key handling and verification are `src/jwt`'s: a
 * `jwks_file` read at start-up, or a `jwks_uri` fetched with a timeout, a size cap, a cache
 * and a rate-limited refresh ({@link issuerRegistry}, {@link verifyJwt}).
 *
 * Pipeline (each refusal a {@link SetError} with its RFC 8935 §2.4 `err`):
 *   media type (`application/secevent+jwt`, RFC 8935 §2.1) → shape (a JWS, RFC 8417 §2) →
 *   `typ` (RFC 8417 §2.3) → algorithm (asymmetric only, RFC 8725 §3.1) → transmitter (from the
 *   unverified `iss`, only to choose the keys) → signature and registered claims (`iss`, `aud`
 *   includes the configured audience, `exp` and `nbf` when present, `iat` and `jti` required)
 *   → SET claims (`iat` not in the future, `jti`, `events`, `txn`, `toe`, `sub_id`) → the
 *   payloads of the events Writ acts on ({@link intentsOf}).
 *
 * Decisions:
 * - `typ`: RFC 8417 §2.3 only RECOMMENDS `secevent+jwt`, and deployed transmitters omit it,
 *   so a SET without `typ` is accepted; a SET with any other `typ` (`JWT`, `at+jwt`, …) is
 *   another kind of token and is refused (RFC 8417 §4.3, RFC 8725 §3.11). Without `typ`, an
 *   ID token or access token is still not taken for a SET: it has no `events` claim.
 * - `exp`: RFC 8417 lets a SET carry one; when present it is honoured (with the clock skew).
 * - Encrypted SETs (JWE) are not supported: `invalid_request`.
 * - The transmitter's keys not being fetchable is {@link TransmitterKeysUnavailable} (503, so
 *   the transmitter retries), never a 400.
 * - Replays are not detected here: the caller stores `jti` per `iss` (RFC 8935 §2.2 lets a
 *   recipient acknowledge a duplicate without acting on it twice).
 *
 * ```ts
 * const receiver = new SetReceiver(signalTransmittersSchema.parse(file.signal_transmitters), { clock: systemClock });
 * const set = await receiver.receive(body, req.get('content-type')); // throws SetError → 400 {err, description}
 * if (!(await seen(set.iss, set.jti))) apply(intentsOf(set));        // then answer 202
 * ```
 */
import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { z } from 'zod';
import type { Clock } from '../core/clock';
import { findTextProblem, problemOfMember, quote, textProblem } from '../core/text';
import {
  forbiddenAlgorithm,
  issuerRegistry,
  JwtError,
  MAX_TOKEN_LENGTH,
  trustedIssuerOptions,
  trustedIssuerSchema,
  trustedIssuersSchema,
  verifyJwt,
  type IssuerRegistry,
  type JwtFailure,
  type KeySourceDeps,
  type RegisteredIssuer,
  type TrustedIssuer,
} from '../jwt';
import { SetError, TransmitterKeysUnavailable, type SetErrorCode } from './errors';
import { intentsOf } from './events';

/** The media type of a pushed SET (RFC 8935 §2.1, RFC 8417 §7.2). */
export const SET_MEDIA_TYPE = 'application/secevent+jwt';
/** The `typ` header value RFC 8417 §2.3 recommends. */
export const SET_TYP = 'secevent+jwt';
/** Longer `jti` values are refused: the caller stores them to detect replays. */
export const MAX_JTI_LENGTH = 256;

// ---------------------------------------------------------------------------------------
// Configuration: one entry of `signal_transmitters:` (snake_case keys).
// ---------------------------------------------------------------------------------------

/** One trusted SET transmitter, as the receiver uses it: a {@link TrustedIssuer} (its `audience` is Writ, as this transmitter knows it; its clock skew also bounds an `iat` ahead of Writ's clock). */
export interface SignalTransmitterConfig extends TrustedIssuer {
  /**
   * Issuers whose users this transmitter may name in an `iss_sub` subject (RFC 9493 §3.2.3):
   * its own issuer, plus `subject_issuers` (for a transmitter that speaks for an identity
   * provider with another issuer). A SET about anyone else's user is acknowledged, not applied.
   */
  readonly subjectIssuers: readonly string[];
}

/** One transmitter under `signal_transmitters:`. Parses snake_case keys into a {@link SignalTransmitterConfig}. */
export const signalTransmitterSchema = trustedIssuerSchema({ subject_issuers: z.array(z.string().min(1)).default([]) }, (c) => ({
  subjectIssuers: [...new Set([c.issuer, ...c.subject_issuers])],
}));

/** The `signal_transmitters:` list; an issuer may appear once. */
export const signalTransmittersSchema = trustedIssuersSchema(signalTransmitterSchema);

/** What a config file holds for one transmitter (snake_case). */
export type SignalTransmitterInput = z.input<typeof signalTransmitterSchema>;

// ---------------------------------------------------------------------------------------
// The verified SET.
// ---------------------------------------------------------------------------------------

/** An event payload (RFC 8417 §2.2: a JSON object, possibly empty). */
export type EventPayload = Readonly<Record<string, unknown>>;

/** A SET whose signature, issuer, audience and claims have been verified. */
export interface VerifiedSet {
  /** The transmitter (`iss`, RFC 8417 §2.2), one of the configured ones. */
  readonly iss: string;
  /** `jti`: with `iss`, what a replay is recognised by (the caller keeps them). */
  readonly jti: string;
  readonly iat: Date;
  readonly aud: readonly string[];
  /** `exp`, when the transmitter set one (it has been checked). */
  readonly exp?: Date;
  /** `toe` (time of event, RFC 8417 §2.2), when present. */
  readonly toe?: Date;
  /** `txn` (RFC 8417 §2.2), when present; a number is accepted and given as a string. */
  readonly txn?: string;
  /** The top-level subject (`sub_id`, OpenID SSF §3, RFC 9493 §4), when present. */
  readonly subId?: Readonly<Record<string, unknown>>;
  /** `events`: at least one, event type URI → payload. */
  readonly events: Readonly<Record<string, EventPayload>>;
  /** Issuers whose users this transmitter may name (see {@link SignalTransmitterConfig.subjectIssuers}). */
  readonly subjectIssuers: readonly string[];
  /** Every verified claim, for the audit trail. */
  readonly claims: JWTPayload;
}

// ---------------------------------------------------------------------------------------
// The receiver.
// ---------------------------------------------------------------------------------------

export type SetReceiverDeps = KeySourceDeps;

type Transmitter = RegisteredIssuer<SignalTransmitterConfig>;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const refuse = (err: SetErrorCode, description: string, cause?: unknown): SetError => new SetError(err, description, cause === undefined ? undefined : { cause });

/** The configured transmitters, each with its keys. */
export class SetReceiver {
  readonly #transmitters: IssuerRegistry<SignalTransmitterConfig>;
  readonly #clock: Clock;

  /** Reads every jwks_file now; throws an Error naming the transmitter and the file when one is unusable. */
  constructor(transmitters: readonly SignalTransmitterConfig[], deps: SetReceiverDeps) {
    this.#clock = deps.clock;
    this.#transmitters = issuerRegistry(transmitters, deps, 'signal transmitter');
  }

  /** The configured transmitters' issuers. */
  get issuers(): string[] {
    return [...this.#transmitters.keys()];
  }

  /**
   * Verifies a pushed SET: `token` is the request body (surrounding white space ignored),
   * `contentType` its `Content-Type` header (absent is refused). Throws {@link SetError}
   * naming the rule broken, or {@link TransmitterKeysUnavailable} when the transmitter's keys
   * cannot be fetched. A SET it returns maps to intents with {@link intentsOf} without throwing.
   */
  async receive(token: string, contentType?: string): Promise<VerifiedSet> {
    checkMediaType(contentType);
    const body = bodyOf(token);
    const { header, iss } = peek(body);
    checkTyp(header);
    checkSigned(header);
    const transmitter = this.#transmitters.get(iss);
    if (!transmitter) throw refuse('invalid_issuer', `the SET's issuer ${quote(iss)} is not a configured signal transmitter (RFC 8417 §2.2)`);
    checkAlgorithm(header, transmitter.config);
    const claims = await this.#verifySignatureAndClaims(body, transmitter);
    const set = setOf(claims, transmitter.config, this.#clock.now());
    intentsOf(set); // refuses an event payload Writ acts on that does not conform (invalid_request)
    checkStorableText(claims);
    return set;
  }

  async #verifySignatureAndClaims(token: string, { config, keys }: Transmitter): Promise<JWTPayload> {
    try {
      return await verifyJwt(token, keys, trustedIssuerOptions(config, this.#clock.now(), ['iat', 'jti']));
    } catch (err) {
      if (!(err instanceof JwtError)) throw err;
      if (err.reason === 'keys-unavailable') {
        throw new TransmitterKeysUnavailable(`cannot fetch the keys of signal transmitter ${config.issuer}; try again later`, { cause: err });
      }
      throw refuse(errorCodeOf(err), err.message, err);
    }
  }
}

/** RFC 8935 §2.1: the body is a SET, `Content-Type: application/secevent+jwt` (parameters allowed). */
function checkMediaType(contentType: string | undefined): void {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType === SET_MEDIA_TYPE) return;
  const got = mediaType === undefined || mediaType === '' ? 'no Content-Type' : `Content-Type ${quote(mediaType)}`;
  throw refuse('invalid_request', `a SET is delivered as ${SET_MEDIA_TYPE} (RFC 8935 §2.1), got ${got}`);
}

function bodyOf(token: unknown): string {
  if (typeof token !== 'string') throw refuse('invalid_request', 'the request body must be a SET (RFC 8935 §2.1)');
  const body = token.trim();
  if (body === '') throw refuse('invalid_request', 'the request body is empty: it must be a SET (RFC 8935 §2.1)');
  if (body.length > MAX_TOKEN_LENGTH) throw refuse('invalid_request', `the SET is longer than ${MAX_TOKEN_LENGTH} characters`);
  return body;
}

/** The unverified header and `iss`, only to choose the transmitter and refuse what no transmitter may send. */
function peek(token: string): { header: ProtectedHeaderParameters; iss: string } {
  const parts = token.split('.').length;
  if (parts === 5) throw refuse('invalid_request', 'encrypted SETs (JWE) are not supported: send a signed SET (JWS, RFC 8417 §2)');
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    if (parts !== 3) throw new Error(`${parts} parts`);
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch (err) {
    throw refuse('invalid_request', 'the body is not a SET: a JWT in JWS Compact Serialization (RFC 8417 §2, RFC 7515 §7.1)', err);
  }
  if (typeof payload.iss !== 'string' || payload.iss === '') throw refuse('invalid_request', 'the SET has no "iss" (issuer) claim (RFC 8417 §2.2)');
  return { header, iss: payload.iss };
}

/** RFC 8417 §2.3: `typ` absent (accepted, see the module comment) or `secevent+jwt`, with or without `application/`, in any case (RFC 7515 §4.1.9). */
function checkTyp(header: ProtectedHeaderParameters): void {
  const { typ } = header;
  if (typ === undefined) return;
  const normalized = typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined;
  if (normalized === SET_TYP) return;
  const got = typeof typ === 'string' ? quote(typ, 32) : 'not a string';
  throw refuse('invalid_request', `the JWT's "typ" header is ${got}: a SET is typed ${SET_TYP} (RFC 8417 §2.3) and other tokens are not SETs (RFC 8417 §4.3)`);
}

/**
 * RFC 8725 §2.1, §3.1, before any key is looked at: an unsigned SET (`alg: none`) does not
 * authenticate its transmitter; one "signed" with a shared secret (HS*) uses a key that is
 * never acceptable (whoever can verify could forge, and the transmitter's public key would be
 * the HMAC secret).
 */
function checkSigned(header: ProtectedHeaderParameters): void {
  const alg = header.alg as string;
  const forbidden = forbiddenAlgorithm(alg);
  if (forbidden === 'missing') throw refuse('invalid_request', 'the SET has no "alg" header parameter (RFC 7515 §4.1.1)');
  if (forbidden === 'none') throw refuse('authentication_failed', 'the SET is unsigned (algorithm "none"), which is never accepted (RFC 8725 §3.1)');
  if (forbidden === 'symmetric') {
    throw refuse('invalid_key', `the SET uses the symmetric algorithm ${quote(alg, 16)}; only the transmitter's asymmetric keys are accepted (RFC 8725 §2.1, §3.1)`);
  }
}

function checkAlgorithm(header: ProtectedHeaderParameters, config: SignalTransmitterConfig): void {
  const alg = header.alg as string;
  if (!(config.algorithms as readonly string[]).includes(alg)) {
    throw refuse('invalid_key', `the SET's algorithm ${quote(alg, 16)} is not allowed for this transmitter (allowed: ${config.algorithms.join(', ')})`);
  }
}

/** RFC 8935 §2.4: which `err` a failed verification is. */
function errorCodeOf(err: JwtError): SetErrorCode {
  if (err.claim === 'aud') return 'invalid_audience';
  if (err.claim === 'iss') return 'invalid_issuer';
  return SET_ERROR_OF[err.reason];
}

const SET_ERROR_OF: Record<JwtFailure, SetErrorCode> = {
  signature: 'authentication_failed',
  'no-matching-key': 'invalid_key',
  'algorithm-not-allowed': 'invalid_key',
  'keys-invalid': 'invalid_key',
  // An RSA key under 2048 bits, a key whose "alg" or "use" forbids this.
  'key-unusable': 'invalid_key',
  'keys-unavailable': 'invalid_key',
  expired: 'invalid_request',
  'not-yet-valid': 'invalid_request',
  audience: 'invalid_audience',
  issuer: 'invalid_issuer',
  type: 'invalid_request',
  'claim-missing': 'invalid_request',
  'claim-invalid': 'invalid_request',
  'claim-refused': 'invalid_request',
  malformed: 'invalid_request',
  unsupported: 'invalid_request',
};

/** An absolute URI: a scheme, then something (RFC 3986 §4.3). Event types are URIs (RFC 8417 §2.2). */
const ABSOLUTE_URI = /^[a-z][a-z0-9+.-]*:[^\s]+$/i;

/**
 * RFC 8417 §2.2 on verified claims: `jti` a non-empty string, `iat` not ahead of Writ's clock
 * by more than the skew, `events` an object of at least one event type URI → JSON object,
 * `txn` a string, `toe` a NumericDate, `sub_id` (SSF) an object.
 */
function setOf(claims: JWTPayload, config: SignalTransmitterConfig, now: Date): VerifiedSet {
  const { jti, iat, exp, aud } = claims;
  if (typeof jti !== 'string' || jti === '') throw refuse('invalid_request', 'the SET\'s "jti" claim must be a non-empty string (RFC 8417 §2.2)');
  if (jti.length > MAX_JTI_LENGTH) throw refuse('invalid_request', `the SET's "jti" claim is longer than ${MAX_JTI_LENGTH} characters`);
  // jwtVerify has checked that iat is present and a number, exp (when present) a number in the future.
  const issuedAt = (iat as number) * 1000;
  if (issuedAt > now.getTime() + config.clockSkew * 1000) throw refuse('invalid_request', 'the SET was issued in the future ("iat", RFC 8417 §2.2)');
  const events = eventsOf(claims.events);
  const txn = claims.txn;
  if (txn !== undefined && typeof txn !== 'string' && !(typeof txn === 'number' && Number.isFinite(txn))) {
    throw refuse('invalid_request', 'the SET\'s "txn" claim must be a string (RFC 8417 §2.2)');
  }
  const toe = claims.toe;
  if (toe !== undefined && (typeof toe !== 'number' || !Number.isFinite(toe))) throw refuse('invalid_request', 'the SET\'s "toe" claim must be a NumericDate (RFC 8417 §2.2)');
  const subId = claims.sub_id;
  if (subId !== undefined && !isRecord(subId)) throw refuse('invalid_request', 'the SET\'s "sub_id" claim must be a subject identifier object (RFC 9493 §3, §4)');
  checkIdentifierText(jti, typeof txn === 'string' ? txn : undefined, Object.keys(events));
  return {
    iss: config.issuer,
    jti,
    iat: new Date(issuedAt),
    aud: typeof aud === 'string' ? [aud] : [...(aud ?? [])],
    ...(typeof exp === 'number' ? { exp: new Date(exp * 1000) } : {}),
    ...(toe !== undefined ? { toe: new Date(toe * 1000) } : {}),
    ...(txn !== undefined ? { txn: String(txn) } : {}),
    ...(subId !== undefined ? { subId } : {}),
    events,
    subjectIssuers: config.subjectIssuers,
    claims,
  };
}

/**
 * `jti` and `txn` (kept to recognise replays and correlate, RFC 8417 §2.2) and the event type
 * URIs (RFC 3986 §2: no control characters) hold no control character.
 */
function checkIdentifierText(jti: string, txn: string | undefined, eventTypes: readonly string[]): void {
  for (const [claim, value] of [['jti', jti], ['txn', txn]] as const) {
    const problem = value === undefined ? undefined : textProblem(value, 'identifier');
    if (problem) throw refuse('invalid_request', `the SET's "${claim}" claim ${problem}`);
  }
  for (const type of eventTypes) {
    const problem = textProblem(type, 'identifier');
    if (problem) throw refuse('invalid_request', `the SET's "events" claim names an event type that ${problem}`);
  }
}

/** No claim holds NUL, another control character but tab and line breaks, or an unpaired surrogate: the audit trail records them all. */
function checkStorableText(claims: JWTPayload): void {
  const found = findTextProblem(claims, 'text', 'text');
  if (found) throw refuse('invalid_request', `the SET's claim ${quote(found.path, 128)} ${problemOfMember(found)}`);
}

function eventsOf(events: unknown): Record<string, EventPayload> {
  if (events === undefined) throw refuse('invalid_request', 'the SET has no "events" claim (RFC 8417 §2.2)');
  if (!isRecord(events)) throw refuse('invalid_request', 'the SET\'s "events" claim must be a JSON object (RFC 8417 §2.2)');
  const entries = Object.entries(events);
  if (entries.length === 0) throw refuse('invalid_request', 'the SET\'s "events" claim names no event (RFC 8417 §2.2)');
  for (const [type, payload] of entries) {
    if (!ABSOLUTE_URI.test(type)) throw refuse('invalid_request', `the event type ${quote(type)} is not a URI (RFC 8417 §2.2)`);
    if (!isRecord(payload)) throw refuse('invalid_request', `the payload of event ${quote(type, 128)} must be a JSON object (RFC 8417 §2.2)`);
  }
  return events as Record<string, EventPayload>;
}
