import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import type { Command } from 'commander';
import { positiveInt } from '../args';
import { adminClient, globals } from '../context';
import { CliFailure } from '../errors';
import { fields, print } from '../output';

type Verification = { ok: true; events: number; head: string } | { ok: false; broken_at: number; reason: string; events_checked: number };

interface ExportOptions {
  after?: number;
  before?: number;
  type?: string;
  subject?: string;
  actor?: string;
  since?: string;
  until?: string;
  out?: string;
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit trail');

  audit
    .command('verify')
    .description('walk the hash chain; exit 1 when a row was altered or removed (keep the head hash somewhere Writ cannot write)')
    .action(async (_o: unknown, cmd: Command) => {
      const v = await adminClient(cmd).json<Verification>('GET', '/v1/admin/audit/verify');
      print(globals(cmd).output, v, () =>
        v.ok ? fields([['ok', true], ['events', v.events], ['head', v.head]]) : fields([['ok', false], ['broken_at', v.broken_at], ['reason', v.reason], ['events_checked', v.events_checked]]),
      );
      if (!v.ok) throw new CliFailure(`the audit chain is broken at event ${v.broken_at}: ${v.reason}`);
    });

  audit
    .command('export')
    .description('the events as JSON Lines in chain order, for a SIEM (always JSON Lines, whatever --output)')
    .option('--after <seq>', 'events after this seq', positiveInt)
    .option('--before <seq>', 'events before this seq', positiveInt)
    .option('--type <type>', 'an event type, or a prefix ending in * (token.*)')
    .option('--subject <subject>', 'events about this person')
    .option('--actor <actor>', 'events by this actor (a SPIFFE ID, admin)')
    .option('--since <time>', 'ISO 8601 date-time')
    .option('--until <time>', 'ISO 8601 date-time')
    .option('--out <file>', 'write to this file, complete or not at all (default: stdout)')
    .action(async (o: ExportOptions, cmd: Command) => {
      const q = new URLSearchParams();
      for (const k of ['after', 'before', 'type', 'subject', 'actor', 'since', 'until'] as const) if (o[k] !== undefined) q.set(k, String(o[k]));
      const client = adminClient(cmd);
      const path = `/v1/admin/audit/export${q.size > 0 ? `?${q}` : ''}`;
      if (o.out === undefined) return client.stream(path, process.stdout);
      // Written beside the file and renamed when complete: a cut-short export never takes its place.
      const tmp = `${o.out}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await client.stream(path, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
        renameSync(tmp, o.out);
      } catch (err) {
        rmSync(tmp, { force: true });
        if (err instanceof CliFailure) throw err;
        throw new CliFailure(`cannot write ${o.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    });
}
