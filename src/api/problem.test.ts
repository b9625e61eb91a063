import type { NextFunction, Request, Response } from 'express';
import pino from 'pino';
import { InvalidRequest } from '../tokens/errors';
import { errorHandler } from './problem';

/** What errorHandler answers for `err`: status and problem body. */
function answer(err: unknown): { status: number; body: Record<string, unknown> } {
  const res = { headersSent: false, statusCode: 0, status(s: number) { this.statusCode = s; return this; }, type() { return this; }, send(b: string) { this.body = b; return this; }, body: '' };
  errorHandler(pino({ level: 'silent' }))(err, { path: '/x' } as Request, res as unknown as Response, (() => undefined) as NextFunction);
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
}

describe('errorHandler: client errors raised outside the domains are 4xx, never 500', () => {
  it('a route parameter that is not percent-encoded UTF-8 (Express\'s router: URIError, status 400)', () => {
    const err = Object.assign(new URIError("Failed to decode param '%E0%A4%A'"), { status: 400 });
    expect(answer(err)).toEqual({ status: 400, body: { type: 'urn:writ:problem:invalid-request', title: 'Bad Request', status: 400, detail: 'the request is malformed' } });
  });

  it('a form body with more parameters than the parser takes (body-parser parameters.too.many)', () => {
    expect(answer(Object.assign(new Error('too many parameters'), { status: 413, expose: true, type: 'parameters.too.many' }))).toMatchObject({ status: 413, body: { type: 'urn:writ:problem:body-too-large' } });
  });

  it('another http-errors client error (expose), without echoing its message', () => {
    expect(answer(Object.assign(new Error('bad: secret=…'), { status: 400, expose: true, type: 'something.else' }))).toMatchObject({ status: 400, body: { detail: 'the request is malformed' } });
  });

  it('anything else stays a 500 whose detail is not shown', () => {
    expect(answer(new TypeError('boom at x.ts:1'))).toEqual({ status: 500, body: { type: 'urn:writ:problem:internal', title: 'Internal Server Error', status: 500, detail: 'internal error' } });
  });
});

describe('errorHandler: a problem type is always a URI (RFC 9457 §3.1.1)', () => {
  it('a domain error carrying an OAuth error code becomes the problem type of that name', () => {
    const err = new InvalidRequest('Client-Cert does not hold an X.509 certificate');
    expect(answer(err)).toEqual({ status: 400, body: { type: 'urn:writ:problem:invalid-request', title: 'Bad Request', status: 400, detail: 'Client-Cert does not hold an X.509 certificate' } });
  });
});
