/**
 * Writ as a policy decision point of the OpenID AuthZEN Authorization API 1.0: a decision per
 * call (an MCP `tools/call`, an API gateway's request), on the same Cedar policy set the token
 * exchange decides with, at that moment. The PEP names the user, the tool and the task; what
 * the user is (groups, risk), which connector acts, and whether the task still runs come from
 * Writ's own records, never from the PEP.
 */
import { z } from 'zod';
import type { ApprovalStore } from '../approvals';
import type { AuditEventInput, AuditLog } from '../audit';
import type { Random } from '../core/random';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import { isUuid } from '../core/uuid';
import { EMPTY_TASK_HISTORY, historyForAudit, type TaskEventStore, type TaskStore } from '../leases';
import type { PolicyDecision, PolicyStore } from '../policy';
import { TOOL_ACTIONS, type ToolAction } from '../policy/schema';
import type { Resource, ResourceStore } from '../resources';
import { parseSpiffeId } from '../spiffe/id';

const entity = z.strictObject({ type: z.string().min(1).max(256), id: z.string().min(1).max(2048), properties: z.record(z.string(), z.unknown()).optional() });
const action = z.strictObject({ name: z.string().min(1).max(256), properties: z.record(z.string(), z.unknown()).optional() });
const context = z.record(z.string(), z.unknown());

/** AuthZEN §6.1: subject, action and resource are required; context is optional. */
export const evaluationRequestSchema = z.strictObject({ subject: entity, action, resource: entity, context: context.optional() });
export type EvaluationRequest = z.output<typeof evaluationRequestSchema>;

export const EVALUATIONS_SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;

/** AuthZEN §7.1: defaults at the top, one request per entry (each member it sets replaces the default). */
export const evaluationsRequestSchema = z.strictObject({
  subject: entity.optional(),
  action: action.optional(),
  resource: entity.optional(),
  context: context.optional(),
  evaluations: z.array(z.strictObject({ subject: entity.optional(), action: action.optional(), resource: entity.optional(), context: context.optional() })).max(64).optional(),
  options: z.object({ evaluations_semantic: z.enum(EVALUATIONS_SEMANTICS).optional() }).loose().optional(),
});
export type EvaluationsRequest = z.output<typeof evaluationsRequestSchema>;

/** AuthZEN §6.2: the decision, and (Writ's) why. */
export interface EvaluationResponse {
  readonly decision: boolean;
  readonly context?: { readonly reason?: string; readonly policies?: readonly string[]; readonly approval?: ApprovalContext };
}

/**
 * The approval a decision depends on (AuthZEN Access Request and Approval Profile's shape where
 * it fits): pending or denied, with the URL approvers open; or approved, with its window.
 */
export interface ApprovalContext {
  readonly id: string;
  readonly status: 'pending' | 'approved' | 'denied';
  readonly url: string;
  readonly expires_at?: string;
  readonly approved_at?: string;
  readonly approved_until?: string;
}

/** A request the PDP cannot evaluate as asked (400), naming the member that is wrong. */
export class EvaluationError extends DomainError {
  readonly type = problemType('invalid-evaluation');
  readonly status = 400;
}

/** Who asks: the PEP's SPIFFE ID (from its SVID), as a registered resource (MCP server) or a connector. */
export interface PolicyEnforcementPoint {
  readonly spiffeId: string;
}

export interface AccessEvaluatorDeps {
  readonly policies: Pick<PolicyStore, 'engine'>;
  readonly resources: Pick<ResourceStore, 'get' | 'list'>;
  readonly tasks: Pick<TaskStore, 'get'>;
  /** The connector's enabled entries' owner (metadata.owner), or undefined when it has no enabled entry (kill switch). */
  readonly connectorOwner: (spiffeId: string) => Promise<string | undefined>;
  /** Whether the user (or the session) was revoked after `since` (the task's start). */
  readonly subjectRevoked?: (issuer: string, subject: string, since: Date) => Promise<boolean>;
  /** The user's latest reported risk level (Shared Signals), if any. */
  readonly userRisk?: (issuer: string, subject: string) => Promise<string | undefined>;
  readonly audit: Pick<AuditLog, 'append'>;
  /** The task's history (policy's `context.task`), and where a permitted call is recorded with its audit event. */
  readonly history?: Pick<TaskEventStore, 'history' | 'permitted'>;
  readonly clock: Clock;
  readonly random: Random;
  /** Whether the access token a PEP names (`context.jti`) is a live lease of the task: a revoked token's calls are denied. */
  readonly tokenOfTask?: (jti: string, taskId: string) => Promise<boolean>;
  /** Requests for human approval, for permits marked `@approval("required")`; without it such a permit grants nothing. */
  readonly approvals?: Pick<ApprovalStore, 'require' | 'urlOf'>;
}

