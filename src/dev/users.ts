/**
 * The test users of `writ dev`'s OpenID Provider: a small YAML (or JSON) file naming each
 * user and the groups their ID tokens carry. Development only: there are no passwords.
 *
 * ```yaml
 * users:
 *   alice: { groups: [eng] }
 *   bob: { groups: [eng, maintainers], email: bob@example.com }
 * ```
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** One test user: `sub` is the user name. */
export interface DevUser {
  readonly name: string;
  readonly groups: readonly string[];
  readonly email?: string;
}

/** A user name (the ID token's `sub`) or a group: no white space, no control characters. */
const identifier = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._@:+-]+$/, 'must be letters, digits and . _ @ : + - only');

const usersFileSchema = z.strictObject({
  users: z
    .record(identifier, z.strictObject({ groups: z.array(identifier).max(64).default([]), email: z.email().optional() }))
    .refine((users) => Object.keys(users).length > 0, 'must name at least one user'),
});

/** Parses the users file's text; throws an Error naming the first problem. */
export function parseUsers(text: string, source = 'the users file'): ReadonlyMap<string, DevUser> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new Error(`${source} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = usersFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${source}: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  return new Map(
    Object.entries(parsed.data.users).map(([name, u]) => [name, { name, groups: [...new Set(u.groups)], ...(u.email !== undefined ? { email: u.email } : {}) }]),
  );
}

/** Reads and parses a users file. */
export function readUsers(path: string): ReadonlyMap<string, DevUser> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseUsers(text, path);
}
