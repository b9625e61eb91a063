/**
 * Human approval for high-risk tool actions (issue 18, part 3). A permit annotated
 * `@approval("required")` grants a call only once an approver approved it: the decision that
 * meets such a permit opens (or finds) the request for that task, server, tool and action, and
 * answers "pending" with its id and URL instead of a grant. An approver — a user of the
 * configured group (or the permit's `@approvers`) at the configured identity provider, never the
 * requesting user unless the permit says `@self_approval("allowed")` — approves or denies it;
 * an approval holds for that task, tool and action only, for a bounded time. Expiry, denial,
 * the task's end and revocation all end it.
 *
 * The shape follows the AuthZEN Access Request and Approval Profile where it fits (a denial that
 * names the request; statuses pending, approved, denied, expired; re-evaluation once approved,
 * with `context.approval` {id, approved_at, approved_until}). Approvers are told out of band by
 * a signed webhook (`./webhooks`), as CIBA would notify an authentication device.
 *
 * Every change commits with its audit event and its webhook (the outbox) in one transaction.
 */
import type { AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import type { Random } from '../core/random';
import { isUuid } from '../core/uuid';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { ApprovalRequirement } from '../policy';

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired', 'revoked'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** The call that needs approval. */
export interface ApprovalSubjectMatter {
  readonly taskId: string;
  readonly subject: string;
  readonly subjectIssuer: string;
  readonly connector: string;
  readonly server: string;
  readonly tool: string;
  readonly action: string;
  readonly classification: string;
  readonly reason?: string;
}

/** One request for approval, as stored and as the API shows it: the call it is for, and where it stands. */
export interface Approval extends Omit<ApprovalSubjectMatter, 'reason'> {
  readonly id: string;
  /** The request's stated reason (the connector's), if it gave one. */
  readonly reason: string | null;
  /** The permits that asked for approval, and the approvers' groups they named (empty: the configured one). */
  readonly policies: readonly string[];
  readonly approvers: readonly string[];
  readonly selfApproval: boolean;
  /** `pending` past `expiresAt` reads as `expired`. */
  readonly status: ApprovalStatus;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  readonly decidedAt: Date | null;
  readonly decidedBy: string | null;
  readonly decidedByIssuer: string | null;
  readonly decisionReason: string | null;
  readonly approvedUntil: Date | null;
}

/** An approver, from a verified ID token of the approvers' identity provider. */
export interface Approver {
  readonly sub: string;
  readonly iss: string;
  readonly groups: readonly string[];
}

/** Where a decision stands for a call that needs approval. */
export type ApprovalState = { readonly state: 'approved'; readonly approval: Approval } | { readonly state: 'pending'; readonly approval: Approval } | { readonly state: 'denied'; readonly approval: Approval };

export class ApprovalError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    code: 'approval-not-found' | 'approval-forbidden' | 'approval-decided' | 'invalid-request',
    message: string,
  ) {
    super(message);
    this.type = problemType(code);
  }
}

export interface ApprovalSettings {
  /** The approvers' group when a permit names none (`WRIT_APPROVAL_GROUP`). */
  readonly group: string;
  /** The approvers' identity provider; any configured one when undefined. */
  readonly issuer?: string;
  /** Seconds a request waits for a decision. */
  readonly ttl: number;
  /** Seconds an approval holds at most. */
  readonly validity: number;
  /** The base of approval URLs (the issuer): `<base>/v1/approvals/<id>`. */
  readonly baseUrl: string;
}

export interface ApprovalStoreDeps {
  readonly audit: AuditIn;
  readonly clock: Clock;
  readonly random: Random;
  readonly settings: ApprovalSettings;
  /** Adds a webhook to the outbox in the caller's transaction; none configured: nothing. */
  readonly announce?: (tx: Prisma.TransactionClient, event: 'approval.requested' | 'approval.decided', approval: Approval) => Promise<void>;
}

type Row = Awaited<ReturnType<PrismaClient['approval']['findFirst']>> & object;

const OPEN = ['pending', 'approved'];

