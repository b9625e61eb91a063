import fc from 'fast-check';
import { findTextProblem, INVISIBLE_CHARACTER, textProblem, type TextRule } from './text';

// findTextProblem walks request bodies and token claims: it must agree with the plain
// recursive definition, on any JSON value, and name a path that leads to the culprit.

const RUNS = Number(process.env.FC_RUNS ?? 500);
const text = fc.oneof(fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.constantFrom('\u0000', '\t', '\n', '\r', '\u000b', '\u007f', '\ud800', '\udc00', '\ud83d\udca5', '\ufeff', '\u202e', 'ok'));
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.double(), fc.boolean(), fc.constant(null), fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(text, tie('value'), { maxKeys: 4 })),
})).value;

/** The definition: some string (or member name) anywhere is refused by its rule. */
function refusedSomewhere(value: unknown, rule: TextRule, keyRule: TextRule): boolean {
  if (typeof value === 'string') return textProblem(value, rule) !== undefined;
  if (Array.isArray(value)) return value.some((v) => refusedSomewhere(v, rule, keyRule));
  if (typeof value === 'object' && value !== null) return Object.entries(value).some(([k, v]) => textProblem(k, keyRule) !== undefined || refusedSomewhere(v, rule, keyRule));
  return false;
}

describe('findTextProblem, properties', () => {
  it('finds a problem exactly when the recursive definition does', () => {
    fc.assert(
      fc.property(json, fc.constantFrom<TextRule>('identifier', 'text'), fc.constantFrom<TextRule>('identifier', 'text'), (value, rule, keyRule) => {
        expect(findTextProblem(value, rule, keyRule) !== undefined).toBe(refusedSomewhere(value, rule, keyRule));
      }),
      { numRuns: RUNS },
    );
  });

  it('names a path whose printable form leads to a refused value, and shows no control character', () => {
    fc.assert(
      fc.property(json, (value) => {
        const found = findTextProblem(value, 'text');
        if (!found) return;
        expect(found.path).not.toMatch(/[\u0000-\u001f\u007f]/);
        // Values under the text rule; member names under the identifier rule (invisible characters too).
        expect(found.problem).toMatch(found.inName ? /control character|unpaired UTF-16 surrogate|invisible formatting character/ : /control character|unpaired UTF-16 surrogate/);
      }),
      { numRuns: RUNS },
    );
  });

  it('the text rule refuses a subset of what the identifier rule refuses, differing only by tab, LF, CR and invisible formatting characters', () => {
    fc.assert(
      fc.property(text, (s) => {
        if (textProblem(s, 'text') !== undefined) expect(textProblem(s, 'identifier')).toBeDefined();
        if (textProblem(s, 'identifier') !== undefined && textProblem(s, 'text') === undefined && !/[\t\n\r]/.test(s)) expect(textProblem(s, 'identifier')).toBe(INVISIBLE_CHARACTER);
      }),
      { numRuns: RUNS },
    );
  });
});
