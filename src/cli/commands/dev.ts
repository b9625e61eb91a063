import { Option, type Command } from 'commander';
import { CliFailure, EXIT } from '../errors';

/** `writ dev` where it must not run (NODE_ENV=production): a usage error, exit 2. */
class DevNotHere extends CliFailure {
  override readonly exitCode: number = EXIT.USAGE;
}

const portNumber = (raw: string): number => {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new CliFailure(`${JSON.stringify(raw)} is not a port number`);
  return n;
};

/**
 * `writ dev` runs the broker for development, with a local OpenID Provider (src/dev), until
 * SIGINT or SIGTERM; `writ dev id-token <user>` signs a test user in to that provider (an
 * authorization code flow with PKCE) and prints the ID token.
 */
export function registerDev(program: Command): void {
  const dev = program
    .command('dev')
    .description('development only: the broker on an embedded database with a local OpenID Provider, test users and a sample policy (refused with NODE_ENV=production)')
    .addOption(new Option('--dir <dir>', 'where the database, CA, keys, users.yaml and policy.cedar are kept').env('WRIT_DEV_DIR').default('.writ-dev'))
    .addOption(new Option('--port <port>', 'the broker\'s HTTPS port').env('WRIT_PORT').default(8443).argParser(portNumber))
    .addOption(new Option('--ops-port <port>', 'the broker\'s ops port (/readyz, /metrics)').env('WRIT_OPS_PORT').default(9090).argParser(portNumber))
    .addOption(new Option('--op-port <port>', 'the OpenID Provider\'s port (http, 127.0.0.1)').env('WRIT_DEV_OP_PORT').default(9400).argParser(portNumber))
    .action(async (o: { dir: string; port: number; opsPort: number; opPort: number }) => {
      const { DevRefused, banner, refuseProduction, startDev } = await import('../../dev/start');
      try {
        refuseProduction(process.env);
      } catch (err) {
        if (err instanceof DevRefused) throw new DevNotHere(err.message);
        throw err;
      }
      const running = await startDev({ dir: o.dir, port: o.port, opsPort: o.opsPort, opPort: o.opPort, env: process.env });
      const { readUsers } = await import('../../dev/users');
      process.stdout.write(banner(running, [...readUsers(running.files.users).keys()]));
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`writ: ${signal} received, shutting down\n`);
        running.close().then(
          () => process.exit(EXIT.OK),
          (err: unknown) => {
            process.stderr.write(`writ: shutdown failed: ${(err as Error).message}\n`);
            process.exit(EXIT.REFUSED);
          },
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });

  dev
    .command('id-token')
    .description('sign USER in to the running writ dev OpenID Provider (authorization code flow with PKCE) and print the ID token')
    .argument('<user>', 'a user name from the users file (alice, bob, carol in the sample)')
    .addOption(new Option('--op <url>', 'the provider\'s issuer').env('WRIT_DEV_OP').default('http://127.0.0.1:9400'))
    .action(async (user: string, o: { op: string }) => {
      const { fetchIdToken, IdTokenFlowError } = await import('../../dev/id-token');
      try {
        process.stdout.write(`${await fetchIdToken({ issuer: o.op, username: user })}\n`);
      } catch (err) {
        if (err instanceof IdTokenFlowError) throw new CliFailure(err.message);
        throw err;
      }
    });
}
