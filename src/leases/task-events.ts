/**
 * Task history: what a task did before, so that policy can decide on it ("no egress after a
 * restricted read") at the next token exchange and at the next per-call decision, across MCP
 * servers and chain hops (issue 18).
 *
 * A call enters the history two ways, into one row per (task, server, call id):
 * - the per-call decision that permitted it (`permitted`), in the transaction of its audit row,
 *   before the PEP lets the call run: a decision made after that commit sees the call, so a
 *   taint cannot be outrun (the database orders it, not timing);
 * - the resource server's report of what ran and how it ended (`ok`, `error`, `unknown`),
 *   batched by `@writ/mcp`, which turns a `permitted` row into its outcome or adds the call.
 * Every recorded call counts, whatever its outcome: a call that failed may still have read.
 */
import type { AuditEventInput, AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import type { Random } from '../core/random';
import { isUuid } from '../core/uuid';
import type { PrismaClient, Prisma } from '../db/generated/client';
import { GroupCommit } from '../db/group-commit';
import { CLASSIFICATIONS, classificationLevel, isClassification, type Classification, type ToolAction } from '../policy/schema';
import type { PolicyTaskHistory } from '../policy/engine';

/** How a call ended, as its server reported it; `permitted` until then. */
export type TaskEventOutcome = 'permitted' | 'ok' | 'error' | 'unknown';
export const REPORTED_OUTCOMES = ['ok', 'error', 'unknown'] as const;

/** One call of a task, as recorded. */
export interface TaskEvent {
  readonly taskId: string;
  /** The resource (MCP server) URI the tool belongs to. */
  readonly server: string;
  /** The SPIFFE ID that reported or asked about it (the server, or the connector as PEP). */
  readonly reporter: string;
  readonly callId: string;
  readonly tool: string;
  readonly actions: readonly ToolAction[];
  /** The registry's classification, or a higher one the report declared. */
  readonly classification: Classification;
  /** Whether the tool sends data out of the organisation (the registry's `egress` flag). */
  readonly egress: boolean;
  /** What the call touched, as the server names it (a record, a repository), if it said. */
  readonly resource?: string;
  readonly outcome: TaskEventOutcome;
  readonly occurredAt: Date;
}

/** The call that set the highest classification read: named in a refusal's audit row. */
export interface TaskEventRef {
  readonly server: string;
  readonly tool: string;
  readonly callId: string;
  readonly at: string;
}

/** What policy sees of a task's history, as `context.task` (the Cedar schema's `TaskHistory`), and the call that read the most. */
export interface TaskHistory extends PolicyTaskHistory {
  /** The earliest call that read at `maxClassificationRead` (named in a refusal's audit row). */
  readonly maxReadBy?: TaskEventRef;
}

/** The history of a task that has done nothing yet (a new task). */
export const EMPTY_TASK_HISTORY: TaskHistory = Object.freeze({ calls: 0, toolsCalled: [], servers: [], resources: [], maxClassificationRead: -1, maxClassificationWritten: -1, egressCalls: 0 });

/** Which actions count as reading and as writing for the levels. */
const READS: readonly ToolAction[] = ['read'];
const WRITES: readonly ToolAction[] = ['write', 'delete'];

/** Summarises events (any order) into what policy sees. */
export function summarize(events: readonly Pick<TaskEvent, 'server' | 'callId' | 'tool' | 'actions' | 'classification' | 'egress' | 'resource' | 'occurredAt'>[]): TaskHistory {
  if (events.length === 0) return EMPTY_TASK_HISTORY;
  const tools = new Set<string>();
  const servers = new Set<string>();
  const resources = new Set<string>();
  let read = -1;
  let written = -1;
  let egress = 0;
  let by: (typeof events)[number] | undefined;
  for (const e of events) {
    tools.add(e.tool);
    servers.add(e.server);
    if (e.resource !== undefined) resources.add(e.resource);
    if (e.egress) egress++;
    const level = classificationLevel(e.classification);
    if (e.actions.some((a) => READS.includes(a))) {
      if (level > read || (level === read && by !== undefined && e.occurredAt < by.occurredAt)) by = e;
      read = Math.max(read, level);
    }
    if (e.actions.some((a) => WRITES.includes(a))) written = Math.max(written, level);
  }
  return {
    calls: events.length,
    toolsCalled: [...tools].sort(),
    servers: [...servers].sort(),
    resources: [...resources].sort(),
    maxClassificationRead: read,
    maxClassificationWritten: written,
    egressCalls: egress,
    ...(by && { maxReadBy: { server: by.server, tool: by.tool, callId: by.callId, at: by.occurredAt.toISOString() } }),
  };
}

/** What a decision on a task's history is audited with: its size, the highest level read, and the call that read it. */
export function historyForAudit(h: TaskHistory): Record<string, unknown> {
  return { calls: h.calls, maxClassificationRead: h.maxClassificationRead, egressCalls: h.egressCalls, ...(h.maxReadBy && { maxReadBy: h.maxReadBy }) };
}

/** A report refused as a whole (400), naming the field that is wrong. */
export class TaskEventError extends DomainError {
  readonly type = problemType('invalid-task-event');
  readonly status = 400;
}

/** A tool as the registry has it, for recording its calls. */
export interface RegisteredTool {
  readonly name: string;
  readonly actions: readonly ToolAction[];
  readonly classification: Classification;
  readonly egress?: boolean;
}

/** One call as a resource server reports it (`POST /v1/task-events`). */
export interface TaskCallReport {
  readonly taskId: string;
  readonly callId: string;
  readonly tool: string;
  /** The actions the call performed; the tool's registered actions when not given (the widest reading). */
  readonly actions?: readonly ToolAction[];
  /** A classification the call declared above the registry's (the higher one counts). */
  readonly classification?: Classification;
  readonly resource?: string;
  readonly outcome: (typeof REPORTED_OUTCOMES)[number];
  readonly occurredAt: Date;
}

export interface TaskEventStoreDeps {
  readonly audit: AuditIn;
  /** Appends several events in the caller's transaction, in order (AuditLog.appendManyIn after stamping); else one by one with `audit`. */
  readonly auditMany?: (tx: Prisma.TransactionClient, events: readonly AuditEventInput[]) => Promise<unknown>;
  readonly clock: Clock;
  readonly random: Random;
}

/** One row merges what is known of a call: the widest actions, the highest classification, the reported outcome. */
const UPSERT = `
INSERT INTO task_event (id, task_id, server, reporter, call_id, tool, actions, classification, egress, resource_ref, outcome, occurred_at)
SELECT e.id::uuid, e.task_id::uuid, e.server, e.reporter, e.call_id, e.tool, e.actions, e.classification, e.egress, e.resource_ref, e.outcome, e.occurred_at::timestamptz
FROM jsonb_to_recordset($1::jsonb) AS e(id text, task_id text, server text, reporter text, call_id text, tool text, actions text[], classification text, egress boolean, resource_ref text, outcome text, occurred_at text)
ON CONFLICT (task_id, server, call_id) DO UPDATE SET
  actions = ARRAY(SELECT DISTINCT a FROM unnest(task_event.actions || EXCLUDED.actions) AS a ORDER BY a),
  classification = CASE WHEN array_position($2::text[], EXCLUDED.classification) > array_position($2::text[], task_event.classification) THEN EXCLUDED.classification ELSE task_event.classification END,
  egress = task_event.egress OR EXCLUDED.egress,
  resource_ref = COALESCE(task_event.resource_ref, EXCLUDED.resource_ref),
  outcome = CASE WHEN EXCLUDED.outcome = 'permitted' THEN task_event.outcome ELSE EXCLUDED.outcome END`;

type Row = Omit<TaskEvent, 'resource'> & { resource?: string | undefined };

/** Task events in the lease database. */
export class TaskEventStore {
  /** Permitted calls of concurrent decisions, with their audit events, share one transaction. */
  readonly #permits: GroupCommit<{ row: Row; audit: AuditEventInput }>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly deps: TaskEventStoreDeps,
  ) {
    this.#permits = new GroupCommit<{ row: Row; audit: AuditEventInput }>(async (items) => {
      await this.prisma.$transaction(async (tx) => {
        await this.#upsert(tx, items.map((i) => i.row));
        if (this.deps.auditMany) await this.deps.auditMany(tx, items.map((i) => i.audit));
        else for (const i of items) await this.deps.audit(tx, i.audit);
      });
      return items.map((): void => undefined);
    });
  }

  /** The history policy sees for `taskId` (empty for a task with no calls, or none at all). */
  async history(taskId: string): Promise<TaskHistory> {
    if (!isUuid(taskId)) return EMPTY_TASK_HISTORY;
    const rows = await this.prisma.taskEvent.findMany({
      where: { taskId },
      select: { server: true, callId: true, tool: true, actions: true, classification: true, egress: true, resourceRef: true, occurredAt: true },
    });
    return summarize(
      rows.map((r) => ({ ...r, actions: r.actions as ToolAction[], classification: classificationOf(r.classification), ...(r.resourceRef !== null ? { resource: r.resourceRef } : { resource: undefined }) })),
    );
  }

  /** A task's calls, oldest first (for the admin API and tests). */
  async list(taskId: string, take = 1000): Promise<TaskEvent[]> {
    if (!isUuid(taskId)) return [];
    const rows = await this.prisma.taskEvent.findMany({ where: { taskId }, orderBy: [{ occurredAt: 'asc' }, { callId: 'asc' }], take });
    return rows.map((r) => ({
      taskId: r.taskId,
      server: r.server,
      reporter: r.reporter,
      callId: r.callId,
      tool: r.tool,
      actions: r.actions as ToolAction[],
      classification: classificationOf(r.classification),
      egress: r.egress,
      ...(r.resourceRef !== null && { resource: r.resourceRef }),
      outcome: r.outcome as TaskEventOutcome,
      occurredAt: r.occurredAt,
    }));
  }

  /**
   * Records a call a per-call decision permitted, with the decision's audit event, in one
   * transaction: once this resolves, every later decision in the task sees the call.
   */
  async permitted(event: Omit<TaskEvent, 'outcome' | 'occurredAt'>, audit: AuditEventInput): Promise<void> {
    await this.#permits.submit({ row: { ...event, outcome: 'permitted', occurredAt: this.deps.clock.now() }, audit });
  }

  /**
   * Records what a resource server reports of its calls (`server`: the resource, `reporter`: its
   * SPIFFE ID), with one `task.calls_reported` audit event per task, in one transaction. Each
   * report must name a task that exists, and a tool of the resource with actions it registered.
   */
  async report(server: { uri: string; tools: readonly RegisteredTool[] }, reporter: string, reports: readonly TaskCallReport[]): Promise<{ recorded: number }> {
    const tasks = new Map<string, { subject: string; subjectIssuer: string }>();
    const rows: Row[] = [];
    for (const [i, r] of reports.entries()) {
      const at = `events[${i}]`;
      const tool = server.tools.find((t) => t.name === r.tool);
      if (!tool) throw new TaskEventError(`${at}.tool: ${r.tool.slice(0, 128)} is not a registered tool of ${server.uri.slice(0, 256)}`);
      const actions = r.actions ?? tool.actions;
      const unknown = actions.find((a) => !tool.actions.includes(a));
      if (unknown !== undefined) throw new TaskEventError(`${at}.actions: ${r.tool} is registered for ${tool.actions.join(', ')}, not ${unknown}`);
      if (!tasks.has(r.taskId)) {
        const task = isUuid(r.taskId) ? await this.prisma.task.findUnique({ where: { id: r.taskId }, select: { subject: true, subjectIssuer: true } }) : null;
        if (!task) throw new TaskEventError(`${at}.task_id: no such task`);
        tasks.set(r.taskId, task);
      }
      const declared = r.classification !== undefined && classificationLevel(r.classification) > classificationLevel(tool.classification) ? r.classification : tool.classification;
      rows.push({ taskId: r.taskId, server: server.uri, reporter, callId: r.callId, tool: tool.name, actions, classification: declared, egress: tool.egress === true, resource: r.resource, outcome: r.outcome, occurredAt: r.occurredAt });
    }
    if (rows.length === 0) return { recorded: 0 };
    await this.prisma.$transaction(async (tx) => {
      await this.#upsert(tx, rows);
      for (const [taskId, task] of tasks) {
        const calls = rows.filter((r) => r.taskId === taskId).map((r) => ({ callId: r.callId, tool: r.tool, outcome: r.outcome }));
        await this.deps.audit(tx, { type: 'task.calls_reported', subject: task.subject, subjectIssuer: task.subjectIssuer, actor: reporter, details: { taskId, server: server.uri, calls } });
      }
    });
    return { recorded: rows.length };
  }

  async #upsert(tx: Prisma.TransactionClient, rows: readonly Row[]): Promise<void> {
    const json = mergeCalls(rows).map((r) => ({
      id: this.deps.random.uuid(),
      task_id: r.taskId,
      server: r.server,
      reporter: r.reporter,
      call_id: r.callId,
      tool: r.tool,
      actions: [...new Set(r.actions)].sort(),
      classification: r.classification,
      egress: r.egress,
      resource_ref: r.resource ?? null,
      outcome: r.outcome,
      occurred_at: r.occurredAt.toISOString(),
    }));
    await tx.$executeRawUnsafe(UPSERT, JSON.stringify(json), [...CLASSIFICATIONS]);
  }
}

/** One row per call: PostgreSQL refuses to update a row twice in one INSERT … ON CONFLICT, so a batch's repeats are merged first, as the upsert would. */
function mergeCalls(rows: readonly Row[]): Row[] {
  const byCall = new Map<string, Row>();
  for (const r of rows) {
    const key = JSON.stringify([r.taskId, r.server, r.callId]);
    const seen = byCall.get(key);
    if (!seen) {
      byCall.set(key, r);
      continue;
    }
    byCall.set(key, {
      ...seen,
      actions: [...new Set([...seen.actions, ...r.actions])],
      classification: classificationLevel(r.classification) > classificationLevel(seen.classification) ? r.classification : seen.classification,
      egress: seen.egress || r.egress,
      resource: seen.resource ?? r.resource,
      outcome: r.outcome === 'permitted' ? seen.outcome : r.outcome,
    });
  }
  return [...byCall.values()];
}

function classificationOf(value: string): Classification {
  if (!isClassification(value)) throw new RangeError(`a task event has an unknown classification ${JSON.stringify(value)}`);
  return value;
}
