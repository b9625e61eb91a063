#!/usr/bin/env node
import { startBroker, type Broker } from './broker';
import { loadConfig } from './config';
import { DomainError } from './core/errors';

/** One line, naming the setting when there is one; never a stack trace. */
function describe(err: unknown): string {
  const text = err instanceof DomainError ? (err.setting ? `${err.setting}: ${err.message}` : err.message) : `start-up failed: ${err instanceof Error ? err.message : String(err)}`;
  return text.replace(/\s*\n\s*/g, ' ');
}

async function main(): Promise<void> {
  let broker: Broker | undefined;
  let stopSignal: string | undefined;
  const stop = (signal: string) => {
    stopSignal = signal;
    if (!broker) return; // still starting: shut down as soon as it is up
    process.stderr.write(`writ: ${signal} received, shutting down\n`);
    broker.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`writ: shutdown failed: ${describe(err)}\n`);
        process.exit(1);
      },
    );
  };
  // Installed before start-up so that a signal arriving at any moment is handled.
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  try {
    broker = await startBroker(loadConfig(process.env));
  } catch (err) {
    process.stderr.write(`writ: ${describe(err)}\n`);
    process.exit(1);
  }
  if (stopSignal) stop(stopSignal);
}

void main();
