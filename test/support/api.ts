import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createApiApp, type ApiDeps } from '../../src/api/app';
import { HttpMetrics } from '../../src/api/metrics';
import { systemRandom } from '../../src/core/random';

/** The API app over plain HTTP on a loopback port, for router tests with fake services. */
export interface ServedApi {
  readonly base: string;
  close(): Promise<void>;
}

/** Serves `routers` (and their protocol's error handlers) as the broker's API app does, silently unless given a logger. */
export async function serveApi(deps: Pick<ApiDeps, 'routers' | 'errorHandlers'> & { logger?: ApiDeps['logger'] }): Promise<ServedApi> {
  const server = createServer(createApiApp({ ...deps, logger: deps.logger ?? pino({ level: 'silent' }), metrics: new HttpMetrics(), random: systemRandom }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
