#!/usr/bin/env node
import { CommanderError } from 'commander';
import { CliFailure, EXIT, oneLine } from './errors';
import { buildProgram } from './program';

/**
 * The `writ` CLI. Exit status: 0 on success; 1 when the broker refuses (its problem
 * `detail` or OAuth `error_description`, in one line on stderr) or a local step fails;
 * 2 for usage errors (the error, then the command's usage).
 */
async function run(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help, `writ help` and --version are not errors (commander's exit code 0); everything else commander refuses is usage.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`writ: ${oneLine(message)}\n`);
    return err instanceof CliFailure ? err.exitCode : EXIT.REFUSED;
  }
}

// A reader that went away (writ … | head) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.OK);
  throw err;
});

void run(process.argv).then((code) => {
  // Not process.exit(): stdout may still be flushing, and `writ serve` keeps running.
  if (code !== EXIT.OK) process.exitCode = code;
});
