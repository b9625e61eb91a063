import { DomainError, problemType } from '../core/errors';

/** Why an attestation was refused; each a stable problem type (urn:writ:problem:<code>). */
export type AttestationFailure =
  | 'unknown-attestor'
  | 'invalid-evidence'
  | 'token-unusable'
  | 'no-matching-entry'
  | 'entry-disabled'
  | 'client-certificate-required'
  /** An mTLS caller whose SVID a revocation reached while its request was in flight (as the route answers afterwards). */
  | 'unauthenticated'
  /** A revocation naming the SPIFFE ID arrived while its SVID was being issued: nothing was issued; attest again. */
  | 'revoked';

const STATUS: Record<AttestationFailure, number> = {
  'unknown-attestor': 400,
  'invalid-evidence': 400,
  'token-unusable': 400,
  'no-matching-entry': 403,
  'entry-disabled': 403,
  'client-certificate-required': 401,
  unauthenticated: 401,
  revoked: 409,
};

/** An attestation refused. The message is safe to show the caller; detail for logs goes in `cause`. */
export class AttestationError extends DomainError {
  readonly type: string;
  readonly status: number;

  constructor(
    readonly code: AttestationFailure,
    message: string,
    cause?: unknown,
  ) {
    super(message, { cause });
    this.type = problemType(code);
    this.status = STATUS[code];
  }
}