/** A PEP's id for the call it asks about (`context.call_id`), which its later report of the call names too. */
const CALL_ID = /^[\x21-\x7e]{1,128}$/;

const deny = (reason: string, policies?: readonly string[]): EvaluationResponse => ({ decision: false, context: { reason, ...(policies && { policies }) } });

/**
 * Evaluates AuthZEN requests with Writ's mapping (documented in the README):
 * - `subject` {type "user" or "identity", id = the user's `sub`, properties.iss = their identity
 *   provider (optional: the task names it)};
 * - `action` {name = a tool action (read, write, execute, delete), or "tools/call" with
 *   properties.action, or the tool's one action};
 * - `resource` {type "tool", id = the tool's name, properties.server = the MCP server URI
 *   (a resource PEP may leave it out: its own)};
 * - `context.task_id` (required): the task whose user and connector act; `context.agent`, when
 *   given, must be that connector (the MCP binding's name for it).
 * Every evaluation is audited (`access.evaluated`) with the user, the connector and the PEP.
 */
export class AccessEvaluator {
  constructor(private readonly deps: AccessEvaluatorDeps) {}

  async evaluate(pep: PolicyEnforcementPoint, request: EvaluationRequest): Promise<EvaluationResponse> {
    const { subject, resource } = request;
    // "user" (AuthZEN §5.1's example), or "identity" (the MCP binding's default mapping of the token's sub).
    if (subject.type !== 'user' && subject.type !== 'identity') throw new EvaluationError('subject.type: Writ decides for users ("user" or "identity")');
    if (resource.type !== 'tool') throw new EvaluationError('resource.type: Writ decides on MCP tools ("tool")');
    // OpenID Connect Core §5.7: iss and sub name a user. A Writ access token carries only sub (the MCP
    // binding maps $token.sub); the task then says which identity provider's user it is.
    const named = subject.properties?.iss;
    if (named !== undefined && (typeof named !== 'string' || named === '')) throw new EvaluationError('subject.properties.iss: the user\'s identity provider, a string');
    const taskId = request.context?.task_id;
    if (typeof taskId !== 'string' || !isUuid(taskId)) throw new EvaluationError('context.task_id: the task (the task_id claim of the access token) is required');
    const callId = request.context?.call_id;
    if (callId !== undefined && (typeof callId !== 'string' || !CALL_ID.test(callId))) throw new EvaluationError('context.call_id: the PEP\'s id of the call, 1 to 128 visible ASCII characters');

    const server = await this.#server(pep, resource.properties?.server);
    const tool = server.tools.find((t) => t.name === resource.id);
    if (!tool) return this.#record(pep, request, deny('the tool is not registered for this server'), { server: server.uri });
    const wanted = this.#action(request.action, tool.actions);

    const task = await this.deps.tasks.get(taskId);
    if (!task || task.subject !== subject.id || (named !== undefined && task.subjectIssuer !== named)) return this.#record(pep, request, deny('no such task of this user'), { server: server.uri });
    const issuer = task.subjectIssuer;
    const agent = request.context?.agent;
    if (agent !== undefined && agent !== task.connector) return this.#record(pep, request, deny('context.agent is not the task\'s connector'), { server: server.uri, connector: task.connector }, issuer);
    // A resource PEP asks about its own tools; a connector PEP about its own tasks.
    if (pep.spiffeId !== server.spiffeId && pep.spiffeId !== task.connector) return this.#record(pep, request, deny('the caller is neither the server nor the task\'s connector'), { server: server.uri }, issuer);
    if (task.endedAt) return this.#record(pep, request, deny('the task has ended'), { server: server.uri, connector: task.connector }, issuer);
    // The MCP binding's PEP names the token it holds: a revoked one is denied, as introspection would.
    const jti = request.context?.jti;
    if (jti !== undefined && (typeof jti !== 'string' || !isUuid(jti))) throw new EvaluationError('context.jti: the access token\'s jti, a UUID');
    if (typeof jti === 'string' && !(await this.deps.tokenOfTask?.(jti, task.id) ?? true)) return this.#record(pep, request, deny('the access token was revoked or has expired'), { server: server.uri, connector: task.connector }, issuer);
    if (await this.deps.subjectRevoked?.(issuer, subject.id, task.createdAt)) return this.#record(pep, request, deny('the user or session was revoked'), { server: server.uri, connector: task.connector }, issuer);
    const owner = await this.deps.connectorOwner(task.connector);
    if (owner === undefined) return this.#record(pep, request, deny('the connector is disabled'), { server: server.uri, connector: task.connector }, issuer);

    const engine = await this.deps.policies.engine();
    const risk = (await this.deps.userRisk?.(issuer, subject.id)) ?? task.subjectRisk ?? 'unknown';
    // Read only when some policy reads it: a query per call saved otherwise (the permitted call is recorded either way).
    const history = this.deps.history && engine.readsTaskHistory ? await this.deps.history.history(task.id) : EMPTY_TASK_HISTORY;
    const decision: PolicyDecision = engine.decide({
      kind: 'action',
      action: wanted,
      user: { sub: subject.id, iss: issuer, groups: task.subjectGroups, risk },
      connector: { spiffeId: task.connector, owner, trustDomain: parseSpiffeId(task.connector).trustDomain },
      server: server.uri,
      tool: { name: tool.name, classification: tool.classification, egress: tool.egress === true },
      classification: tool.classification,
      chainDepth: 0,
      taskId: task.id,
      binding: request.context?.binding === 'dpop' ? 'dpop' : 'mtls',
      task: history,
    });
    let answer: EvaluationResponse = decision.allowed ? { decision: true } : deny(decision.errors.length > 0 ? 'the policy could not be evaluated' : 'the policy does not permit it', decision.policyIds);
    if (decision.allowed && decision.approval) {
      // A permit that needs a human: granted only while an approval for this task, tool and action holds.
      if (!this.deps.approvals) answer = deny('the policy requires an approval, and approvals are not set up', decision.policyIds);
      else {
        const reason = request.context?.reason;
        const { state, approval: a } = await this.deps.approvals.require(
          { taskId: task.id, subject: task.subject, subjectIssuer: issuer, connector: task.connector, server: server.uri, tool: tool.name, action: wanted, classification: tool.classification, ...(typeof reason === 'string' && reason !== '' && { reason: reason.slice(0, 512) }) },
          decision.approval,
        );
        const url = this.deps.approvals.urlOf(a.id);
        if (state === 'approved') answer = { decision: true, context: { approval: { id: a.id, status: 'approved', url, approved_at: a.decidedAt!.toISOString(), approved_until: a.approvedUntil!.toISOString() } } };
        else if (state === 'pending') answer = { decision: false, context: { reason: 'approval_required', policies: decision.policyIds, approval: { id: a.id, status: 'pending', url, expires_at: a.expiresAt.toISOString() } } };
        else answer = { decision: false, context: { reason: 'an approver denied it', policies: decision.policyIds, approval: { id: a.id, status: 'denied', url } } };
      }
    }
    const details = { server: server.uri, connector: task.connector, policyVersion: engine.version, policies: decision.policyIds, action: wanted, ...(history.calls > 0 && { taskHistory: historyForAudit(history) }) };
    if (!answer.decision || !this.deps.history) return this.#record(pep, request, answer, details, issuer);
    // The permitted call enters the task's history with its audit row, before the PEP lets it run:
    // every decision after this commit, on any server, sees it.
    const id = callId ?? `pdp:${this.deps.random.uuid()}`;
    await this.deps.history.permitted(
      { taskId: task.id, server: server.uri, reporter: pep.spiffeId, callId: id, tool: tool.name, actions: [wanted], classification: tool.classification, egress: tool.egress === true },
      this.#event(pep, request, answer, { ...details, callId: id }, issuer),
    );
    return answer;
  }

