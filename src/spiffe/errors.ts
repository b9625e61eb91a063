import { DomainError, problemType } from '../core/errors';

/** A SPIFFE ID or trust domain that breaks the SPIFFE-ID specification. */
export class InvalidSpiffeId extends DomainError {
  readonly type = problemType('invalid-spiffe-id');
  readonly status = 400;
}
