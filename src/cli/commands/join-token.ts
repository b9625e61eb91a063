import { Option, type Command } from 'commander';
import { seconds, spiffeId, uuid } from '../args';
import { adminClient, globals, usage } from '../context';
import { BrokerRefused, CliFailure } from '../errors';
import { entriesFor } from './entry';
import { fields, print } from '../output';
import { writeSecret } from '../secrets';

interface JoinToken {
  token: string;
  expires_at: string;
  entry_id: string;
  spiffe_id: string;
}

export function registerJoinToken(program: Command): void {
  program
    .command('join-token')
    .description('single-use join tokens')
    .command('create')
    .description('make a join token for an entry (shown once: only its hash is stored)')
    .addOption(new Option('--spiffe-id <id>', 'the entry\'s SPIFFE ID (one entry must have it)').argParser(spiffeId).conflicts('entryId'))
    .option('--entry-id <id>', 'the entry id', uuid)
    .option('--ttl <duration>', 'how long it may be used (default 600 s, at most 7d)', seconds)
    .option('--token-file <file>', 'write the token to this file (mode 0600) instead of printing it')
    .action(async (o: { spiffeId?: string; entryId?: string; ttl?: number; tokenFile?: string }, cmd: Command) => {
      if (o.spiffeId === undefined && o.entryId === undefined) usage(cmd, 'give --spiffe-id or --entry-id');
      const client = adminClient(cmd);
      let issued: JoinToken;
      try {
        issued = await client.json<JoinToken>('POST', '/v1/admin/join-tokens', {
          ...(o.spiffeId !== undefined ? { spiffe_id: o.spiffeId } : { entry_id: o.entryId }),
          ...(o.ttl !== undefined && { ttl: o.ttl }),
        });
      } catch (err) {
        // The broker asks for its entry_id field when several entries share the SPIFFE ID: say which flag, and the ids.
        if (o.spiffeId !== undefined && err instanceof BrokerRefused && /\bentry_id\b/.test(err.message)) {
          const ids = await entriesFor(client, o.spiffeId).then((es) => es.map((e) => e.id), () => []);
          throw new CliFailure(`${ids.length > 1 ? ids.length : 'several'} entries name ${o.spiffeId}: give --entry-id${ids.length > 0 ? ` (one of ${ids.join(', ')})` : ''} instead of --spiffe-id (${err.status} ${err.reason})`);
        }
        throw err;
      }
      const shown = writeSecret(issued, 'token', o.tokenFile);
      print(globals(cmd).output, shown, () =>
        fields([
          ['token', shown.token ?? `written to ${shown.token_file}`],
          ['spiffe_id', issued.spiffe_id],
          ['entry_id', issued.entry_id],
          ['expires_at', issued.expires_at],
        ]),
      );
    });
}
