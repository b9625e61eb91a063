import type { Request, RequestHandler } from 'express';
import { Counter, Histogram, Registry } from 'prom-client';
import { SECOND_BUCKETS } from '../telemetry';

/** A refusal's label: the OAuth error code, problem type or SET error the handler noted (src/api/logging.ts), which Writ's code names. */
const REFUSAL = /^[A-Za-z0-9_.:-]{1,96}$/;

/** The HTTP layer's Prometheus metrics: requests and their durations by route and status, and refusals by what they answered. */
export class HttpMetrics {
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route' | 'status'>;
  private readonly refusals: Counter<'route' | 'error'>;

  /** `registry`: where the broker's other metrics are (a registry of its own by default, for tests). */
  constructor(readonly registry: Registry = new Registry()) {
    const registers = [registry];
    this.requests = new Counter({ name: 'writ_http_requests_total', help: 'HTTP requests to the API, by route and status', labelNames: ['method', 'route', 'status'], registers });
    this.duration = new Histogram({ name: 'writ_http_request_duration_seconds', help: 'HTTP request duration on the API, by route and status', labelNames: ['method', 'route', 'status'], buckets: SECOND_BUCKETS, registers });
    this.refusals = new Counter({
      name: 'writ_refusals_total',
      help: 'Refused API requests, by route and the OAuth error code (RFC 6749 section 5.2), problem type (RFC 9457) or SET error (RFC 8935) answered',
      labelNames: ['route', 'error'],
      registers,
    });
  }

  /** Express middleware counting every request once it finishes. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const end = this.duration.startTimer();
      res.on('finish', () => {
        const route = routeLabel(req);
        const labels = { method: req.method, route, status: String(res.statusCode) };
        this.requests.inc(labels);
        end(labels);
        const refusal = res.locals.refusal;
        if (typeof refusal === 'string') this.refusals.inc({ route, error: REFUSAL.test(refusal) ? refusal : 'other' });
      });
      next();
    };
  }
}

/** The matched route's pattern, never the raw path: bounded label cardinality. */
export function routeLabel(req: Request): string {
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : 'unmatched';
}
