#!/usr/bin/env node
import cluster from 'node:cluster';
import type { Broker } from './broker';
import { answerMetricsRequests, clusterMetricsEndpoint, notifyListening, prepareWorkerMetrics, superviseWorkers } from './cluster';
import { loadConfig, type Config } from './config';
import { DomainError } from './core/errors';

/** One line, naming the setting when there is one; never a stack trace. */
function describe(err: unknown): string {
  const text = err instanceof DomainError ? (err.setting ? `${err.setting}: ${err.message}` : err.message) : `start-up failed: ${err instanceof Error ? err.message : String(err)}`;
  return text.replace(/\s*\n\s*/g, ' ');
}

/**
 * Runs the broker in this process until SIGTERM or SIGINT. `worker` is the cluster worker
 * id when this process is one of WRIT_WORKERS: it then tells the primary once it listens.
 */
async function runBroker(config: Config, worker: number | undefined): Promise<void> {
  let broker: Broker | undefined;
  let stopSignal: string | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    stopSignal = signal;
    if (!broker || stopping) return; // still starting: shut down as soon as it is up
    stopping = true;
    process.stderr.write(`writ: ${signal} received, shutting down\n`);
    broker.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`writ: shutdown failed: ${describe(err)}\n`);
        process.exit(1);
      },
    );
  };
  // Installed before start-up so that a signal arriving at any moment is handled. A worker
  // may get a signal twice (its process group's, and the primary's): it keeps draining.
  const on = worker === undefined ? process.once.bind(process) : process.on.bind(process);
  on('SIGTERM', () => stop('SIGTERM'));
  on('SIGINT', () => stop('SIGINT'));
  try {
    // Loaded here, not at the top: a cluster's primary only supervises, and the broker's modules
    // (Prisma, Cedar, the HTTP stack: about 50 MB resident) are its workers' alone.
    const { startBroker } = await import('./broker');
    const { brokerLogger } = await import('./api/logging');
    // Of several workers, the first alone writes the start-up summary (the terminal is shared).
    const terminal = worker === undefined || worker === 1 ? process.stderr : { isTTY: false, write: (text: string) => process.stderr.write(text) };
    broker = await startBroker(config, worker === undefined ? { terminal } : { terminal, speaksForAll: worker === 1, logger: brokerLogger(config, { worker, pid: process.pid }), metricsEndpoint: clusterMetricsEndpoint });
  } catch (err) {
    process.stderr.write(`writ: ${describe(err)}\n`);
    process.exit(1);
  }
  if (stopSignal) stop(stopSignal);
  else if (worker !== undefined) notifyListening();
}

/** Reads the configuration and runs the broker (or, with WRIT_WORKERS above 1, supervises its workers). */
export function main(): void {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`writ: ${describe(err)}\n`);
    process.exit(1);
  }
  if (config.workers > 1 && cluster.isPrimary) {
    answerMetricsRequests();
    void superviseWorkers({ workers: config.workers }).then((code) => process.exit(code));
  } else {
    if (config.workers > 1) prepareWorkerMetrics();
    void runBroker(config, config.workers > 1 ? cluster.worker!.id : undefined);
  }
}

if (require.main === module) main();
