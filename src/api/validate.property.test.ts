import { parse } from 'node:querystring';
import type { NextFunction, Request, Response } from 'express';
import fc from 'fast-check';
import { InvalidRequest, refuseControlCharacters } from './validate';

// Form bodies (/oauth2/*) and query strings as express.urlencoded({ extended: false }) and
// Express's simple query parser decode them (node:querystring): the check before every route
// passes exactly the requests without control characters, and otherwise names the field.

const RUNS = Number(process.env.FC_RUNS ?? 500);
const raw = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('%00', '%01', '%0A', '%09', '%0D', '%7F', '%E0%A4%A', '%', '%zz', '+', '=', '&', '%26', '%3D', 'grant_type', 'resource', 'subject_token', 'https%3A%2F%2Fmcp.example%2Fx'),
);
const form = fc.array(fc.tuple(fc.array(raw, { maxLength: 3 }), fc.array(raw, { maxLength: 3 })), { maxLength: 6 }).map((pairs) => pairs.map(([k, v]) => `${k.join('')}=${v.join('')}`).join('&'));

function run(query: unknown, body: unknown): Error | undefined {
  let passed: unknown = 'not called';
  const next: NextFunction = (err?: unknown) => void (passed = err);
  refuseControlCharacters({ path: '/oauth2/token', query, body } as unknown as Request, {} as Response, next);
  expect(passed).not.toBe('not called');
  return passed as Error | undefined;
}

const controls = (s: string, allowLines: boolean) => (allowLines ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/ : /[\u0000-\u001f\u007f]/).test(s);

describe('refuseControlCharacters on decoded form bodies and query strings, properties', () => {
  it('a form body passes exactly when no name has a control character and no value one but tab, CR or LF', () => {
    fc.assert(
      fc.property(form, (text) => {
        const body = parse(text);
        const bad = Object.entries(body).some(([k, v]) => controls(k, false) || [v].flat().some((s) => controls(String(s), true)));
        const err = run({}, body);
        if (!bad) return expect(err).toBeUndefined();
        expect(err).toBeInstanceOf(InvalidRequest);
        const field = err!.message.split(': ')[0]!.split('.')[0]!;
        const shown = Object.keys(body).map((k) => (k === '' ? '""' : k.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)));
        expect(shown).toContainEqual(expect.stringContaining(field.replace(/…$/, '')));
      }),
      { numRuns: RUNS },
    );
  });

  it('a query string passes exactly when nothing in it has a control character', () => {
    fc.assert(
      fc.property(form, (text) => {
        const query = parse(text);
        const bad = Object.entries(query).some(([k, v]) => controls(k, false) || [v].flat().some((s) => controls(String(s), false)));
        expect(run(query, undefined) instanceof InvalidRequest).toBe(bad);
      }),
      { numRuns: RUNS },
    );
  });
});
