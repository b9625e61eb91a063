import type { RequestHandler } from 'express';
import type { z } from 'zod';
import { DomainError, problemType } from '../core/errors';
import { describeTextProblem, findTextProblem, textProblem, type TextRule } from '../core/text';

/** A request body or query that does not fit its schema. Names the field and the rule. */
export class InvalidRequest extends DomainError {
  readonly type = problemType('invalid-request');
  readonly status = 400;
}

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at `path` inside `root`, or undefined. */
function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const key of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v;
}

/**
 * How far a union branch is from the shape of the value: issues saying the value is of another
 * type, that it lacks one of the branch's members, or that it has members the branch does not know.
 */
function shapeMismatches(issues: readonly Issue[], value: unknown): number {
  return issues.filter(
    (i) =>
      (i.code === 'unrecognized_keys' && i.path.length === 0) ||
      (i.code === 'invalid_type' && (i.path.length === 0 || (i.path.length === 1 && valueAt(value, i.path) === undefined))),
  ).length;
}

/** The members a branch wants, as far as its issues tell: those it missed, and those of the value it did not refuse. */
function branchForm(issues: readonly Issue[], value: unknown): string[] {
  const unknown = new Set(issues.flatMap((i) => (i.code === 'unrecognized_keys' && i.path.length === 0 ? i.keys : [])));
  const missing = issues.filter((i) => i.code === 'invalid_type' && i.path.length === 1 && valueAt(value, i.path) === undefined).map((i) => String(i.path[0]));
  const present = isRecord(value) ? Object.keys(value).filter((k) => !unknown.has(k)) : [];
  return [...new Set([...present, ...missing])];
}

/**
 * The issue that best explains why a union refused a value: the first issue of the branch
 * closest to the value's shape (fewest shape mismatches, then the deepest issue, then the
 * fewest issues). When no branch fits the value's shape, the branches' forms are listed instead.
 */
function unionMessage(issue: Extract<Issue, { code: 'invalid_union' }>, root: unknown): string | undefined {
  const value = valueAt(root, issue.path);
  const branches = issue.errors.filter((b) => b.length > 0).map((issues) => ({ issues, mismatches: shapeMismatches(issues, value), depth: Math.max(...issues.map((i) => i.path.length)) }));
  if (branches.length === 0) return undefined;
  const best = branches.reduce((a, b) => (b.mismatches < a.mismatches || (b.mismatches === a.mismatches && (b.depth > a.depth || (b.depth === a.depth && b.issues.length < a.issues.length))) ? b : a));
  if (best.mismatches === 0 || !isRecord(value)) {
    const first = best.issues[0]!;
    return describeIssue({ ...first, path: [...issue.path, ...first.path] } as Issue, root);
  }
  const forms = [...new Set(issue.errors.map((b) => `{${branchForm(b, value).join(', ')}}`))];
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${where}matches none of the accepted forms: ${forms.join(' | ')}`;
}

/** One issue as a line naming the field: `audience.0: Too small: expected string to have >=1 characters`. */
function describeIssue(issue: Issue, root: unknown): string {
  if (issue.code === 'invalid_union') {
    const message = unionMessage(issue, root);
    if (message !== undefined) return message;
  }
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${where}${issue.message}`;
}

/**
 * Parses `input` with `schema` at the boundary; the first problem becomes a 400 naming the
 * field (for a union, the field of its closest branch). No body (or an empty one) is `{}`.
 */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const value = input === undefined || input === null || input === '' ? {} : input;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new InvalidRequest(describeIssue(r.error.issues[0]!, value));
}

/** The path's first segment that is not percent-encoded UTF-8 (RFC 3986 §2.1) or that decodes to a control character. */
function pathProblem(path: string): string | undefined {
  for (const segment of path.split('/')) {
    if (!segment.includes('%')) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return 'the path is not valid percent-encoded UTF-8 (RFC 3986 §2.1)';
    }
    const problem = textProblem(decoded, 'identifier');
    if (problem) return `the path ${problem}`;
  }
  return undefined;
}

/**
 * Refuses, with a 400 naming the field, a request whose path, query or body holds text the
 * broker will not take: NUL anywhere (PostgreSQL cannot store it), any C0 control or DEL in
 * the path, the query and member names, and in body strings any but tab, CR and LF (PEM and
 * policy text have lines). Mounted after the body parsers, before every route.
 */
export const refuseControlCharacters: RequestHandler = (req, _res, next) => {
  const problem = pathProblem(req.path) ?? fieldProblem(req.query, 'identifier', 'the query') ?? fieldProblem(req.body, 'text', 'the request body');
  next(problem === undefined ? undefined : new InvalidRequest(problem));
};

function fieldProblem(value: unknown, rule: TextRule, whole: string): string | undefined {
  const found = findTextProblem(value, rule);
  return found && describeTextProblem(found, whole);
}
