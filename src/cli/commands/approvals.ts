import type { Command } from 'commander';
import { seconds, uuid } from '../args';
import { BrokerClient } from '../client';
import { adminClient, globals, readStdin, readText, usage } from '../context';
import { currentSession, sessionFile } from '../session';
import { fields, print, table } from '../output';

/** An approval request as the API shows it. */
interface Approval {
  id: string;
  status: string;
  task_id: string;
  user: { sub: string; iss: string };
  connector: string;
  server: string;
  tool: string;
  action: string;
  classification: string;
  reason?: string;
  requested_at: string;
  expires_at: string;
  decided_by?: { sub: string; iss: string };
  decision_reason?: string;
  approved_until?: string;
  url: string;
}

const STATUSES = ['pending', 'approved', 'denied', 'expired', 'revoked'];

/** The approver's ID token (`--id-token FILE`, `-` for stdin) as the bearer credential; without it, the admin credential (read-only commands). */
async function approverClient(cmd: Command, idToken: string | undefined, readOnly: boolean): Promise<BrokerClient> {
  if (idToken === undefined) {
    const g = globals(cmd);
    const session = currentSession(sessionFile(), g.server);
    if (session) return new BrokerClient({ server: g.server, bearer: session.token, ...(g.ca !== undefined && { ca: readText(g.ca, 'CA bundle') }) });
    if (!readOnly) usage(cmd, 'approving and denying need you signed in: writ login, or --id-token FILE (or - for stdin)');
    return adminClient(cmd);
  }
  const token = (idToken === '-' ? await readStdin() : readText(idToken, 'ID token file')).trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) usage(cmd, `${idToken === '-' ? 'standard input' : idToken} does not hold a JWT (an ID token of the approvers' identity provider)`);
  const g = globals(cmd);
  return new BrokerClient({ server: g.server, bearer: token, ...(g.ca !== undefined && { ca: readText(g.ca, 'CA bundle') }) });
}

const show = (a: Approval) =>
  fields([
    ['id', a.id],
    ['status', a.status],
    ['user', `${a.user.sub} (${a.user.iss})`],
    ['connector', a.connector],
    ['asks', `${a.tool} ${a.action} (${a.classification}) on ${a.server}`],
    ['reason', a.reason ?? '-'],
    ['task_id', a.task_id],
    ['expires_at', a.expires_at],
    ...(a.decided_by ? ([['decided_by', `${a.decided_by.sub} (${a.decided_by.iss})`]] as [string, unknown][]) : []),
    ...(a.approved_until ? ([['approved_until', a.approved_until]] as [string, unknown][]) : []),
    ['url', a.url],
  ]);

/** `writ approvals`: human approval of tool actions a permit marks @approval("required") (what /v1/approvals does with curl). */
export function registerApprovals(program: Command): void {
  const approvals = program.command('approvals').description('approval requests for high-risk tool actions: list them, approve or deny one (as an approver, with your ID token)');

  approvals
    .command('list')
    .description('approval requests, newest first: those you may decide (with --id-token), or all (admin)')
    .option('--id-token <file>', 'your ID token from the approvers\' identity provider (- reads stdin)')
    .option('--status <status>', `only requests in this state (${STATUSES.join(', ')})`, 'pending')
    .option('--task <id>', 'only requests of this task', uuid)
    .action(async (o: { idToken?: string; status: string; task?: string }, cmd: Command) => {
      if (!STATUSES.includes(o.status)) usage(cmd, `--status is one of ${STATUSES.join(', ')}`);
      const q = new URLSearchParams({ status: o.status, ...(o.task !== undefined && { task_id: o.task }) });
      const { approvals: found } = await (await approverClient(cmd, o.idToken, true)).json<{ approvals: Approval[] }>('GET', `/v1/approvals?${q}`);
      print(globals(cmd).output, { approvals: found }, () =>
        found.length === 0
          ? `no ${o.status} approval requests\n`
          : table(found, [
              ['ID', (a) => a.id],
              ['STATUS', (a) => a.status],
              ['USER', (a) => a.user.sub],
              ['TOOL', (a) => `${a.tool} ${a.action}`],
              ['CLASS', (a) => a.classification],
              ['EXPIRES', (a) => a.expires_at],
            ]),
      );
    });

  approvals
    .command('show')
    .description('one approval request')
    .argument('<id>', 'the approval id', uuid)
    .option('--id-token <file>', 'your ID token from the approvers\' identity provider (- reads stdin)')
    .action(async (id: string, o: { idToken?: string }, cmd: Command) => {
      const a = await (await approverClient(cmd, o.idToken, true)).json<Approval>('GET', `/v1/approvals/${id}`);
      print(globals(cmd).output, a, () => show(a));
    });

  for (const decision of ['approve', 'deny'] as const) {
    const command = approvals
      .command(decision)
      .description(decision === 'approve' ? 'approve a pending request: the call may run in that task, for a bounded time' : 'deny a pending request: the call is refused')
      .argument('<id>', 'the approval id', uuid)
      .option('--id-token <file>', 'your sign-in token, if not signed in with writ login (- reads stdin)')
      .option('--reason <text>', 'why (recorded in the audit trail)');
    if (decision === 'approve') command.option('--valid-for <duration>', 'how long the approval holds (at most WRIT_APPROVAL_VALIDITY), e.g. 5m', seconds);
    command.action(async (id: string, o: { idToken?: string; reason?: string; validFor?: number }, cmd: Command) => {
      const body = { ...(o.reason !== undefined && { reason: o.reason }), ...(o.validFor !== undefined && { valid_for: o.validFor }) };
      const a = await (await approverClient(cmd, o.idToken, false)).json<Approval>('POST', `/v1/approvals/${id}/${decision}`, body);
      print(globals(cmd).output, a, () => show(a));
    });
  }
}
