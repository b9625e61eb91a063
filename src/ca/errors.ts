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
