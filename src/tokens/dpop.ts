/**
 * DPoP proofs (RFC 9449): verifying the `DPoP` header of a request — a JWT signed by the
 * client's key, naming the request's method and URL — for the broker's token endpoint (§5)
 * and for resource servers (§7). Pure: time from an injected {@link Clock}, replay state in a
 * {@link DpopReplayCache} and nonces from {@link DpopNonces} passed in by the caller.
 *
 * ```ts
 * const proof = await verifyDpopProof(dpopHeader(req.headers) ?? refuse(), {
 *   method: req.method, url: `https://${host}${req.url}`, clock, replay,
 *   accessToken, jkt: claims.cnf.jkt, // at a resource server (RFC 9449 §4.3 point 12, §7.1)
 * });
 * // proof.jkt goes into the token's cnf.jkt at the token endpoint (RFC 9449 §6.1).
 * ```
 *
 * Refusals are {@link InvalidDpopProof} (`invalid_dpop_proof`) or {@link UseDpopNonce}
 * (`use_dpop_nonce`, carrying the nonce for the `DPoP-Nonce` header), both 400 as the token
 * endpoint answers them (§5, §8); `forResource()` gives the 401 a resource server answers
 * with a `WWW-Authenticate: DPoP` challenge ({@link dpopChallenge}, §7.1, §9). Descriptions
 * name the rule broken and never echo the proof, its claims or the token.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { base64url, calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type { Clock } from '../core/clock';
import { sha256 } from '../core/hash';
import { InvalidDpopProof, OAuthError, oauthText, TemporarilyUnavailable, UseDpopNonce, type OAuthErrorCode } from './errors';

/** RFC 9449 §4.2: the `typ` header of a DPoP proof. */
export const DPOP_JWT_TYPE = 'dpop+jwt';

/** RFC 9449 §4.3 point 5: asymmetric algorithms only — never `none` nor a MAC (`HS*`). */
export const DPOP_SIGNING_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'] as const;
export type DpopAlgorithm = (typeof DPOP_SIGNING_ALGORITHMS)[number];

/** Longer `DPoP` header values are refused before they are decoded (an RSA-4096 proof is about 1.5 KiB). */
export const MAX_DPOP_PROOF_LENGTH = 8 * 1024;
/** Longer `jti` values are refused (RFC 9449 §4.2 asks for 96 bits of randomness; a UUID is 36 characters). */
export const MAX_JTI_LENGTH = 256;
/** Longer `htu` values are refused. */
export const MAX_HTU_LENGTH = 4096;
/** Default of {@link DpopExpectation.maxAgeSeconds}: how long after its `iat` a proof is accepted (RFC 9449 §11.1). */
export const DEFAULT_DPOP_MAX_AGE_SECONDS = 60;
/** Default of {@link DpopExpectation.clockSkewSeconds}: how far in the future an `iat` may be. */
export const DEFAULT_DPOP_CLOCK_SKEW_SECONDS = 5;

/** The error codes of RFC 9449 §5 / §7.1 (`invalid_dpop_proof`) and §8 / §9 (`use_dpop_nonce`). */
export type DpopErrorCode = Extract<OAuthErrorCode, 'invalid_dpop_proof' | 'use_dpop_nonce'>;

// The refusal classes live beside the other OAuth errors (./errors), whose class map builds them from their codes.
export { InvalidDpopProof, UseDpopNonce };

/** A DPoP refusal: {@link InvalidDpopProof} or {@link UseDpopNonce}. */
export const isDpopError = (err: unknown): err is InvalidDpopProof | UseDpopNonce => err instanceof InvalidDpopProof || err instanceof UseDpopNonce;

/**
 * RFC 9449 §7.1: the `WWW-Authenticate` value a resource server answers with: `DPoP`, the
 * `algs` it accepts, and for a refusal `error` and `error_description` (made printable ASCII
 * without `"` or `\`, RFC 6750 §3). Send {@link UseDpopNonce.nonce} as `DPoP-Nonce` beside it.
 */
