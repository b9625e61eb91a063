import type { z } from 'zod';
import { DomainError, problemType } from '../core/errors';

/** A request body or query that does not fit its schema. Names the field and the rule. */
export class InvalidRequest extends DomainError {
  readonly type = problemType('invalid-request');
  readonly status = 400;
}

/** Parses `input` with `schema` at the boundary; the first problem becomes a 400 naming the field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new InvalidRequest(`${where}${issue.message}`);
}
