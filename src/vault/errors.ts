import { DomainError, problemType } from '../core/errors';

/** The vault's refusals (problem types `urn:writ:problem:<code>`), for its admin and linking endpoints. */
export type VaultErrorCode =
  | 'provider-not-found'
  | 'provider-exists'
  | 'invalid-provider'
  | 'grant-not-found'
  | 'link-invalid'
  | 'link-forbidden'
  | 'provider-failed';

export class VaultError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 502,
    readonly code: VaultErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.type = problemType(code);
  }
}