export function dpopChallenge(error: OAuthError | undefined, options: { realm?: string; algs?: readonly string[] } = {}): string {
  const params: string[] = [];
  const q = (text: string): string => `"${oauthText(text)}"`;
  if (options.realm !== undefined) params.push(`realm=${q(options.realm)}`);
  if (error !== undefined) params.push(`error=${q(error.error)}`, `error_description=${q(error.error_description)}`);
  params.push(`algs=${q((options.algs ?? DPOP_SIGNING_ALGORITHMS).join(' '))}`);
  return `DPoP ${params.join(', ')}`;
}

/** A verified DPoP proof (RFC 9449 §4.2). */
export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key, base64url: the `cnf.jkt` of a bound token (RFC 9449 §6.1). */
  readonly jkt: string;
  readonly jti: string;
  readonly iat: number;
  readonly htm: string;
  /** The `htu` claim as the client sent it. */
  readonly htu: string;
  readonly nonce?: string;
  readonly ath?: string;
  /** The proof's `jwk` header, public members only. */
  readonly publicJwk: JWK;
}

/** Where nonces come from when a server requires them (RFC 9449 §8, §9); {@link DpopNonces} is one. */
export interface DpopNonceSource {
  /** The nonce to hand out now (in a `DPoP-Nonce` header). */
  current(): string;
  /** Whether a proof's `nonce` is one recently handed out. */
  valid(nonce: string): boolean;
}

/** What a DPoP proof must match (RFC 9449 §4.3). */
export interface DpopExpectation {
  /** The request's method, compared exactly (RFC 9110 §9.1: methods are case-sensitive). */
  readonly method: string;
  /** The request's absolute URL as the server is reached (scheme, host, path); query and fragment are ignored. */
  readonly url: string;
  /** At a resource server: the access token; the proof's `ath` must be its hash (RFC 9449 §4.3 point 12, §7.1). */
  readonly accessToken?: string;
  /** The `cnf.jkt` of the access token (or refresh token): the proof's key must have this thumbprint (RFC 9449 §4.3 point 12, §6.1). */
  readonly jkt?: string;
  /**
   * When the server requires a nonce (RFC 9449 §8, §9): the one nonce accepted, or a
   * {@link DpopNonceSource}. A missing or wrong nonce is {@link UseDpopNonce} with a fresh one.
   */
  readonly nonce?: string | DpopNonceSource;
  readonly clock: Clock;
  /** Accepted algorithms, a subset of {@link DPOP_SIGNING_ALGORITHMS} (default: all of them). */
  readonly algorithms?: readonly DpopAlgorithm[];
  /** How long after its `iat` a proof is accepted (default {@link DEFAULT_DPOP_MAX_AGE_SECONDS}). */
  readonly maxAgeSeconds?: number;
  /** How far in the future an `iat` may be (default {@link DEFAULT_DPOP_CLOCK_SKEW_SECONDS}). */
  readonly clockSkewSeconds?: number;
  readonly replay: DpopReplayCache;
}

/**
 * RFC 9449 §4.3 point 1: the one `DPoP` header of a request, or `undefined` when there is
 * none. Several headers (Node joins them with `, `) or a comma-joined value are refused, as
 * is an empty one: a JWS Compact Serialization contains no comma or whitespace.
 */
export function dpopHeader(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.dpop;
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    if (value.length !== 1) throw new InvalidDpopProof('the request has more than one DPoP header (RFC 9449 §4.3)');
    return oneValue(value[0] ?? '');
  }
  return oneValue(value);
}

function oneValue(raw: string): string {
  const value = raw.trim();
  if (value.includes(',')) throw new InvalidDpopProof('the request has more than one DPoP header (RFC 9449 §4.3)');
  if (value === '') throw new InvalidDpopProof('the DPoP header is empty (RFC 9449 §4.3)');
  return value;
}

