/**
 * The base of every domain's error type. Each carries what the HTTP layer needs to
 * answer (a status and an RFC 9457 problem type or an RFC 6749 §5.2 error code) and a
 * message that is safe to show a caller. `setting` names the configuration the error
 * is about, for start-up failures. Internal detail goes to `cause`, never to callers.
 */
export abstract class DomainError extends Error {
  /** RFC 9457 problem `type` URI, or an OAuth `error` code on OAuth endpoints. */
  abstract readonly type: string;
  abstract readonly status: number;
  readonly setting?: string;

  constructor(message: string, options?: { setting?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options?.setting !== undefined) this.setting = options.setting;
  }
}

/** Problem types are URNs under Writ's namespace: stable, documented, and resolvable by nobody. */
export const problemType = (name: string): string => `urn:writ:problem:${name}`;
