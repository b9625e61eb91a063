import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Random } from '../core/random';
import { routeLabel } from './metrics';
import { peerLeaf } from './peer';

/**
 * One JSON log line per request. Logs the path without its query string and no
 * headers or bodies, so credentials and tokens never reach the log.
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
          res: { status: res.statusCode },
          ms: Number(process.hrtime.bigint() - start) / 1e6,
        },
        'request',
      );
    });
    next();
  };
}