/** RFC 7638: the SHA-256 JWK thumbprint, base64url — RFC 9449 §6.1 `jkt`. */
export function dpopThumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}

/** RFC 9449 §4.2: `ath`, the base64url SHA-256 of the ASCII access token. */
export function accessTokenHash(accessToken: string): string {
  return base64url.encode(sha256(accessToken));
}

/** Members of a JWK that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/** The public members kept per key type (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2). */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ['kty', 'crv', 'x', 'y'], RSA: ['kty', 'n', 'e'], OKP: ['kty', 'crv', 'x'] };

/**
 * RFC 9449 §4.3: verifies a DPoP proof against the request (`method`, `url`), and at a
 * resource server against the access token (`accessToken`, `jkt`); then remembers its `jti`
 * so that it is refused when replayed (§11.1). Throws {@link InvalidDpopProof}, or
 * {@link UseDpopNonce} when a required nonce is missing or wrong, or
 * `TemporarilyUnavailable` (503) when the replay cache is full (fail closed).
 */
export async function verifyDpopProof(proof: string, expect: DpopExpectation): Promise<DpopProof> {
  const target = normalizeHtu(expect.url);
  if (target === undefined) throw new TypeError('verifyDpopProof: expect.url is not an absolute http(s) URL');
  const allowed: readonly string[] = (expect.algorithms ?? DPOP_SIGNING_ALGORITHMS).filter((alg) => (DPOP_SIGNING_ALGORITHMS as readonly string[]).includes(alg));
  const maxAge = expect.maxAgeSeconds ?? DEFAULT_DPOP_MAX_AGE_SECONDS;
  const skew = expect.clockSkewSeconds ?? DEFAULT_DPOP_CLOCK_SKEW_SECONDS;
  const refuse = (description: string, cause?: unknown): InvalidDpopProof => new InvalidDpopProof(description, cause === undefined ? undefined : { cause });

  // Point 2: a well-formed JWT, bounded before decoding.
  if (typeof proof !== 'string' || proof.length === 0) throw refuse('the DPoP proof is missing (RFC 9449 §4.3)');
  if (proof.length > MAX_DPOP_PROOF_LENGTH) throw refuse(`the DPoP proof is longer than ${MAX_DPOP_PROOF_LENGTH} characters`);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch (err) {
    throw refuse('the DPoP proof is not a JWT (RFC 9449 §4.3 point 2)', err);
  }
  if (proof.split('.').length !== 3) throw refuse('the DPoP proof is not a JWS Compact Serialization (RFC 9449 §4.3 point 2)');
  // Point 4: typ, exactly.
  if (header.typ !== DPOP_JWT_TYPE) throw refuse(`the DPoP proof's "typ" header is not "${DPOP_JWT_TYPE}" (RFC 9449 §4.3 point 4)`);
  // Point 5: an asymmetric algorithm the server accepts.
  if (typeof header.alg !== 'string' || !allowed.includes(header.alg)) throw refuse(`the DPoP proof's algorithm is not allowed (allowed: ${allowed.join(', ')}; RFC 9449 §4.3 point 5)`);
  // Point 7: the jwk header is a public key.
  const publicJwk = publicKeyOf(header.jwk);
  // Point 6: the signature verifies with that key.
  let payload: JWTPayload;
  try {
    const key = await importJWK(publicJwk, header.alg);
    if (key instanceof Uint8Array) throw new TypeError('not an asymmetric key');
    ({ payload } = await jwtVerify(proof, key, { algorithms: [...allowed], currentDate: expect.clock.now() }));
  } catch (err) {
    throw joseRefusal(err);
  }

  // Point 3: the required claims, well-typed.
  const { jti, htm, htu, iat, nonce, ath } = payload as Record<string, unknown>;
  if (typeof jti !== 'string' || jti.length === 0) throw refuse('the DPoP proof has no "jti" claim (RFC 9449 §4.2)');
  if (jti.length > MAX_JTI_LENGTH) throw refuse(`the DPoP proof's "jti" is longer than ${MAX_JTI_LENGTH} characters`);
  if (typeof htm !== 'string' || htm.length === 0) throw refuse('the DPoP proof has no "htm" claim (RFC 9449 §4.2)');
  if (typeof htu !== 'string' || htu.length === 0) throw refuse('the DPoP proof has no "htu" claim (RFC 9449 §4.2)');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw refuse('the DPoP proof has no numeric "iat" claim (RFC 9449 §4.2)');
  if (nonce !== undefined && (typeof nonce !== 'string' || nonce.length === 0)) throw refuse('the DPoP proof\'s "nonce" claim is not a string (RFC 9449 §4.2)');
  if (ath !== undefined && typeof ath !== 'string') throw refuse('the DPoP proof\'s "ath" claim is not a string (RFC 9449 §4.2)');

  // Point 8: the method.
  if (htm !== expect.method) throw refuse('the DPoP proof\'s "htm" does not match the request method (RFC 9449 §4.3 point 8)');
  // Point 9: the URL, without query and fragment, normalized (RFC 3986 §6.2.2, §6.2.3).
  if (htu.length > MAX_HTU_LENGTH || normalizeHtu(htu) !== target) throw refuse('the DPoP proof\'s "htu" does not match the request URL (RFC 9449 §4.3 point 9)');
  // Point 11: issued recently, and not in the future (RFC 9449 §11.1).
  const now = expect.clock.now().getTime() / 1000;
  if (iat < now - maxAge) throw refuse(`the DPoP proof was issued more than ${maxAge} seconds ago ("iat", RFC 9449 §4.3 point 11)`);
  if (iat > now + skew) throw refuse('the DPoP proof was issued in the future ("iat", RFC 9449 §4.3 point 11)');
  // Point 12: bound to the access token presented with it.
  if (expect.accessToken !== undefined) {
    if (ath === undefined) throw refuse('the DPoP proof has no "ath" claim, which is required with an access token (RFC 9449 §4.3 point 12)');
    if (!equal(ath, accessTokenHash(expect.accessToken))) throw refuse('the DPoP proof\'s "ath" does not match the access token (RFC 9449 §4.3 point 12)');
  }
  const jkt = await dpopThumbprint(publicJwk);
  if (expect.jkt !== undefined && !equal(jkt, expect.jkt)) throw refuse('the DPoP proof\'s key is not the key the token is bound to ("cnf.jkt", RFC 9449 §4.3 point 12, §6.1)');
  // Point 10: the nonce the server requires (RFC 9449 §8, §9).
  if (expect.nonce !== undefined) {
    const source = expect.nonce;
    const ok = typeof source === 'string' ? typeof nonce === 'string' && equal(nonce, source) : typeof nonce === 'string' && source.valid(nonce);
    if (!ok) {
      const fresh = typeof source === 'string' ? source : source.current();
      throw new UseDpopNonce(fresh, nonce === undefined ? 'the server requires a nonce in the DPoP proof (RFC 9449 §8)' : 'the DPoP proof\'s nonce is not the current one (RFC 9449 §8)');
    }
  }
  // RFC 9449 §11.1: each proof once. Last, so that a refused proof does not use up its jti.
  const seen = expect.replay.remember(jkt, jti, iat + maxAge);
  if (seen === 'replayed') throw refuse('the DPoP proof has been used before ("jti", RFC 9449 §11.1)');
  if (seen === 'full') throw new TemporarilyUnavailable('DPoP proofs cannot be checked for replay now');

  return { jkt, jti, iat, htm, htu, publicJwk, ...(typeof nonce === 'string' ? { nonce } : {}), ...(typeof ath === 'string' ? { ath } : {}) };
}

