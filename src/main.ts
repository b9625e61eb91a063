#!/usr/bin/env node
import { startBroker, type Broker } from './broker';
import { loadConfig } from './config';
import { DomainError } from './core/errors';

/** One line, naming the setting when there is one; never a stack trace. */
function describe(err: unknown): string {
  if (err instanceof DomainError) return err.setting ? `${err.setting}: ${err.message}` : err.message;
  return `start-up failed: ${err instanceof Error ? err.message : String(err)}`;
}

async function main(): Promise<void> {
  let broker: Broker;
  try {
    broker = await startBroker(loadConfig(process.env));
  } catch (err) {
    process.stderr.write(`writ: ${describe(err).replace(/\s*\n\s*/g, ' ')}\n`);
    process.exit(1);
  }
  const stop = (signal: string) => {
    process.stderr.write(`writ: ${signal} received, shutting down\n`);
    broker.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`writ: shutdown failed: ${describe(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

void main();
