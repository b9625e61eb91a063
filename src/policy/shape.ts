/**
 * Limits on the shape of policy text, checked before Cedar sees it. Cedar parses, validates
 * and evaluates expressions recursively on the WebAssembly stack: a policy nested a few hundred
 * levels deep (parentheses, sets, records, `if`), or a chain of a thousand operators, exhausts
 * that stack, and the trapped instance then fails every later parse and decision until the
 * process restarts. The limits are far above what policies need and far below what Cedar survives.
 *
 * ```ts
 * const problem = policyShapeProblem(text); // 'line 3: nested more than 24 levels deep …'
 * if (problem) throw new PolicyInvalid([problem]);
 * ```
 */

/** Brackets — `(`, `[`, `{` — open at once, at most. */
export const MAX_POLICY_NESTING = 24;
/** Operators, member accesses and `if`/`then`/`else`, `in`, `has`, `like`, `is` in one policy, at most. */
export const MAX_POLICY_OPERATORS = 128;

const OPEN = new Set(['(', '[', '{']);
const CLOSE = new Set([')', ']', '}']);
const OPERATOR_CHARS = new Set(['&', '|', '+', '-', '*', '=', '!', '<', '>', '.']);
const TWO_CHAR_OPERATORS = new Set(['&&', '||', '==', '!=', '<=', '>=']);
const KEYWORDS = new Set(['if', 'then', 'else', 'in', 'has', 'like', 'is']);
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;

/** The end of the string literal opening at `start` (Cedar strings are `"…"` with `\` escapes), or the text's end. */
function endOfString(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i;
}

/** Why `text` is beyond the limits, naming the line; or undefined. Strings and `//` comments are skipped. */
export function policyShapeProblem(text: string): string | undefined {
  let depth = 0;
  let operators = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') line++;
    else if (c === '"') i = endOfString(text, i);
    else if (c === '/' && text[i + 1] === '/') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (OPEN.has(c)) {
      if (++depth > MAX_POLICY_NESTING) return `line ${line}: nested more than ${MAX_POLICY_NESTING} levels deep (parentheses, sets, records), Writ's limit`;
    } else if (CLOSE.has(c)) depth = Math.max(0, depth - 1);
    else if (c === ';' && depth === 0) operators = 0; // the end of one policy
    else if (OPERATOR_CHARS.has(c) || isKeywordAt(text, i)) {
      if (++operators > MAX_POLICY_OPERATORS) return `line ${line}: more than ${MAX_POLICY_OPERATORS} operators in one policy, Writ's limit; split it, or use sets and "in"`;
      if (!OPERATOR_CHARS.has(c)) i += wordAt(text, i).length - 1;
      else if (TWO_CHAR_OPERATORS.has(text.slice(i, i + 2))) i++; // &&, ||, ==, !=, <=, >= are one operator each
    } else if (/[A-Za-z_]/.test(c)) i += wordAt(text, i).length - 1; // an identifier: skip it whole
  }
  return undefined;
}

function wordAt(text: string, i: number): string {
  WORD.lastIndex = i;
  return WORD.exec(text)?.[0] ?? text[i]!;
}

const isKeywordAt = (text: string, i: number): boolean => /[A-Za-z_]/.test(text[i]!) && (i === 0 || !/[A-Za-z0-9_]/.test(text[i - 1]!)) && KEYWORDS.has(wordAt(text, i));
