import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option, type HelpContext } from 'commander';
import { registerAgent } from './commands/agent';
import { registerApprovals } from './commands/approvals';
import { registerLogin } from './commands/login';
import { registerAudit } from './commands/audit';
import { registerCa } from './commands/ca';
import { registerDev } from './commands/dev';
import { registerEntry } from './commands/entry';
import { registerExchange } from './commands/exchange';
import { registerIntrospect } from './commands/introspect';
import { registerJoinToken } from './commands/join-token';
import { registerPolicy } from './commands/policy';
import { registerResource } from './commands/resource';
import { registerProvider } from './commands/provider';
import { registerRevoke } from './commands/revoke';
import { registerServe } from './commands/serve';
import { registerStatus } from './commands/status';
import { registerSvid } from './commands/svid';

const version = (): string => {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
};

/** `writ entry create`, for usage lines. */
const pathOf = (cmd: Command): string => (cmd.parent ? `${pathOf(cmd.parent)} ${cmd.name()}` : cmd.name());

function* allCommands(cmd: Command): Generator<Command> {
  yield cmd;
  for (const sub of cmd.commands) yield* allCommands(sub);
}

/**
 * `writ bogus --help`: commander shows the group's help and exits 0, as if `bogus` were fine.
 * When the help of a command group is asked for with an operand that names none of its
 * commands, it is an unknown command instead: the error, the usage, exit 2.
 */
function refuseHelpForUnknownCommands(cmd: Command): void {
  const outputHelp = cmd.outputHelp.bind(cmd) as (context?: HelpContext | ((str: string) => string)) => void;
  cmd.outputHelp = (context?: HelpContext | ((str: string) => string)) => {
    const first = cmd.args[0];
    const named = first !== undefined && !first.startsWith('-') && first !== 'help';
    if (named && !cmd.commands.some((c) => c.name() === first || c.aliases().includes(first))) {
      cmd.error(`error: unknown command '${first}'`, { exitCode: 2, code: 'commander.unknownCommand' });
    }
    outputHelp(context);
  };
}

/**
 * The `writ` command line. Parsing errors do not exit: they throw (exitOverride) so that
 * main maps them to exit 2, after printing the error and the command's usage.
 */
export function buildProgram(): Command {
  const program = new Command('writ')
    .description('Writ: SPIFFE SVIDs for connectors, per-task tokens, revocation and audit')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .addOption(new Option('--server <url>', 'the broker').env('WRIT_SERVER').default('https://localhost:8443'))
    .addOption(new Option('--ca <bundle.pem>', 'trust anchors for the broker\'s TLS certificate (default: an SVID directory\'s bundle.pem, else the system\'s)').env('WRIT_CA'))
    .addOption(new Option('--token <token>', 'the admin token (prefer WRIT_ADMIN_TOKEN: arguments show in the process list)').env('WRIT_ADMIN_TOKEN'))
    .addOption(new Option('--svid-dir <dir>', 'admin over mTLS with the admin SVID in DIR (key.pem, svid.pem, bundle.pem)').env('WRIT_SVID_DIR'))
    .addOption(new Option('-o, --output <format>', 'table for people, json for programs').choices(['table', 'json']).default('table'))
    .addHelpText('after', '\nExit status: 0 done; 1 refused (by the broker, or a local file); 2 usage error; 3 the broker cannot be reached.');

  registerServe(program);
  registerEntry(program);
  registerJoinToken(program);
  registerSvid(program);
  registerExchange(program);
  registerRevoke(program);
  registerResource(program);
  registerProvider(program);
  registerPolicy(program);
  registerAudit(program);
  registerIntrospect(program);
  registerStatus(program);
  registerCa(program);
  registerDev(program);
  registerAgent(program);
  registerApprovals(program);
  registerLogin(program);

  for (const cmd of allCommands(program)) {
    const path = pathOf(cmd);
    cmd.showHelpAfterError(`Usage: ${path} ${cmd.usage()}\nRun '${path} --help' for details.`);
    if (cmd.commands.length > 0) refuseHelpForUnknownCommands(cmd);
  }
  return program;
}
