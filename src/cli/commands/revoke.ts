import { Option, type Command } from 'commander';
import { positiveInt, spiffeId, uuid } from '../args';
import { adminClient, globals, usage } from '../context';
import { fields, note, print, table } from '../output';

/** The handles an operator may hold; --user, --session and --email are within --issuer. */
interface HandleOptions {
  jti?: string;
  task?: string;
  issuer?: string;
  user?: string;
  session?: string;
  email?: string;
  connector?: string;
  audience?: string;
}

interface Lease {
  jti: string;
  kind: string;
  spiffe_id: string;
  subject: string | null;
  subject_issuer: string | null;
  sid: string | null;
  task_id: string | null;
  audience: string[];
  serial: string | null;
  issued_at: string;
  expires_at: string;
  revoked_at: string | null;
  revocation_reason: string | null;
}

interface BlastRadius {
  dry_run: true;
  leases: number;
  sample: { jti: string; kind: string; spiffe_id: string; subject: string | null; task_id: string | null; audience: string[]; expires_at: string }[];
  byUser: Record<string, number>;
  byConnector: Record<string, number>;
  byTask: Record<string, number>;
  byAudience: Record<string, number>;
}

function handleOptions(cmd: Command): Command {
  return cmd
    .option('--jti <id>', 'one token or SVID lease', uuid)
    .option('--task <id>', 'every token of a task', uuid)
    .option('--issuer <iss>', 'the identity provider of --user, --session or --email')
    .option('--user <subject>', 'a user (their subject at --issuer)')
    .option('--session <sid>', 'a user\'s session at --issuer')
    .option('--connector <spiffe-id>', 'a connector, or every connector under a path ending in /', spiffeId)
    .option('--audience <uri>', 'every token for a resource');
}

/** The revocation selector the options name (the admin API's shape); usage errors for anything else. */
function selectorOf(cmd: Command, o: HandleOptions): Record<string, unknown> {
  const named = (['jti', 'task', 'user', 'session', 'email', 'connector', 'audience'] as const).filter((k) => o[k] !== undefined);
  const withIssuer = o.user !== undefined || o.session !== undefined || o.email !== undefined;
  if (withIssuer && o.issuer === undefined) usage(cmd, '--user, --session and --email need --issuer');
  if (!withIssuer && o.issuer !== undefined) usage(cmd, '--issuer goes with --user, --session or --email');
  const userAndConnector = named.length === 2 && o.user !== undefined && o.connector !== undefined;
  if (named.length !== 1 && !userAndConnector) {
    usage(cmd, 'name one handle: --jti, --task, --issuer with --user, --session or --email, --connector, or --audience (or --user with --connector)');
  }
  if (userAndConnector) return { user: { issuer: o.issuer, subject: o.user }, connector: o.connector };
  if (o.jti !== undefined) return { jti: o.jti };
  if (o.task !== undefined) return { task_id: o.task };
  if (o.user !== undefined) return { user: { issuer: o.issuer, subject: o.user } };
  if (o.session !== undefined) return { session: { issuer: o.issuer, sid: o.session } };
  if (o.email !== undefined) return { email: { issuer: o.issuer, email: o.email } };
  if (o.connector !== undefined) return { connector: o.connector };
  return { audience: o.audience };
}

const counts = (title: string, byKey: Record<string, number>) => {
  const rows = Object.entries(byKey).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  return rows.length === 0 ? '' : `\n${table(rows, [[title, ([k]) => k], ['LEASES', ([, n]) => n]])}`;
};

const leaseStatus = (l: Lease) => (l.revoked_at ? 'revoked' : Date.parse(l.expires_at) <= Date.now() ? 'expired' : 'active');