/** RFC 9449 §4.3 point 7: the `jwk` header as a public key of a supported type, or a refusal. */
function publicKeyOf(jwk: unknown): JWK {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new InvalidDpopProof('the DPoP proof has no "jwk" header (RFC 9449 §4.2)');
  const members = jwk as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => m in members)) throw new InvalidDpopProof('the DPoP proof\'s "jwk" header contains a private key (RFC 9449 §4.3 point 7)');
  const kty = members.kty;
  const keep = typeof kty === 'string' && Object.hasOwn(PUBLIC_MEMBERS, kty) ? PUBLIC_MEMBERS[kty] : undefined;
  if (keep === undefined) throw new InvalidDpopProof('the DPoP proof\'s "jwk" header is not an EC, RSA or OKP public key (RFC 9449 §4.3 point 7)');
  const out: Record<string, string> = {};
  for (const m of keep) {
    const v = members[m];
    if (typeof v !== 'string' || v.length === 0) throw new InvalidDpopProof('the DPoP proof\'s "jwk" header is not a well-formed public key (RFC 7517 §4)');
    out[m] = v;
  }
  return out as JWK;
}

const codeOf = (err: unknown): string | undefined => (err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined);

/** A failed import or jose verification as a refusal; jose's messages name no token content but are not repeated. */
function joseRefusal(err: unknown): InvalidDpopProof {
  const refuse = (description: string): InvalidDpopProof => new InvalidDpopProof(description, { cause: err });
  switch (codeOf(err)) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return refuse('the DPoP proof\'s signature does not verify with its "jwk" (RFC 9449 §4.3 point 6)');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return refuse('the DPoP proof\'s algorithm is not allowed (RFC 9449 §4.3 point 5)');
    case 'ERR_JWT_EXPIRED':
      return refuse('the DPoP proof has expired ("exp", RFC 7519 §4.1.4)');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as { claim?: unknown }).claim;
      const name = claim === 'iat' || claim === 'nbf' || claim === 'exp' ? ` "${claim}"` : '';
      return refuse(`the DPoP proof's${name} claim is refused (RFC 7519 §4.1)`);
    }
    case 'ERR_JOSE_NOT_SUPPORTED':
      return refuse('the DPoP proof uses a JOSE feature Writ does not support (an unknown "crit" header parameter)');
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return refuse('the DPoP proof is malformed (RFC 9449 §4.3 point 2)');
    default:
      // Key import: a curve that does not fit the algorithm, an RSA key under 2048 bits, bad coordinates.
      return refuse('the DPoP proof\'s "jwk" cannot verify it with its algorithm (RFC 9449 §4.3 point 6)');
  }
}

