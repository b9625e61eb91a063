/**
 * Why a JWT was refused, with a stable reason code (as jose's errors carry `ERR_JWT_EXPIRED`)
 * and a message safe to show the caller: the rule broken, with its RFC section; attacker-
 * controlled text quoted and bounded. Each user (the oidc attestor, the subject-token
 * verifier, the SET receiver, access-token verification) maps a {@link JwtError} to its own
 * protocol's refusal.
 *
 * ```ts
 * try { await verifyJwt(token, keys, options); }
 * catch (err) { if (err instanceof JwtError && err.reason === 'expired') … }
 * ```
 */
import { DomainError, problemType } from '../core/errors';

/** Stable reason codes of a refused JWT. */
export type JwtFailure =
  /** Not a JWS Compact Serialization, or a malformed header or claims set (RFC 7519 §7.2). */
  | 'malformed'
  /** A JOSE feature Writ does not support (an unknown `crit` parameter, RFC 7515 §4.1.11). */
  | 'unsupported'
  /** The `alg` is not one this issuer signs with (RFC 8725 §3.1). */
  | 'algorithm-not-allowed'
  /** No key of the issuer matches the header's `kid` and `alg`. */
  | 'no-matching-key'
  /** The issuer's key set is unusable. */
  | 'keys-invalid'
  /** The issuer's keys cannot be fetched now ({@link JwksUnavailable}): the token may well be good. */
  | 'keys-unavailable'
  /** A key matched but cannot verify (an RSA key under 2048 bits, a key whose `alg` or `use` forbids it). */
  | 'key-unusable'
  /** The signature does not verify (RFC 7515 §5.2). */
  | 'signature'
  /** `exp` has passed (RFC 7519 §4.1.4). */
  | 'expired'
  /** `nbf` is not reached (RFC 7519 §4.1.5). */
  | 'not-yet-valid'
  /** `aud` does not include the expected audience (RFC 7519 §4.1.3). */
  | 'audience'
  /** `iss` does not match (RFC 7519 §4.1.1). */
  | 'issuer'
  /** The `typ` header is not the expected one (RFC 8725 §3.11). */
  | 'type'
  /** A required claim is absent. */
  | 'claim-missing'
  /** A time claim is not a NumericDate (RFC 7519 §2). */
  | 'claim-invalid'
  /** Another claim check failed. */
  | 'claim-refused';

/** A JWT refused by {@link verifyJwt} (or its keys unavailable). `claim` names the claim a claim check refused. */
export class JwtError extends DomainError {
  readonly type: string;
  readonly status: number;
  readonly claim?: string;

  constructor(
    readonly reason: JwtFailure,
    message: string,
    options?: { claim?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.type = problemType(`jwt-${reason}`);
    this.status = reason === 'keys-unavailable' ? 503 : 401;
    if (options?.claim !== undefined) this.claim = options.claim;
  }
}

/** Why an issuer's keys could not be obtained (reason `keys-unavailable`). The message names no token content. */
export class JwksUnavailable extends JwtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('keys-unavailable', message, options);
  }
}
