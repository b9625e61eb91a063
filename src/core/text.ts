/**
 * Text from the network that must not go further: control characters and unpaired UTF-16
 * surrogates. PostgreSQL refuses U+0000 in `text` and `jsonb` values, and `jsonb` refuses an
 * unpaired surrogate escape, so such input would otherwise fail in the database as a 500; it
 * is refused at the boundary instead, naming the field. Other C0 controls and DEL have no
 * place in identifiers, URIs or query parameters either; multi-line text (a CSR's PEM, Cedar
 * policy text) keeps its tabs and line breaks.
 *
 * ```ts
 * const found = findTextProblem(req.body, 'text');  // { path: 'audience.0', problem: 'contains a control character' }
 * if (found) throw new InvalidRequest(describeTextProblem(found));
 * ```
 */

/**
 * How strict a check is. `identifier`: no C0 control (U+0000–U+001F), no DEL (U+007F), and no
 * invisible formatting character.
 * `text`: the same, but tab, line feed and carriage return are allowed (RFC 7468 PEM, policy text).
 */
export type TextRule = 'identifier' | 'text';

/** Where in a value a problem was found, and what it is. */
export interface TextProblem {
  /** The field path, `.`-separated (`audience.0`); `''` for the value itself. Control characters in names are shown as `?`. */
  readonly path: string;
  /** For example `contains a control character`. */
  readonly problem: string;
  /** The problem is in the member name at `path`, not in its value. */
  readonly inName?: true;
}

const CONTROL: Record<TextRule, RegExp> = {
  identifier: /[\u0000-\u001f\u007f]/,
  text: /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/,
};
/**
 * Invisible formatting characters (Unicode Cf): the byte order mark / zero-width no-break space
 * U+FEFF, zero-width spaces and joiners, directional marks, embeddings, overrides and isolates.
 * In an identifier they make two different identities look the same in an audit row or a
 * console ("alice" and "\u200balice"), or reorder what is shown (U+202E); and a leading U+FEFF
 * does not survive every database driver (the embedded database's decoder drops it, so an audit
 * row naming such a subject would read back different from what was hashed). Refused in
 * identifiers; text (policies, PEM) may hold them.
 */
const INVISIBLE = /[­؜᠎​-‏‪-‮⁠-⁤⁦-⁯﻿￹-￻]/;
/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one (not Unicode scalar values, RFC 3629 §3). */
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const CONTROL_CHARACTER = 'contains a control character';
export const UNPAIRED_SURROGATE_TEXT = 'contains an unpaired UTF-16 surrogate (not Unicode text)';
export const INVISIBLE_CHARACTER = 'contains an invisible formatting character (such as U+FEFF or U+202E)';

/** Why `text` may not be used under `rule`, or undefined when it may. */
export function textProblem(text: string, rule: TextRule = 'identifier'): string | undefined {
  if (CONTROL[rule].test(text)) return CONTROL_CHARACTER;
  if (UNPAIRED_SURROGATE.test(text)) return UNPAIRED_SURROGATE_TEXT;
  if (rule === 'identifier' && INVISIBLE.test(text)) return INVISIBLE_CHARACTER;
  return undefined;
}

/** Whether `text` holds a C0 control character or DEL (any, under the `identifier` rule). */
export const hasControlCharacter = (text: string, rule: TextRule = 'identifier'): boolean => CONTROL[rule].test(text);

/** A path as a linked list, so that a deep value costs no copying until something is found. */
interface PathNode {
  readonly parent: PathNode | undefined;
  readonly key: string | number;
}

const MAX_SEGMENT_SHOWN = 64;

/** A path segment as it may appear in a message: printable ASCII only, bounded. */
function showSegment(key: string | number): string {
  const text = String(key);
  if (text === '') return '""';
  const shown = text.length > MAX_SEGMENT_SHOWN ? `${text.slice(0, MAX_SEGMENT_SHOWN)}…` : text;
  return shown.replace(/[^\x20-\x7e…]/g, '?');
}

function pathOf(node: PathNode | undefined): string {
  const parts: string[] = [];
  for (let n = node; n; n = n.parent) parts.push(showSegment(n.key));
  return parts.reverse().join('.');
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
};

/**
 * The first string (in document order) of a JSON-like value — a string, an array, or a plain
 * object, at any depth — that `rule` refuses, or a member name that `keyRule` refuses. Walks
 * iteratively, so any nesting depth is safe. Other values (numbers, Buffers) are not looked into.
 */
export function findTextProblem(value: unknown, rule: TextRule = 'identifier', keyRule: TextRule = 'identifier'): TextProblem | undefined {
  const stack: [unknown, PathNode | undefined][] = [[value, undefined]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v, rule);
      if (problem) return { path: pathOf(at), problem };
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], { parent: at, key: i }]);
      continue;
    }
    if (!isPlainObject(v)) continue;
    const keys = Object.keys(v);
    for (const key of keys) {
      const problem = textProblem(key, keyRule);
      if (problem) return { path: pathOf({ parent: at, key }), problem, inName: true };
    }
    for (let i = keys.length - 1; i >= 0; i--) stack.push([(v as Record<string, unknown>)[keys[i]!], { parent: at, key: keys[i]! }]);
  }
  return undefined;
}

/** A problem as one line naming the field: `resource: contains a control character`; `whole` names a value without a path. */
export function describeTextProblem(found: TextProblem, whole = 'the value'): string {
  if (found.path === '') return `${whole} ${found.problem}`;
  return `${found.path}: ${found.inName ? 'its name ' : ''}${found.problem}`;
}

/** The problem as a predicate of the member it was found in: `contains …`, or `has a name that contains …`. */
export const problemOfMember = (found: TextProblem): string => (found.inName ? `has a name that ${found.problem}` : found.problem);

/** Attacker-controlled text in a message or description: bounded, printable ASCII, quoted. */
export function quote(value: unknown, max = 64): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown.replace(/[^\x20-\x7e…]/g, '?'));
}
