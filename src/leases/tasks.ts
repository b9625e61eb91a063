import { DomainError, problemType } from '../core/errors';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { Freshness } from '../db/read-cache';
import { lockForRevocation } from './ordering';
import type { AuditIn } from '../audit';
import { revokeIds } from './revocations';
import { isUuid } from '../core/uuid';
import type { DomainMetrics } from '../telemetry/metrics';

/** A task: one user, one connector, and every token issued for the work. */
export interface Task {
  readonly id: string;
  readonly subject: string;
  readonly subjectIssuer: string;
  readonly connector: string;
  readonly subjectGroups: readonly string[];
  readonly subjectRisk: string | null;
  readonly createdAt: Date;
  readonly endedAt: Date | null;
}

export class TaskError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 403 | 404 | 409,
    code: 'task-not-found' | 'task-forbidden' | 'task-ended',
    message: string,
  ) {
    super(message);
    this.type = problemType(code);
  }
}


/** Tasks in the database. Ending one revokes all its tokens, chained ones included. */
export class TaskStore {
  /** What else ends with a task, in its transaction (its approvals). */
  readonly #onEnd: ((tx: Prisma.TransactionClient, taskId: string) => Promise<unknown>)[] = [];

  /** Registers something that ends with every task, in the transaction that ends it. */
  onEnd(hook: (tx: Prisma.TransactionClient, taskId: string) => Promise<unknown>): void {
    this.#onEnd.push(hook);
  }

  /** What learns of a task's end once it committed (the token vault revokes what it released to it). */
  readonly #ended: ((taskId: string) => void)[] = [];
  onEnded(listener: (taskId: string) => void): void {
    this.#ended.push(listener);
  }

  constructor(
    private readonly prisma: PrismaClient,
    /** `audit`: where task ends are recorded, in the transaction that ends the task. */
    private readonly deps: { clock: Clock; random: Random; freshness?: Freshness; audit: AuditIn; metrics?: Pick<DomainMetrics, 'revoked'> },
  ) {}

  async create(subject: string, subjectIssuer: string, connector: string, user: { id?: string; groups?: readonly string[]; risk?: string } = {}): Promise<Task> {
    return this.prisma.task.create({
      data: { id: user.id ?? this.deps.random.uuid(), subject, subjectIssuer, connector, subjectGroups: [...(user.groups ?? [])], subjectRisk: user.risk ?? null },
    });
  }

  async get(id: string): Promise<Task | undefined> {
    if (!isUuid(id)) return undefined;
    return (await this.prisma.task.findUnique({ where: { id } })) ?? undefined;
  }

  /**
   * Ends a task for the connector that owns it: under the revocation lock, marks it ended,
   * revokes its leases and records `task.ended`, in one transaction, so the revocation is
   * durable before anyone is told it happened, and no lease of the task commits after it
   * (writ_record_leases refuses leases of an ended task).
   */
  async end(id: string, connector: string, reason = 'task ended'): Promise<{ revoked: number }> {
    const task = await this.get(id);
    if (!task) throw new TaskError(404, 'task-not-found', `no task ${id.slice(0, 64)}`);
    if (task.connector !== connector) throw new TaskError(403, 'task-forbidden', 'only the connector that started a task may end it');
    const now = this.deps.clock.now();
    const result = await this.prisma.$transaction(async (tx) => {
      await lockForRevocation(tx);
      await tx.task.updateMany({ where: { id, endedAt: null }, data: { endedAt: now, endReason: reason } });
      const ids = (await tx.lease.findMany({ where: { taskId: id, revokedAt: null }, select: { id: true } })).map((l) => l.id);
      const revoked = await revokeIds(tx, ids, reason, now);
      for (const hook of this.#onEnd) await hook(tx, id);
      await this.deps.audit(tx, { type: 'task.ended', actor: connector, details: { taskId: id, revoked } });
      return { revoked };
    });
    this.deps.freshness?.touch(); // cached leases of this replica are dropped now, not when the announcement comes back
    this.deps.metrics?.revoked('task_end', result.revoked);
    for (const listener of this.#ended) listener(id);
    return result;
  }
}
