import { DomainError, problemType } from '../core/errors';

/** CA material that is missing, unreadable, malformed or inconsistent; or a signing failure. */
export class CaError extends DomainError {
  readonly type = problemType('certificate-authority');
  readonly status = 500;
}

/** The trust bundle cannot be read now (the database does not answer). */
export class BundleUnavailable extends DomainError {
  readonly type = problemType('bundle-unavailable');
  readonly status = 503;
}

/** A request for an SVID that the CA will not sign (wrong trust domain, bad names, bad lifetime). */
export class SvidRequestRejected extends DomainError {
  readonly type = problemType('invalid-svid-request');
  readonly status = 400;
}

/** Why a CSR was refused; each a stable problem type (urn:writ:problem:<code>). */
export type CsrRejection = 'csr-invalid' | 'key-too-weak' | 'unsupported-key';

/**
 * A PKCS#10 CSR refused: not one PEM CERTIFICATE REQUEST, malformed, a signature that does
 * not verify (no proof of possession), or a key Writ does not certify. The message names
 * the rule and is safe to show the caller; parser detail goes in `cause`.
 */
export class CsrRejected extends DomainError {
  readonly type: string;
  readonly status = 400;

  constructor(
    readonly code: CsrRejection,
    message: string,
    cause?: unknown,
  ) {
    super(message, { cause });
    this.type = problemType(code);
  }
}

/** A CA rotation that cannot be done now (one is already prepared, or the CA comes from upstream). */
export class RotationRefused extends DomainError {
  readonly type = problemType('rotation-refused');
  readonly status = 409;
}

/** No usable signing authority right now (a replica that missed a rotation): nothing is issued. */
export class CaUnavailable extends DomainError {
  readonly type = problemType('ca-unavailable');
  readonly status = 503;
}
