import { DomainError, problemType } from '../core/errors';

/**
 * A policy set that does not parse or does not validate against the Writ schema (strict
 * mode). `errors` are Cedar's own messages, each naming the policy (its `@id` or
 * `policy<N>`) and where it is in the text, so they can go back to the operator in the 400.
 *
 * ```ts
 * throw new PolicyInvalid(['policy0 (line 3, column 8): the types Long and String are not compatible']);
 * // → 400 {"type":"urn:writ:problem:invalid-policy", …, "errors":[…]}
 * ```
 */
export class PolicyInvalid extends DomainError {
  readonly type = problemType('invalid-policy');
  readonly status = 400;

  constructor(readonly errors: string[]) {
    super(
      errors.length === 1
        ? `the policy set is not valid: ${errors[0]}`
        : `the policy set is not valid (${errors.length} errors)`,
    );
  }
}

/** A policy version that does not exist (404). */
export class PolicyVersionNotFound extends DomainError {
  readonly type = problemType('policy-version-not-found');
  readonly status = 404;
}
