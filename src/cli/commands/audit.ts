import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { positiveInt, seconds } from '../args';
import type { BrokerClient } from '../client';
import { adminClient, globals, usage } from '../context';
import { CliFailure } from '../errors';
import { fields, note, print, table, type Column } from '../output';

/** An event as GET /v1/admin/audit and the export show it. */
interface AuditEvent {
  seq: number;
  at: string;
  type: string;
  subject: string | null;
  subject_issuer: string | null;
  actor: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

interface FilterOptions {
  type?: string;
  subject?: string;
  subjectIssuer?: string;
  actor?: string;
  since?: string;
  until?: string;
}

const FILTERS = ['type', 'subject', 'subject_issuer', 'actor', 'since', 'until'] as const;

/** The filter options the list, the export and the tail share (the REST API's query parameters). */
function filterOptions(cmd: Command): Command {
  return cmd
    .option('--type <type>', 'an event type, or a prefix ending in * (token.*)')
    .option('--subject <subject>', 'events about this person (their sub)')
    .option('--subject-issuer <iss>', 'the identity provider that names --subject')
    .option('--actor <actor>', 'events by this actor (a SPIFFE ID, admin)')
    .option('--since <time>', 'ISO 8601 date-time')
    .option('--until <time>', 'ISO 8601 date-time');
}

/** The option commander keeps a query parameter in (`subject_issuer` from `--subject-issuer`). */
const optionOf = (param: string) => param.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

const queryOf = (o: object, keys: readonly string[]): URLSearchParams => {
  const q = new URLSearchParams();
  const given = o as Record<string, unknown>;
  for (const k of keys) if (given[optionOf(k)] !== undefined) q.set(k, String(given[optionOf(k)]));
  return q;
};

const EVENT_COLUMNS: Column<AuditEvent>[] = [
  ['SEQ', (e) => e.seq],
  ['AT', (e) => e.at],
  ['TYPE', (e) => e.type],
  ['SUBJECT', (e) => e.subject],
  ['ISSUER', (e) => e.subject_issuer], // the identity provider naming SUBJECT
  ['ACTOR', (e) => e.actor],
  ['DETAILS', (e) => (Object.keys(e.details).length > 0 ? e.details : undefined)],
];

/** The events after `after` in chain order (the export's JSON Lines, read whole). */
async function eventsAfter(client: BrokerClient, after: number, o: FilterOptions): Promise<AuditEvent[]> {
  const q = queryOf(o, FILTERS);
  if (after > 0) q.set('after', String(after));
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  await client.stream(`/v1/admin/audit/export${q.size > 0 ? `?${q}` : ''}`, sink);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditEvent);
}

/** Resolves after `ms`, or at once when `stop` fires. */
const pause = (ms: number, stop: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    stop.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

type Verification = { ok: true; events: number; head: string } | { ok: false; broken_at: number; reason: string; events_checked: number };

interface ExportOptions {
  after?: number;
  before?: number;
  type?: string;
  subject?: string;
  subjectIssuer?: string;
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

  filterOptions(audit.command('list').description('events, newest first, with the REST API\'s filters'))
    .option('--limit <n>', 'at most this many (default 100, the broker caps at 1000)', positiveInt)
    .option('--before <seq>', 'the page before this seq (from the last page)', positiveInt)
    .action(async (o: FilterOptions & { limit?: number; before?: number }, cmd: Command) => {
      const q = queryOf(o, [...FILTERS, 'limit', 'before']);
      const page = await adminClient(cmd).json<{ events: AuditEvent[]; next_before?: number }>('GET', `/v1/admin/audit${q.size > 0 ? `?${q}` : ''}`);
      print(globals(cmd).output, page, () => table(page.events, EVENT_COLUMNS));
      if (page.next_before !== undefined && globals(cmd).output === 'table') note(`more events: --before ${page.next_before}`);
    });

  filterOptions(audit.command('tail').description('print new events as they are recorded (JSON Lines with -o json), until interrupted'))
    .option('--after <seq>', 'start after this seq (default: the newest event now)', positiveInt)
    .addOption(new Option('--interval <duration>', 'how often to ask the broker').argParser(seconds).default(2, '2s'))
    .option('--count <n>', 'stop after this many events', positiveInt)
    .action(async (o: FilterOptions & { after?: number; interval: number; count?: number }, cmd: Command) => {
      if (o.interval < 1) usage(cmd, '--interval must be at least 1s');
      const client = adminClient(cmd);
      const format = globals(cmd).output;
      // Interrupted (Ctrl-C, a supervisor's TERM): stop between polls and exit 0.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      try {
        let last = o.after ?? (await client.json<{ events: AuditEvent[] }>('GET', '/v1/admin/audit?limit=1')).events[0]?.seq ?? 0;
        let printed = 0;
        while (!stop.signal.aborted) {
          for (const e of await eventsAfter(client, last, o)) {
            last = e.seq;
            if (format === 'json') process.stdout.write(`${JSON.stringify(e)}\n`);
            else process.stdout.write(`${table([e], EVENT_COLUMNS).split('\n')[1]}\n`); // the row, without the header
            if (o.count !== undefined && ++printed >= o.count) return;
          }
          await pause(o.interval * 1000, stop.signal);
        }
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      }
    });

  filterOptions(audit.command('export').description('the events as JSON Lines in chain order, for a SIEM (always JSON Lines, whatever --output)'))
    .option('--after <seq>', 'events after this seq', positiveInt)
    .option('--before <seq>', 'events before this seq', positiveInt)
    .option('--out <file>', 'write to this file, complete or not at all (default: stdout)')
    .action(async (o: ExportOptions, cmd: Command) => {
      const q = queryOf(o, ['after', 'before', ...FILTERS]);
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