  /**
   * AuthZEN §7: each entry with the defaults filled in, in order. `deny_on_first_deny` (an
   * error counts as a deny) and `permit_on_first_permit` stop at the first such decision (the
   * response then holds the evaluations made, that one last); `execute_all` (the default)
   * evaluates all.
   */
  async evaluateMany(pep: PolicyEnforcementPoint, request: EvaluationsRequest): Promise<{ evaluations: EvaluationResponse[] }> {
    const entries = request.evaluations ?? [];
    const base = { subject: request.subject, action: request.action, resource: request.resource, context: request.context };
    // §7.1: without evaluations, the request is one evaluation of the defaults.
    const items = entries.length === 0 ? [base] : entries.map((e) => ({ ...base, ...Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) }));
    const semantic = request.options?.evaluations_semantic ?? 'execute_all';
    const out: EvaluationResponse[] = [];
    for (const [i, item] of items.entries()) {
      // §7.2.1: an entry that cannot be evaluated is a denial carrying the error, not a failure of the batch.
      const parsed = evaluationRequestSchema.safeParse(item);
      let r: EvaluationResponse;
      if (!parsed.success) r = deny(`evaluations[${i}]: ${parsed.error.issues.map((x) => `${x.path.join('.') || '(entry)'}: ${x.message}`).join('; ')}`);
      else {
        r = await this.evaluate(pep, parsed.data).catch((err: unknown) => {
          if (err instanceof EvaluationError) return deny(err.message);
          throw err; // the database or the policy engine cannot answer: the whole request fails (503), closed
        });
      }
      out.push(r);
      if ((semantic === 'deny_on_first_deny' && !r.decision) || (semantic === 'permit_on_first_permit' && r.decision)) break;
    }
    return { evaluations: out };
  }

  async #server(pep: PolicyEnforcementPoint, named: unknown): Promise<Resource> {
    if (named !== undefined && (typeof named !== 'string' || named === '')) throw new EvaluationError('resource.properties.server: the MCP server\'s URI, a string');
    if (typeof named === 'string') {
      const r = await this.deps.resources.get(named);
      if (!r) throw new EvaluationError(`resource.properties.server: ${named.slice(0, 256)} is not a registered resource`);
      return r;
    }
    // A resource PEP asks about its own tools.
    const owned = (await this.deps.resources.list()).filter((r) => r.spiffeId === pep.spiffeId);
    if (owned.length > 1) throw new EvaluationError('resource.properties.server: several resources are registered for this SVID; name the one asked about');
    const own = owned[0];
    if (!own) throw new EvaluationError('resource.properties.server: the MCP server\'s URI (the resource the access token was issued for) is required of a caller that is not a registered resource');
    return own;
  }

  #action(requested: EvaluationRequest['action'], registered: readonly ToolAction[]): ToolAction {
    const isAction = (v: unknown): v is ToolAction => typeof v === 'string' && (TOOL_ACTIONS as readonly string[]).includes(v);
    let wanted: unknown = requested.name;
    if (requested.name === 'tools/call') {
      wanted = requested.properties?.action ?? (registered.length === 1 ? registered[0] : undefined);
      if (wanted === undefined) throw new EvaluationError(`action.properties.action: the tool has several actions (${registered.join(', ')}); name the one this call performs`);
    }
    if (!isAction(wanted)) throw new EvaluationError(`action: ${String(wanted).slice(0, 64)} is not one of ${TOOL_ACTIONS.join(', ')} (or tools/call)`);
    if (!registered.includes(wanted)) throw new EvaluationError(`action: the tool is registered for ${registered.join(', ')}, not ${wanted}`);
    return wanted;
  }

  /** Audits the evaluation; `issuer` is the user's identity provider once the task named it. */
  async #record(pep: PolicyEnforcementPoint, request: EvaluationRequest, answer: EvaluationResponse, details: Record<string, unknown>, issuer?: string): Promise<EvaluationResponse> {
    await this.deps.audit.append(this.#event(pep, request, answer, details, issuer));
    return answer;
  }

  #event(pep: PolicyEnforcementPoint, request: EvaluationRequest, answer: EvaluationResponse, details: Record<string, unknown>, issuer?: string): AuditEventInput {
    const subjectIssuer = issuer ?? (typeof request.subject.properties?.iss === 'string' ? request.subject.properties.iss : undefined);
    return {
      type: 'access.evaluated',
      subject: request.subject.id,
      ...(subjectIssuer !== undefined && { subjectIssuer }),
      actor: pep.spiffeId,
      details: { taskId: request.context?.task_id, tool: request.resource.id, action: request.action.name, decision: answer.decision, ...(answer.context?.reason !== undefined && { reason: answer.context.reason }), ...(answer.context?.approval && { approvalId: answer.context.approval.id }), ...details },
    };
  }
}
