import { DomainError, problemType } from '../core/errors';

/** A configuration value that is missing, malformed or unusable. Names the setting. */
export class ConfigError extends DomainError {
  readonly type = problemType('configuration');
  readonly status = 500;
  declare readonly setting: string;

  constructor(setting: string, reason: string, cause?: unknown) {
    super(reason, { setting, cause });
  }
}