/** Constant-time string equality (lengths may leak). */
function equal(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * RFC 9449 §4.3 point 9: an `htu` or request URL compared as RFC 3986 §6.2.2 / §6.2.3 say:
 * scheme and host lower case, default port dropped, empty path `/`, dot segments removed
 * (WHATWG URL parsing does these), percent-encodings of unreserved characters decoded and
 * the others upper case; query and fragment dropped. `undefined` for anything but an absolute
 * http(s) URL without userinfo.
 */
export function normalizeHtu(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.username !== '' || parsed.password !== '') return undefined;
  const path = parsed.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  return `${parsed.protocol}//${parsed.host}${path}`;
}

/** What {@link DpopReplayCache.remember} found. */
export type ReplayOutcome = 'fresh' | 'replayed' | 'full';

/**
 * RFC 9449 §11.1: the `jti`s of accepted proofs, kept until the proof would be too old to be
 * accepted anyway, so that each proof is used once. Keyed by (key thumbprint, `jti`) — stricter
 * than §11.1's "in the context of the target URI": a `jti` is refused again for any URL.
 * Keys are stored hashed, so an entry is fixed-size; at most `maxEntries` are kept, expired
 * ones evicted by the injected clock, and when it is full of live entries it refuses
 * (`'full'`) rather than forgetting one (fail closed).
 *
 * In memory: each broker replica (and each resource-server process) has its own cache, so a
 * proof could be replayed once to each other replica within its `iat` window
 * ({@link DpopExpectation.maxAgeSeconds}) — the window bounds replay across replicas; a
 * shared store, or server nonces (§8), would close it.
 */