/** Approval requests in the lease database. */
export class ApprovalStore {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly deps: ApprovalStoreDeps,
  ) {}

  /** The URL approvers open for a request. */
  urlOf(id: string): string {
    return `${this.deps.settings.baseUrl.replace(/\/+$/, '')}/v1/approvals/${id}`;
  }

  /**
   * Where the call stands: approved (and still holding), pending (opened now if none was open),
   * or denied (a denial holds until the request would have expired, so a refused call is not
   * asked again at once). An approval that lapsed, or a request that expired, opens a new one.
   */
  async require(call: ApprovalSubjectMatter, requirement: ApprovalRequirement): Promise<ApprovalState> {
    const now = this.deps.clock.now();
    const open = await this.#latest(call);
    if (open) {
      const a = view(open, now);
      if (a.status === 'approved' && a.approvedUntil !== null && a.approvedUntil > now) return { state: 'approved', approval: a };
      if (a.status === 'pending') return { state: 'pending', approval: a };
      if (a.status === 'denied' && a.expiresAt > now) return { state: 'denied', approval: a };
    }
    return { state: 'pending', approval: await this.#open(call, requirement, now) };
  }

  async get(id: string): Promise<Approval | undefined> {
    if (!isUuid(id)) return undefined;
    const row = await this.prisma.approval.findUnique({ where: { id } });
    return row ? view(row, this.deps.clock.now()) : undefined;
  }

  /** Requests, newest first: by status (`pending` excludes the expired) and/or task. */
  async list(filter: { status?: ApprovalStatus; taskId?: string } = {}, take = 100): Promise<Approval[]> {
    const now = this.deps.clock.now();
    const where: Prisma.ApprovalWhereInput = {
      ...(filter.taskId !== undefined && { taskId: filter.taskId }),
      ...(filter.status === 'pending' && { status: 'pending', expiresAt: { gt: now } }),
      ...(filter.status === 'expired' && { OR: [{ status: 'expired' }, { status: 'pending', expiresAt: { lte: now } }] }),
      ...(filter.status !== undefined && filter.status !== 'pending' && filter.status !== 'expired' && { status: filter.status }),
    };
    return (await this.prisma.approval.findMany({ where, orderBy: { requestedAt: 'desc' }, take })).map((r) => view(r, now));
  }

  /** Whether `approver` may decide `approval`: in one of its groups (or the configured one), at the approvers' provider, and not the requester unless allowed. */
  mayDecide(approval: Approval, approver: Approver): string | undefined {
    const { issuer, group } = this.deps.settings;
    if (issuer !== undefined && approver.iss !== issuer) return 'approvers sign in at the approvers\' identity provider';
    const groups = approval.approvers.length > 0 ? approval.approvers : [group];
    if (!groups.some((g) => approver.groups.includes(g))) return `only members of ${groups.map((g) => JSON.stringify(g)).join(' or ')} decide this request`;
    if (!approval.selfApproval && approver.sub === approval.subject && approver.iss === approval.subjectIssuer) return 'the requesting user cannot approve their own request';
    return undefined;
  }

  /**
   * Approves or denies a pending request, audited with the approver's identity. An approval
   * holds for `validFor` seconds (at most the configured validity). Throws {@link ApprovalError}:
   * 404 unknown, 403 not an approver of it, 409 no longer pending.
   */
  async decide(id: string, approver: Approver, decision: 'approve' | 'deny', opts: { reason?: string; validFor?: number; operator?: boolean } = {}): Promise<Approval> {
    const approval = await this.get(id);
    if (!approval) throw new ApprovalError(404, 'approval-not-found', `no approval request ${id.slice(0, 64)}`);
    // An operator may deny any request (like revoking, it only takes access away); approving stays with the approvers policy names.
    const asOperator = opts.operator === true && decision === 'deny';
    const refusal = asOperator ? undefined : this.mayDecide(approval, approver);
    if (refusal !== undefined) throw new ApprovalError(403, 'approval-forbidden', refusal);
    if (approval.status !== 'pending') throw new ApprovalError(409, 'approval-decided', `the request is ${approval.status}, not pending`);
    const now = this.deps.clock.now();
    const validFor = Math.min(opts.validFor ?? this.deps.settings.validity, this.deps.settings.validity);
    const status: ApprovalStatus = decision === 'approve' ? 'approved' : 'denied';
    return this.prisma.$transaction(async (tx) => {
      const task = await tx.task.findUnique({ where: { id: approval.taskId }, select: { endedAt: true } });
      if (!task || task.endedAt) throw new ApprovalError(409, 'approval-decided', 'the task has ended');
      // Only a request still pending and unexpired changes: a concurrent decision, or expiry, wins.
      const changed = await tx.approval.updateMany({
        where: { id, status: 'pending', expiresAt: { gt: now } },
        data: { status, decidedAt: now, decidedBy: approver.sub, decidedByIssuer: approver.iss, decisionReason: opts.reason ?? null, ...(status === 'approved' && { approvedUntil: new Date(now.getTime() + validFor * 1000) }) },
      });
      if (changed.count !== 1) throw new ApprovalError(409, 'approval-decided', 'the request was decided or expired meanwhile');
      const decided = view((await tx.approval.findUnique({ where: { id } }))!, now);
      await this.deps.audit(tx, {
        type: 'approval.decided',
        subject: decided.subject,
        subjectIssuer: decided.subjectIssuer,
        actor: `user:${approver.iss}#${approver.sub}`,
        details: { approvalId: id, taskId: decided.taskId, tool: decided.tool, action: decided.action, server: decided.server, decision: status, approver: { sub: approver.sub, iss: approver.iss }, ...(asOperator && this.mayDecide(approval, approver) !== undefined && { as: 'operator' }), ...(opts.reason !== undefined && { reason: opts.reason }), ...(decided.approvedUntil && { approvedUntil: decided.approvedUntil.toISOString() }) },
      });
      await this.deps.announce?.(tx, 'approval.decided', decided);
      return decided;
    });
  }

  /** Ends the task's open requests and approvals (the task ended): in the caller's transaction. */
  async revokeForTask(tx: Prisma.TransactionClient, taskId: string): Promise<number> {
    const now = this.deps.clock.now();
    return (await tx.approval.updateMany({ where: { taskId, status: { in: OPEN } }, data: { status: 'revoked', decidedAt: now, decisionReason: 'the task ended' } })).count;
  }

  async #latest(call: ApprovalSubjectMatter): Promise<Row | null> {
    return this.prisma.approval.findFirst({ where: { taskId: call.taskId, server: call.server, tool: call.tool, action: call.action }, orderBy: { requestedAt: 'desc' } });
  }

  /** Opens a request (the open one another replica made meanwhile, if it won). */
  async #open(call: ApprovalSubjectMatter, requirement: ApprovalRequirement, now: Date): Promise<Approval> {
    const id = this.deps.random.uuid();
    try {
      return await this.prisma.$transaction(async (tx) => {
        // A lapsed request or approval is closed first: one open per task, server, tool and action.
        await tx.approval.updateMany({ where: { taskId: call.taskId, server: call.server, tool: call.tool, action: call.action, status: 'pending', expiresAt: { lte: now } }, data: { status: 'expired' } });
        await tx.approval.updateMany({ where: { taskId: call.taskId, server: call.server, tool: call.tool, action: call.action, status: 'approved', approvedUntil: { lte: now } }, data: { status: 'expired' } });
        const row = await tx.approval.create({
          data: {
            id,
            taskId: call.taskId,
            subject: call.subject,
            subjectIssuer: call.subjectIssuer,
            connector: call.connector,
            server: call.server,
            tool: call.tool,
            action: call.action,
            classification: call.classification,
            reason: call.reason ?? null,
            policies: [...requirement.policies],
            approvers: [...requirement.approvers],
            selfApproval: requirement.selfApproval,
            status: 'pending',
            requestedAt: now,
            expiresAt: new Date(now.getTime() + this.deps.settings.ttl * 1000),
          },
        });
        const approval = view(row, now);
        await this.deps.audit(tx, {
          type: 'approval.requested',
          subject: call.subject,
          subjectIssuer: call.subjectIssuer,
          actor: call.connector,
          details: { approvalId: id, taskId: call.taskId, server: call.server, tool: call.tool, action: call.action, classification: call.classification, policies: requirement.policies, expiresAt: approval.expiresAt.toISOString(), ...(call.reason !== undefined && { reason: call.reason }) },
        });
        await this.deps.announce?.(tx, 'approval.requested', approval);
        return approval;
      });
    } catch (err) {
      // The partial unique index: another decision opened it first. Answer with that one.
      const open = await this.#latest(call);
      if (open && OPEN.includes(open.status)) return view(open, now);
      throw err;
    }
  }
}

