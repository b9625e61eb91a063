import { DomainError, problemType } from '../core/errors';

/** The database cannot be reached, opened or migrated. Anything that depends on it fails closed. */
export class DatabaseUnavailable extends DomainError {
  readonly type = problemType('database-unavailable');
  readonly status = 503;
}

/** The migration history in the database disagrees with the migrations this build carries. */
export class MigrationError extends DomainError {
  readonly type = problemType('migration');
  readonly status = 503;
}
