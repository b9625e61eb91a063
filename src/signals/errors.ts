/**
 * Refusals of a pushed Security Event Token, in the words of RFC 8935 §2.4: the SET
 * Recipient answers HTTP 400 with `{"err": "<code>", "description": "<text>"}`, where `err`
 * is one of the codes registered in RFC 8935 §7.1 (the "Security Event Token Error Codes"
 * registry). `description` is safe to show the transmitter; detail for logs goes in `cause`.
 *
 * ```ts
 * throw new SetError('invalid_audience', 'the SET\'s audience ("aud") does not include "https://writ.example"');
 * // → 400 {"err":"invalid_audience","description":"the SET's audience …"}
 * ```
 */
import { DomainError, problemType } from '../core/errors';

/**
 * RFC 8935 §2.4 error codes. `access_denied` (the transmitter may not send this SET to this
 * recipient) belongs to HTTP authorization of the push request and is never thrown by
 * {@link SetReceiver}; it is here so that the HTTP layer can use the same class.
 */
export const SET_ERROR_CODES = ['invalid_request', 'invalid_key', 'invalid_issuer', 'invalid_audience', 'authentication_failed', 'access_denied'] as const;
export type SetErrorCode = (typeof SET_ERROR_CODES)[number];

/** The body of an RFC 8935 §2.4 error response. */
export interface SetErrorBody {
  readonly err: SetErrorCode;
  readonly description: string;
}

/**
 * A SET refused (RFC 8935 §2.4), always HTTP 400. Like the token endpoint's `OAuthError`, `type` is the bare
 * protocol code (here RFC 8935's `err`), not a problem-type URI.
 *
 * - `invalid_request`: the body is not a SET (wrong media type, not a JWS, a required claim
 *   missing or malformed), or an event payload does not conform to its event's definition.
 * - `invalid_key`: the key that signed the SET is unacceptable: no key of the transmitter
 *   matches, the algorithm is not allowed for it, or it is a shared secret (HS*).
 * - `authentication_failed`: the transmitter could not be authenticated: the signature does
 *   not verify with its key, or the SET is unsigned (`alg: none`).
 * - `invalid_issuer`: `iss` is not a configured transmitter.
 * - `invalid_audience`: `aud` is missing or does not include this recipient.
 */
export class SetError extends DomainError {
  readonly type: SetErrorCode;
  readonly status = 400;

  constructor(
    readonly err: SetErrorCode,
    description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause });
    this.type = err;
  }

  /** The `description` member of the response. */
  get description(): string {
    return this.message;
  }

  /** The response body, RFC 8935 §2.4. */
  toJSON(): SetErrorBody {
    return { err: this.err, description: this.message };
  }
}

export const isSetError = (err: unknown): err is SetError => err instanceof SetError;

/**
 * The transmitter's keys could not be fetched (its `jwks_uri` timed out, answered an error or
 * an unusable key set): the SET may well be good, so it is not refused with a 400, which
 * would tell the transmitter not to retry (RFC 8935 §2.3), but answered 503 so that it does.
 */
export class TransmitterKeysUnavailable extends DomainError {
  readonly type = problemType('transmitter-keys-unavailable');
  readonly status = 503;
}
