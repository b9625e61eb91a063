import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { noteRefusal } from './logging';
import { DomainError, problemType } from '../core/errors';

/** An RFC 9457 problem details object. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  /** Extension members (RFC 9457 §3.2), such as a validator's `errors`. */
  [extension: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Sends `application/problem+json` (RFC 9457 §3). */
export function sendProblem(res: Response, status: number, type: string, detail?: string, extensions: Record<string, unknown> = {}): void {
  const body: Problem = { ...extensions, type, title: TITLES[status] ?? 'Error', status, ...(detail ? { detail } : {}) };
  noteRefusal(res, type);
  res.status(status).type('application/problem+json').send(JSON.stringify(body));
}

export const notFound: RequestHandler = (req, res) => {
  sendProblem(res, 404, problemType('not-found'), `no resource at ${req.method} ${req.path}`);
};

/** body-parser's error types, as problems a caller can act on. */
const BODY_ERRORS: Record<string, [number, string, string]> = {
  'entity.too.large': [413, 'body-too-large', 'request body is too large'],
  'parameters.too.many': [413, 'body-too-large', 'request body has too many parameters'],
  'entity.parse.failed': [400, 'malformed-body', 'request body is not valid JSON'],
  'encoding.unsupported': [415, 'unsupported-encoding', 'request body encoding is not supported'],
  'charset.unsupported': [415, 'unsupported-charset', 'request body charset is not supported'],
  'request.aborted': [400, 'request-aborted', 'request was aborted'],
};

/** A client error (RFC 9110 §15.5) as body-parser (http-errors, `expose`) or Express's router (a param that is not percent-encoded UTF-8) raise them. */
const isClientError = (err: unknown): err is { status: number } => {
  const e = err as { status?: unknown; expose?: unknown } | undefined;
  return typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && (e.expose === true || err instanceof URIError);
};

/**
 * RFC 9457 §3.1.1: a problem's `type` is a URI. A domain error that carries an OAuth error code
 * (RFC 6749 §5.2, e.g. `invalid_request` from a check every route shares) becomes Writ's problem
 * type of the same name.
 */
const asProblemType = (type: string): string => (type.includes(':') ? type : problemType(type.replace(/_/g, '-')));

/**
 * The one place errors become HTTP answers. Domain errors carry their status and
 * problem type; anything else is a 500 whose detail stays in the log, never in the answer.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err instanceof DomainError) {
      if (err.status >= 500) logger.error({ err: { name: err.name, message: err.message }, path: req.path }, 'request failed');
      const errors = (err as { errors?: unknown }).errors;
      return sendProblem(res, err.status, asProblemType(err.type), err.message, Array.isArray(errors) ? { errors } : {});
    }
    const bodyError = typeof err?.type === 'string' ? BODY_ERRORS[err.type] : undefined;
    if (bodyError) return sendProblem(res, bodyError[0], problemType(bodyError[1]), bodyError[2]);
    // Another client error Express or a parser raised (http-errors, `expose` for 4xx): the request's fault, never a 500.
    if (isClientError(err)) return sendProblem(res, err.status, problemType('invalid-request'), 'the request is malformed');
    logger.error({ err: { name: err?.name, message: err?.message, stack: err?.stack }, path: req.path }, 'unhandled error');
    return sendProblem(res, 500, problemType('internal'), 'internal error');
  };
}
