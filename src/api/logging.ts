import type { RequestHandler } from 'express';
import pino, { type LevelWithSilent, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import type { Random } from '../core/random';
import { routeLabel } from './metrics';
import { peerLeaf } from './peer';

/**
 * What a refused request's log line names: the OAuth `error` code (RFC 6749 §5.2), the problem
 * `type` (RFC 9457) or the SET error (RFC 8935 §2.3) the error handler answered with.
 */
export function noteRefusal(res: { locals?: Record<string, unknown> }, reason: string): void {
  (res.locals ??= {}).refusal = reason;
}

/**
 * One JSON log line per request, naming the refusal of a refused one (`res.error`). Logs the
 * path without its query string and no headers or bodies, so credentials and tokens never
 * reach the log.
 */
export function requestLogger(logger: Logger, random: Random): RequestHandler {
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    const id = random.uuid();
    res.setHeader('x-request-id', id);
    res.on('finish', () => {
      logger.info(
        {
          req: { id, method: req.method, path: req.path, route: routeLabel(req), mtls: peerLeaf(req) !== undefined },
          res: { status: res.statusCode, ...(typeof res.locals.refusal === 'string' && { error: res.locals.refusal }) },
          ms: Number(process.hrtime.bigint() - start) / 1e6,
        },
        'request',
      );
    });
    next();
  };
}

/**
 * The broker's logger: JSON lines on stdout (WRIT_LOG_FORMAT=json, the default), or the
 * same events made readable by pino-pretty (`pretty`, for local use). `base` adds fields
 * to every line (a worker's id and pid).
 */
export function brokerLogger(settings: { readonly logLevel: LevelWithSilent; readonly logFormat: 'json' | 'pretty' }, base: Record<string, unknown> = {}): Logger {
  const options = { level: settings.logLevel, base: { service: 'writ', ...base } };
  if (settings.logFormat === 'json') return pino(options);
  // Synchronous, in this thread: a pretty line is written before the next one (and before an exit).
  return pino(options, pinoPretty({ destination: 1, sync: true, colorize: Boolean(process.stdout.isTTY), ignore: 'pid,hostname,service' }));
}
