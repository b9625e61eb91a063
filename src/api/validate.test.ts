import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import { InvalidRequest, parseWith, refuseControlCharacters } from './validate';

// The shape of the revocation selector (src/leases/revocations.ts): a union of strict objects.
const selector = z.union([
  z.strictObject({ jti: z.uuid() }),
  z.strictObject({ task_id: z.uuid() }),
  z.strictObject({ user: z.strictObject({ issuer: z.string().min(1), subject: z.string().min(1) }) }),
  z.strictObject({ connector: z.string().startsWith('spiffe://') }),
  z.strictObject({ user: z.strictObject({ issuer: z.string().min(1), subject: z.string().min(1) }), connector: z.string().startsWith('spiffe://') }),
]);

const messageOf = (schema: z.ZodType, input: unknown): string => {
  try {
    parseWith(schema, input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRequest);
    return (err as Error).message;
  }
  throw new Error('parsed');
};

describe('parseWith names the field that is wrong', () => {
  it('names the path of a plain issue', () => {
    expect(messageOf(z.strictObject({ audience: z.array(z.string().min(1)) }), { audience: [''] })).toBe('audience.0: Too small: expected string to have >=1 characters');
  });

  it('a union names the closest branch\'s field instead of "Invalid input"', () => {
    expect(messageOf(selector, { user: { issuer: 'x' } })).toBe('user.subject: Invalid input: expected string, received undefined');
    expect(messageOf(selector, { user: { issuer: 'x', subject: 's' }, connector: 'bad' })).toBe('connector: Invalid string: must start with "spiffe://"');
    expect(messageOf(selector, { jti: 'x' })).toBe('jti: Invalid UUID');
  });

  it('a value that fits no branch\'s shape lists the accepted forms', () => {
    expect(messageOf(selector, {})).toBe('matches none of the accepted forms: {jti} | {task_id} | {user} | {connector} | {user, connector}');
    expect(messageOf(selector, { nothing: 1 })).toBe('matches none of the accepted forms: {jti} | {task_id} | {user} | {connector} | {user, connector}');
    expect(messageOf(z.strictObject({ s: selector }), { s: { jti: randomLooking(), task_id: randomLooking() } })).toMatch(/^s: matches none of the accepted forms: \{jti\} \| \{task_id\}/);
  });

  it('a value of another type says so, with the path', () => {
    expect(messageOf(z.strictObject({ s: selector }), { s: 'text' })).toBe('s: Invalid input: expected object, received string');
  });

  it('takes no body, or an empty one, as {}; a body of another type is refused', () => {
    const schema = z.strictObject({ overlap: z.number().optional() });
    expect(parseWith(schema, undefined)).toEqual({});
    expect(parseWith(schema, '')).toEqual({});
    expect(messageOf(schema, 'overlap=1')).toBe('Invalid input: expected object, received string');
  });
});

const randomLooking = () => '1b4e28ba-2fa1-11d2-883f-0016d3cca427';

/** Runs the middleware on a request with `path`, `query` and `body`; answers the error it passed on, if any. */
function run(path: string, query: Record<string, unknown> = {}, body?: unknown): Error | undefined {
  let passed: unknown = 'not called';
  const next: NextFunction = (err?: unknown) => void (passed = err);
  refuseControlCharacters({ path, query, body } as unknown as Request, {} as Response, next);
  return passed as Error | undefined;
}

describe('refuseControlCharacters (before every route)', () => {
  it('passes ordinary requests, and tabs and line breaks in body strings', () => {
    expect(run('/v1/admin/entries', { limit: '10' }, { policies: 'permit (\n\tprincipal,\r\n action, resource);' })).toBeUndefined();
    expect(run('/v1/admin/resources/https%3A%2F%2Fmcp.example%2Fx')).toBeUndefined();
  });

  it('refuses NUL anywhere in a body, naming the field', () => {
    expect(run('/oauth2/token', {}, { resource: 'https://x\u0000' })?.message).toBe('resource: contains a control character');
    expect(run('/v1/jwt-svid', {}, { audience: ['a', 'b\u0000'] })?.message).toBe('audience.1: contains a control character');
    expect(run('/v1/signals', {}, 'eyJ\u0000')?.message).toBe('the request body contains a control character');
  });

  it('refuses any C0 control or DEL in the query, a parameter name or a path segment', () => {
    expect(run('/v1/admin/audit', { subject: 'a\u0001' })?.message).toBe('subject: contains a control character');
    expect(run('/v1/admin/audit', { subject: ['a', 'b\n'] })?.message).toBe('subject.1: contains a control character');
    expect(run('/v1/admin/audit', { 'a\u007f': 'b' })?.message).toBe('a?: its name contains a control character');
    expect(run('/v1/admin/resources/a%00')?.message).toBe('the path contains a control character');
    expect(run('/v1/admin/resources/a%E0%A4%A')?.message).toBe('the path is not valid percent-encoded UTF-8 (RFC 3986 §2.1)');
  });

  it('refuses other C0 controls in body strings and in member names', () => {
    expect(run('/v1/admin/entries', {}, { metadata: { owner: 'a\u001b[2J' } })?.message).toBe('metadata.owner: contains a control character');
    expect(run('/v1/admin/entries', {}, { 'x\ny': 1 })?.message).toBe('x?y: its name contains a control character');
  });

  it('answers with InvalidRequest (problem urn:writ:problem:invalid-request, 400)', () => {
    const err = run('/x', { a: '\u0000' });
    expect(err).toBeInstanceOf(InvalidRequest);
    expect(err).toMatchObject({ status: 400, type: 'urn:writ:problem:invalid-request' });
  });
});
