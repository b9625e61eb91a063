import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Router } from 'express';
import type { Logger } from 'pino';
import type { Random } from '../core/random';
import { requestLogger } from './logging';
import type { HttpMetrics } from './metrics';
import { openApiRouter } from './openapi';
import { errorHandler, notFound } from './problem';
import { refuseControlCharacters } from './validate';

/**
 * Request bodies larger than this are refused with 413 (RFC 9110 §15.5.14) on every route,
 * whatever their media type and framing (Content-Length or chunked), before a route sees them.
 */
export const BODY_LIMIT = '64kb';

export interface ApiDeps {
  /** The routers of each domain's endpoints, mounted in order. */
  routers: readonly Router[];
  /** Error handlers that answer in their protocol's shape (OAuth), before the problem+json one. */
  errorHandlers?: readonly ErrorRequestHandler[];
  /** Runs before the routers, after the body parsers (e.g. `forwardedClientCertificates`). */
  before?: readonly RequestHandler[];
  logger: Logger;
  metrics: HttpMetrics;
  random: Random;
}

/** The HTTPS API. Handlers are thin: they validate, call a domain, and answer. */
export function createApiApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(deps.metrics.middleware());
  app.use(requestLogger(deps.logger, deps.random));
  app.use(express.json({ limit: BODY_LIMIT, type: ['application/json', 'application/*+json'] }));
  app.use(express.urlencoded({ limit: BODY_LIMIT, extended: false }));
  // Any other media type (text/plain, application/octet-stream, none, a SET) is read as text under the same cap.
  app.use(express.text({ limit: BODY_LIMIT, type: () => true }));
  app.use(refuseControlCharacters);
  for (const handler of deps.before ?? []) app.use(handler);
  app.use(openApiRouter()); // GET /openapi.json, public
  for (const router of deps.routers) app.use(router);
  app.use(notFound);
  for (const handler of deps.errorHandlers ?? []) app.use(handler);
  app.use(errorHandler(deps.logger));
  return app;
}
