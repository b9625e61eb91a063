import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { MetricsEndpoint } from '../api/ops';

/** A worker's request for the cluster's metrics, and the primary's answer. */
export const METRICS_REQUEST = 'writ:metrics';
export const METRICS_ANSWER = 'writ:metrics-answer';

/** How long a worker waits for the primary's sum (prom-client's primary waits up to 5 s for each worker). */
const ANSWER_TIMEOUT_MS = 6000;

interface MetricsAnswer {
  readonly type: typeof METRICS_ANSWER;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/**
 * The primary's side. Workers share the ops port through node:cluster, so a scrape reaches one of
 * them at random; that one asks the primary, which gathers every worker's registry over IPC and
 * sums them with prom-client's AggregatorRegistry (each metric by its `aggregator`). One scrape
 * thus reports the whole pod: no counter depends on which worker Prometheus happened to reach.
 */
export function answerMetricsRequests(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: unknown) => {
    const m = message as { type?: unknown; id?: unknown } | null;
    if (m?.type !== METRICS_REQUEST || typeof m.id !== 'number') return;
    const answer = (a: Omit<MetricsAnswer, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: METRICS_ANSWER, id: m.id, ...a });
    };
    aggregator.clusterMetrics().then(
      (text) => answer({ text }),
      (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/**
 * Prepares this worker to answer the primary's requests for its metrics: from the start, so that a
 * worker still starting answers (with nothing) rather than making every scrape wait for it.
 */
export function prepareWorkerMetrics(): void {
  new AggregatorRegistry(); // installs prom-client's worker listener
  AggregatorRegistry.setRegistries([]);
}

/** A worker's /metrics: its registry joins the cluster's, and a scrape answers the primary's sum. */
export function clusterMetricsEndpoint(registry: Registry): MetricsEndpoint {
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  return {
    contentType: registry.contentType,
    text: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const onMessage = (message: unknown) => {
          const a = message as MetricsAnswer | null;
          if (a?.type !== METRICS_ANSWER || a.id !== id) return;
          done();
          if (typeof a.text === 'string') resolve(a.text);
          else reject(new Error(`the primary could not sum the workers' metrics: ${a.error ?? 'no answer'}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error('the primary did not answer with the cluster\'s metrics in time'));
        }, ANSWER_TIMEOUT_MS);
        const done = () => {
          clearTimeout(timer);
          process.off('message', onMessage);
        };
        process.on('message', onMessage);
        const fail = (err: Error) => {
          done();
          reject(err);
        };
        if (!process.send) return fail(new Error('this process is not a cluster worker'));
        process.send({ type: METRICS_REQUEST, id }, undefined, undefined, (err) => err && fail(err));
      }),
  };
}