/** A row as the domain shows it: a pending request past its expiry is expired, an approval past its time too. */
function view(r: Row, now: Date): Approval {
  let status = r.status as ApprovalStatus;
  if (status === 'pending' && r.expiresAt <= now) status = 'expired';
  if (status === 'approved' && r.approvedUntil !== null && r.approvedUntil <= now) status = 'expired';
  return {
    id: r.id,
    taskId: r.taskId,
    subject: r.subject,
    subjectIssuer: r.subjectIssuer,
    connector: r.connector,
    server: r.server,
    tool: r.tool,
    action: r.action,
    classification: r.classification,
    reason: r.reason,
    policies: r.policies,
    approvers: r.approvers,
    selfApproval: r.selfApproval,
    status,
    requestedAt: r.requestedAt,
    expiresAt: r.expiresAt,
    decidedAt: r.decidedAt,
    decidedBy: r.decidedBy,
    decidedByIssuer: r.decidedByIssuer,
    decisionReason: r.decisionReason,
    approvedUntil: r.approvedUntil,
  };
}

/** The API's view of a request (snake_case, as every Writ resource). */
export function approvalJson(a: Approval, url: string): Record<string, unknown> {
  return {
    id: a.id,
    status: a.status,
    task_id: a.taskId,
    user: { sub: a.subject, iss: a.subjectIssuer },
    connector: a.connector,
    server: a.server,
    tool: a.tool,
    action: a.action,
    classification: a.classification,
    ...(a.reason !== null && { reason: a.reason }),
    policies: a.policies,
    requested_at: a.requestedAt.toISOString(),
    expires_at: a.expiresAt.toISOString(),
    ...(a.decidedAt && { decided_at: a.decidedAt.toISOString() }),
    ...(a.decidedBy !== null && { decided_by: { sub: a.decidedBy, iss: a.decidedByIssuer } }),
    ...(a.decisionReason !== null && { decision_reason: a.decisionReason }),
    ...(a.approvedUntil && { approved_until: a.approvedUntil.toISOString() }),
    url,
  };
}

export { WebhookOutbox, WebhookDispatcher, signWebhook, type WebhookSettings } from './webhooks';
