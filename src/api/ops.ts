import { createServer, type Server } from 'node:http';
import type { Readiness } from '../db/open';

/** What /metrics answers: this process's registry, or (clustered) the sum over every worker. */
export interface MetricsEndpoint {
  readonly contentType: string;
  text(): Promise<string>;
}

export interface OpsDeps {
  readiness(): Promise<Readiness>;
  metrics: MetricsEndpoint;
}

/**
 * The plain-HTTP operations listener: /healthz (the process answers), /readyz
 * (database reachable and migrated, not shutting down) and /metrics (Prometheus text).
 */
export function createOpsServer(deps: OpsDeps): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    try {
      switch (path) {
        case '/healthz':
          return send(200, 'application/json', JSON.stringify({ status: 'ok' }));
        case '/readyz': {
          const r = await deps.readiness();
          return r.ready
            ? send(200, 'application/json', JSON.stringify({ status: 'ready' }))
            : send(503, 'application/json', JSON.stringify({ status: 'not ready', reason: r.reason }));
        }
        case '/metrics':
          return send(200, deps.metrics.contentType, await deps.metrics.text());
        default:
          return send(404, 'text/plain; charset=utf-8', 'not found\n');
      }
    } catch {
      return send(503, 'application/json', JSON.stringify({ status: 'error' }));
    }
  });
}
