import { resolve } from 'node:path';
import type { Command } from 'commander';

/**
 * `writ serve` runs the broker in this process, exactly as `npm start` (dist/main.js) does:
 * the same module, configured by the same environment (and WRIT_CONFIG), with its own
 * SIGTERM/SIGINT handling and WRIT_WORKERS cluster (a worker forked from here re-runs
 * `writ serve`, which then starts as a worker).
 */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the broker (what npm start runs), configured by the environment: see the README\'s Configuration')
    .option('--config <file>', 'a YAML or JSON configuration file (sets WRIT_CONFIG)')
    .action(async (o: { config?: string }) => {
      if (o.config !== undefined) process.env.WRIT_CONFIG = resolve(o.config);
      const { main } = await import('../../main');
      main();
    });
}
