import { DomainError, problemType } from '../core/errors';

/** CA material that is missing, unreadable, malformed or inconsistent; or a signing failure. */
export class CaError extends DomainError {
  readonly type = problemType('certificate-authority');
  readonly status = 500;
}