export function registerRevoke(program: Command): void {
  handleOptions(
    program
      .command('revoke')
      .description('revoke every live lease a handle names, tokens exchanged from them included (or --dry-run: the blast radius)'),
  )
    .option('--email <email>', 'a user by email at --issuer')
    .option('--reason <text>', 'why (kept in the audit trail; required unless --dry-run)')
    .option('--dry-run', 'show what would be revoked, revoke nothing')
    .action(async (o: HandleOptions & { reason?: string; dryRun?: boolean }, cmd: Command) => {
      const selector = selectorOf(cmd, o);
      if (!o.dryRun && (o.reason === undefined || o.reason.trim() === '')) usage(cmd, '--reason is required (it goes into the audit trail)');
      const body = { ...selector, reason: o.reason ?? 'dry run', dry_run: o.dryRun === true };
      const client = adminClient(cmd);
      if (!o.dryRun) {
        const res = await client.json<{ revoked: number }>('POST', '/v1/admin/revocations', body);
        return print(globals(cmd).output, res, () => `revoked ${res.revoked} lease${res.revoked === 1 ? '' : 's'}\n`);
      }
      const blast = await client.json<BlastRadius>('POST', '/v1/admin/revocations', body);
      print(globals(cmd).output, blast, () =>
        [
          `dry run: would revoke ${blast.leases} lease${blast.leases === 1 ? '' : 's'}\n`,
          counts('USER', blast.byUser),
          counts('CONNECTOR', blast.byConnector),
          counts('TASK', blast.byTask),
          counts('AUDIENCE', blast.byAudience),
          blast.sample.length === 0 ? '' : `\n${table(blast.sample, [['JTI', (s) => s.jti], ['KIND', (s) => s.kind], ['SPIFFE ID', (s) => s.spiffe_id], ['SUBJECT', (s) => s.subject], ['TASK', (s) => s.task_id], ['EXPIRES', (s) => s.expires_at]])}`,
        ].join(''),
      );
    });

  handleOptions(program.command('leases').description('list leases (SVIDs and tokens), newest first'))
    .addOption(new Option('--status <status>', 'only leases in this state').choices(['active', 'expired', 'revoked']))
    .option('--limit <n>', 'at most this many (default 100, at most 1000)', positiveInt)
    .option('--before <jti>', 'the page after this lease (from the last page)', uuid)
    .action(async (o: HandleOptions & { status?: string; limit?: number; before?: string }, cmd: Command) => {
      if ((o.user !== undefined || o.session !== undefined) && o.issuer === undefined) usage(cmd, '--user and --session need --issuer');
      const q = new URLSearchParams();
      const add = (k: string, v: string | number | undefined) => v !== undefined && q.set(k, String(v));
      add('jti', o.jti);
      add('task_id', o.task);
      add('issuer', o.issuer);
      add('subject', o.user);
      add('sid', o.session);
      add('connector', o.connector);
      add('audience', o.audience);
      add('status', o.status);
      add('limit', o.limit);
      add('before', o.before);
      const page = await adminClient(cmd).json<{ leases: Lease[]; next_before?: string }>('GET', `/v1/admin/leases${q.size > 0 ? `?${q}` : ''}`);
      print(globals(cmd).output, page, () =>
        table(page.leases, [
          ['JTI', (l) => l.jti],
          ['KIND', (l) => l.kind],
          ['SPIFFE ID', (l) => l.spiffe_id],
          ['SUBJECT', (l) => l.subject],
          ['TASK', (l) => l.task_id],
          ['AUDIENCE', (l) => l.audience],
          ['EXPIRES', (l) => l.expires_at],
          ['STATUS', leaseStatus],
        ]),
      );
      if (page.next_before && globals(cmd).output === 'table') note(`more leases: --before ${page.next_before}`);
    });

  const connector = program.command('connector').description('the kill switch');
  connector
    .command('disable')
    .description('disable every entry of a connector and revoke all it holds (SVIDs and tokens) now')
    .argument('<spiffe-id>', 'the connector', spiffeId)
    .option('--reason <text>', 'why (kept in the audit trail)')
    .action(async (id: string, o: { reason?: string }, cmd: Command) => {
      const res = await adminClient(cmd).json<{ spiffe_id: string; entries_disabled: number; leases_revoked: number }>(
        'POST',
        `/v1/admin/connectors/${encodeURIComponent(id)}/disable`,
        o.reason === undefined ? {} : { reason: o.reason },
      );
      print(globals(cmd).output, res, () => fields([['spiffe_id', res.spiffe_id], ['entries_disabled', res.entries_disabled], ['leases_revoked', res.leases_revoked]]));
    });
  connector
    .command('enable')
    .description('enable the connector\'s entries again; it must attest anew (its revoked SVIDs stay revoked)')
    .argument('<spiffe-id>', 'the connector', spiffeId)
    .option('--reason <text>', 'why (kept in the audit trail)')
    .action(async (id: string, o: { reason?: string }, cmd: Command) => {
      const res = await adminClient(cmd).json<{ spiffe_id: string; entries_enabled: number }>(
        'POST',
        `/v1/admin/connectors/${encodeURIComponent(id)}/enable`,
        o.reason === undefined ? {} : { reason: o.reason },
      );
      print(globals(cmd).output, res, () => fields([['spiffe_id', res.spiffe_id], ['entries_enabled', res.entries_enabled]]));
    });
}
