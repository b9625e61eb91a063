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
 * authorization code flow with PKCE) and prints the ID token; `writ dev link-account <link>
 * <user>` plays the user's browser on a token vault link: signs them in to Writ and at the dev
 * SaaS, which sends them back to Writ with the grant.
 */
export function registerDev(program: Command): void {
  const dev = program
    .command('dev')
    .description('development only: the broker on an embedded database with a local OpenID Provider, test users and a sample policy (refused with NODE_ENV=production)')
    .addOption(new Option('--dir <dir>', 'where the database, CA, keys, users.yaml and policy.cedar are kept').env('WRIT_DEV_DIR').default('.writ-dev'))
    .addOption(new Option('--port <port>', 'the broker\'s HTTPS port').env('WRIT_PORT').default(8443).argParser(portNumber))
    .addOption(new Option('--ops-port <port>', 'the broker\'s ops port (/readyz, /metrics)').env('WRIT_OPS_PORT').default(9090).argParser(portNumber))
    .addOption(new Option('--op-port <port>', 'the OpenID Provider\'s port (http, 127.0.0.1)').env('WRIT_DEV_OP_PORT').default(9400).argParser(portNumber))
    .addOption(new Option('--saas-port <port>', 'the dev SaaS\'s port (http, localhost): the token vault\'s provider "notes"').env('WRIT_DEV_SAAS_PORT').default(9401).argParser(portNumber))
    .action(async (o: { dir: string; port: number; opsPort: number; opPort: number; saasPort: number }) => {
      const { DevRefused, banner, refuseProduction, startDev } = await import('../../dev/start');
      try {
        refuseProduction(process.env);
      } catch (err) {
        if (err instanceof DevRefused) throw new DevNotHere(err.message);
        throw err;
      }
      const running = await startDev({ dir: o.dir, port: o.port, opsPort: o.opsPort, opPort: o.opPort, saasPort: o.saasPort, env: process.env });
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

  dev
    .command('link-account')
    .description('open a token vault link (interaction_required\'s link_uri) as USER: sign in to Writ at the writ dev provider, then at the dev SaaS, which hands Writ the grant')
    .argument('<link>', 'the link_uri Writ answered')
    .argument('<user>', 'the user the link was made for')
    .addOption(new Option('--ca <file>', 'Writ\'s CA certificate (PEM)').env('WRIT_CA').makeOptionMandatory())
    .action(async (link: string, user: string, o: { ca: string }) => {
      const { readFileSync } = await import('node:fs');
      const { DevBrowserError, linkAccount } = await import('../../dev/link');
      let ca: string;
      try {
        ca = readFileSync(o.ca, 'utf8');
      } catch (err) {
        throw new CliFailure(`cannot read --ca ${o.ca}: ${(err as Error).message}`);
      }
      try {
        await linkAccount({ link, username: user, ca });
      } catch (err) {
        if (err instanceof DevBrowserError || err instanceof TypeError) throw new CliFailure(err.message);
        throw err;
      }
      process.stdout.write(`linked: ${user}'s account is in Writ's vault; ask for the provider's token again\n`);
    });
}