export class DpopReplayCache {
  readonly #clock: Clock;
  readonly #maxEntries: number;
  /** Hashed key → last instant it is held (epoch milliseconds), in insertion order. */
  readonly #seen = new Map<string, number>();
  /** No entry expires before this (epoch ms): a full sweep before then would find nothing. */
  #nextExpiry = Infinity;

  constructor(options: { clock: Clock; maxEntries?: number }) {
    this.#clock = options.clock;
    this.#maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) throw new RangeError('DpopReplayCache: maxEntries must be a positive integer');
  }

  /** Entries held, expired or not. */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Remembers (jkt, jti) until `untilSeconds` (epoch seconds): `'fresh'` the first time,
   * `'replayed'` when it is held and unexpired, `'full'` when there is no room.
   */
  remember(jkt: string, jti: string, untilSeconds: number): ReplayOutcome {
    const now = this.#clock.now().getTime();
    const key = sha256(`${jkt}\u0000${jti}`, 'base64url');
    const held = this.#seen.get(key);
    if (held !== undefined && held >= now) return 'replayed';
    if (held !== undefined) this.#seen.delete(key);
    this.#evictOldest(now);
    if (this.#seen.size >= this.#maxEntries) this.#sweep(now);
    if (this.#seen.size >= this.#maxEntries) return 'full';
    const until = untilSeconds * 1000;
    this.#seen.set(key, until);
    this.#nextExpiry = Math.min(this.#nextExpiry, until);
    return 'fresh';
  }

  /** Cheap: drops expired entries from the front (roughly the oldest). */
  #evictOldest(now: number): void {
    for (const [key, until] of this.#seen) {
      if (until >= now) break;
      this.#seen.delete(key);
    }
  }

  /** Full sweep, at most once per earliest expiry, so a full cache is not rescanned on every proof. */
  #sweep(now: number): void {
    if (now <= this.#nextExpiry) return;
    let next = Infinity;
    for (const [key, until] of this.#seen) {
      if (until < now) this.#seen.delete(key);
      else next = Math.min(next, until);
    }
    this.#nextExpiry = next;
  }
}

/**
 * RFC 9449 §8 / §9: server nonces, the HMAC-SHA-256 of a time step under a secret — so they
 * are unpredictable, need no state, and expire: {@link valid} accepts the current and the
 * previous step's nonce. Replicas that share `secret` accept each other's nonces; by default
 * the secret is random per instance.
 */
export class DpopNonces implements DpopNonceSource {
  readonly #clock: Clock;
  readonly #secret: Uint8Array;
  readonly #stepMs: number;

  constructor(options: { clock: Clock; secret?: Uint8Array; random?: { bytes(length: number): Uint8Array }; stepSeconds?: number }) {
    this.#clock = options.clock;
    this.#secret = options.secret ?? options.random?.bytes(32) ?? new Uint8Array(randomBytes(32));
    if (this.#secret.length < 16) throw new RangeError('DpopNonces: the secret must be at least 16 bytes');
    const step = options.stepSeconds ?? 300;
    if (!Number.isFinite(step) || step <= 0) throw new RangeError('DpopNonces: stepSeconds must be positive');
    this.#stepMs = step * 1000;
  }

  /** The nonce of the current step, for the `DPoP-Nonce` header. */
  current(): string {
    return this.#at(this.#step());
  }

  /** Whether `nonce` is the current or the previous step's nonce. */
  valid(nonce: string): boolean {
    if (typeof nonce !== 'string') return false;
    const step = this.#step();
    return equal(nonce, this.#at(step)) || equal(nonce, this.#at(step - 1));
  }

  #step(): number {
    return Math.floor(this.#clock.now().getTime() / this.#stepMs);
  }

  #at(step: number): string {
    return createHmac('sha256', this.#secret).update(`writ-dpop-nonce:${step}`).digest('base64url');
  }
}
