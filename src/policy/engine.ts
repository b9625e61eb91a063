/**
 * Request-time authorization with Cedar: default deny, fail closed, one versioned policy set
 * per engine, parsed once.
 *
 * ```ts
 * const engine = PolicyEngine.create(policyText, '7'); // throws PolicyInvalid (400) with Cedar's errors
 * const d = engine.decide({ kind: 'action', action: 'read', user, connector, server, tool,
 *                           classification: 'internal', chainDepth: 0, taskId });
 * // → { allowed: true, policyIds: ['eng-read-low'], errors: [], version: '7' }
 * ```
 *
 * Policy ids. Cedar names the policies of a text `policy0`, `policy1`, … in the order they
 * appear, and ignores `@id` annotations. Writ splits the text into its policies
 * (`policySetTextToParts`), reads each one's annotations (`policyToJson`) and hands Cedar the
 * set as a map from id to policy text, where the id is the policy's `@id("…")` if it has one
 * and Cedar's own `policy<N>` otherwise. Cedar then reports those ids as determining policies
 * and in its validation errors, so the audit trail carries the operator's names. An `@id`
 * must be a non-empty string of at most 128 characters without control characters, and ids
 * must be unique (an `@id("policy3")` that collides with an unannotated fourth policy is a
 * duplicate). Templates (`?principal`, `?resource`) are refused: nothing links them.
 *
 * Fail closed. `decide` never throws. An unusable request (Cedar's request or entity
 * validation against the schema, a wrong type, an unknown classification or action), an
 * evaluation error in any policy — even a `forbid` Cedar itself would skip while a `permit`
 * holds — or any exception gives `allowed: false` with the reason in `errors`.
 *
 * Cost. Schema and policies are parsed once (`preparseSchema`, `preparsePolicySet`, cached in
 * the WebAssembly module, keyed by a digest of their content, so the same set is parsed once
 * per process however many engines hold it) and each decision is `statefulIsAuthorized`
 * with request validation: thousands of decisions per second per core, against hundreds when
 * parsing on every call. Cedar offers no way to drop a preparsed set: each distinct policy
 * set activated stays in memory for the life of the process. Each engine also remembers its
 * clean decisions, keyed by every input Cedar sees (the task id only when a policy mentions
 * `task_id`), so a repeated question costs a map lookup; a new version is a new engine.
 */
import { setFlagsFromString } from 'node:v8';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { canonicalJson } from '../core/canonical-json';
import { sha256 } from '../core/hash';
import { PolicyInvalid } from './errors';
import { policyShapeProblem } from './shape';
import {
  DELEGATE_ACTION,
  USE_GRANT_ACTION,
  ENTITY_TYPES,
  WRIT_SCHEMA,
  classificationLevel,
  isClassification,
  isToolAction,
  toolEntityId,
  type Classification,
  type ToolAction,
} from './schema';

// Node 20's V8 (11.3) aborts the process ("Fatal error ... unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when optimized code that inlined a JS→Wasm call
// into Cedar is lazily deoptimized; it happened here under load within minutes (bench/run.mjs).
// Not inlining JS→Wasm calls avoids it. Set when this module loads, before Cedar's glue runs.
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

/** The end user, from the verified subject token. Becomes `Writ::User::"<sub>"`. */
export interface PolicyUser {
  readonly sub: string;
  readonly iss: string;
  readonly groups: readonly string[];
  readonly risk: string;
}

/** An attested connector. Becomes `Writ::Connector::"<SPIFFE ID>"`. */
export interface PolicyConnector {
  readonly spiffeId: string;
  readonly owner: string;
  readonly trustDomain: string;
}

/** A registered tool, with its classification in the registry. Becomes `Writ::Tool::"<server>#<name>"`. */
export interface PolicyTool {
  readonly name: string;
  readonly classification: Classification;
  /** The registry's egress flag (`resource.egress`); false when not set. */
  readonly egress?: boolean;
}

/**
 * What the task did before (`context.task`, the schema's `TaskHistory`): levels are
 * classification levels, -1 for nothing read (written). A new task's is all empty.
 */
export interface PolicyTaskHistory {
  readonly calls: number;
  readonly toolsCalled: readonly string[];
  readonly servers: readonly string[];
  readonly resources: readonly string[];
  readonly maxClassificationRead: number;
  readonly maxClassificationWritten: number;
  readonly egressCalls: number;
}

const NO_HISTORY: PolicyTaskHistory = { calls: 0, toolsCalled: [], servers: [], resources: [], maxClassificationRead: -1, maxClassificationWritten: -1, egressCalls: 0 };

/** May `user`, through `connector`, perform `action` on `tool` of `server`? */
export interface ActionRequest {
  readonly kind: 'action';
  readonly action: ToolAction;
  readonly user: PolicyUser;
  readonly connector: PolicyConnector;
  /** The resource (MCP server) URI. */
  readonly server: string;
  readonly tool: PolicyTool;
  /** The effective classification: the registry's, or a higher one the request declared. */
  readonly classification: Classification;
  /** 0 for a token exchanged for a user's own subject token, +1 for each chained hop. */
  readonly chainDepth: number;
  readonly taskId: string;
  /** What the token would be bound to: `mtls` (RFC 8705) or `dpop` (RFC 9449); `context.binding`. */
  readonly binding: TokenBinding;
  /** The task's history (`context.task`); none recorded when not given. */
  readonly task?: PolicyTaskHistory;
}

/** The sender constraint of the token being decided, as policies see it in `context.binding`. */
export type TokenBinding = 'mtls' | 'dpop';

/** May `connector`, holding a Writ token of `user`, pass it on to reach `tool` of `server` (chaining)? */
export interface DelegateRequest {
  readonly kind: 'delegate';
  /** The connector presenting the Writ token. */
  readonly connector: PolicyConnector;
  readonly user: PolicyUser;
  /** SPIFFE IDs of the connectors the token passed through before, as `Writ::Connector` references. */
  readonly chain: readonly string[];
  /** The depth the new token would have. */
  readonly chainDepth: number;
  readonly server: string;
  readonly tool: PolicyTool;
  /** The effective classification of the downstream tool. */
  readonly classification: Classification;
  /** What the new token would be bound to (`context.binding`). */
  readonly binding: TokenBinding;
  /** The task's history (`context.task`); none recorded when not given. */
  readonly task?: PolicyTaskHistory;
}

/** May `connector`, for `user`'s task, use the user's grant at `provider` for `scopes` (the token vault)? */
export interface UseGrantRequest {
  readonly kind: 'use_grant';
  readonly user: PolicyUser;
  readonly connector: PolicyConnector;
  /** The provider's name in Writ, its issuer, and the classification of what it holds. */
  readonly provider: { readonly id: string; readonly issuer: string; readonly classification: Classification };
  readonly scopes: readonly string[];
  /** The depth of the presented task token. */
  readonly chainDepth: number;
  readonly taskId: string;
  /** What the presented task token is bound to (`context.binding`). */
  readonly binding: TokenBinding;
  readonly task?: PolicyTaskHistory;
}

export type PolicyRequest = ActionRequest | DelegateRequest | UseGrantRequest;

export interface PolicyDecision {
  /** True only when a permit holds, no forbid does, and nothing went wrong. */
  readonly allowed: boolean;
  /** The determining policies: the permits that allowed, or the forbids that denied; empty for a default deny. */
  readonly policyIds: string[];
  /** Why the request could not be decided, or which policy failed to evaluate (for the audit trail and logs). */
  readonly errors: string[];
  /** The version of the policy set that decided. */
  readonly version: string;
  /** Allowed only once approved: a determining permit carries `@approval("required")`. */
  readonly approval?: ApprovalRequirement;
}

/**
 * A permit annotated `@approval("required")` grants only what an approver approved:
 * `@approvers("<group>")` names who may (else the broker's configured group), and
 * `@self_approval("allowed")` lets the requesting user approve their own request.
 */
export interface ApprovalRequirement {
  /** The permits that asked for it. */
  readonly policies: readonly string[];
  /** The approvers' groups the permits named; empty: the configured one. */
  readonly approvers: readonly string[];
  /** Whether the requesting user may approve (every such permit must allow it). */
  readonly selfApproval: boolean;
}

type ApprovalAnnotations = Record<string, { approvers?: string; selfApproval: boolean }>;

export type PolicyValidation = { ok: true } | { ok: false; errors: string[] };

/**
 * Parses a policy set and validates it against the Writ schema in strict mode. The errors
 * are Cedar's messages, each with the policy id and line and column where Cedar gives one.
 */
export function validatePolicies(text: string): PolicyValidation {
  const compiled = compilePolicies(text);
  return compiled.ok ? { ok: true } : { ok: false, errors: compiled.errors };
}

/** Decisions remembered per engine at most; beyond it the cache starts over. */
const DECISION_CACHE_SIZE = 20_000;

/**
 * The inputs a decision depends on, as a cache key: everything Cedar sees (the entities'
 * attributes and the context). The task id is part of it only when a policy of the set
 * could read it (any mention of `task_id`); otherwise it cannot change the answer.
 */
function decisionKey(r: PolicyRequest, withTaskId: boolean, withHistory: boolean): string {
  const h = r.task ?? NO_HISTORY;
  const history = withHistory ? [h.calls, h.toolsCalled, h.servers, h.resources, h.maxClassificationRead, h.maxClassificationWritten, h.egressCalls] : null;
  if (r.kind === 'use_grant') return JSON.stringify(['use_grant', r.user.sub, r.user.iss, r.user.groups, r.user.risk, r.connector.spiffeId, r.connector.owner, r.connector.trustDomain, r.provider.id, r.provider.issuer, r.provider.classification, [...r.scopes].sort(), r.chainDepth, r.binding, history, withTaskId ? r.taskId : null]);
  const common = [r.user.sub, r.user.iss, r.user.groups, r.user.risk, r.connector.spiffeId, r.connector.owner, r.connector.trustDomain, r.server, r.tool.name, r.tool.classification, r.tool.egress === true, r.classification, r.chainDepth, r.binding, history];
  return JSON.stringify(r.kind === 'action' ? ['action', r.action, ...common, withTaskId ? r.taskId : null] : ['delegate', r.chain, ...common]);
}

/** One active, versioned policy set, parsed once; decides requests against it. */
export class PolicyEngine {
  readonly #schemaName: string;
  readonly #policySetId: string;
  /** Decisions by every input (the set, hence its version, is fixed per engine); only clean answers are kept. */
  readonly #decisions = new Map<string, PolicyDecision>();
  readonly #taskIdMatters: boolean;
  /** Some policy reads `context.task` (the task's history): then every granted tool is decided per call too. */
  readonly readsTaskHistory: boolean;
  readonly #approvals: ApprovalAnnotations;

  private constructor(
    /** The version this set was activated as. */
    readonly version: string,
    /** The policy text as the operator wrote it. */
    readonly text: string,
    /** The ids of the policies in the set, in text order. */
    readonly policyIds: readonly string[],
    schemaName: string,
    policySetId: string,
    readsTaskId: boolean,
    readsTaskHistory: boolean,
    approvals: ApprovalAnnotations,
  ) {
    this.readsTaskHistory = readsTaskHistory;
    this.#approvals = approvals;
    this.#schemaName = schemaName;
    this.#policySetId = policySetId;
    this.#taskIdMatters = readsTaskId || text.includes('task_id');
  }

  /** Validates and parses `text` once. Throws PolicyInvalid with Cedar's errors. */
  static create(text: string, version: string): PolicyEngine {
    const compiled = compilePolicies(text);
    if (!compiled.ok) throw new PolicyInvalid(compiled.errors);
    const schemaName = preparsedSchema();
    const policySetId = preparsedPolicySet(compiled.policies);
    return new PolicyEngine(version, text, Object.keys(compiled.policies), schemaName, policySetId, compiled.readsTaskId, compiled.readsTaskHistory, compiled.approvals);
  }

  /** Decides one tool and action (or one delegation). Never throws; fails closed. */
  decide(request: PolicyRequest): PolicyDecision {
    let key: string | undefined;
    try {
      key = decisionKey(request, this.#taskIdMatters, this.readsTaskHistory);
    } catch {
      key = undefined; // a malformed request: decided (and refused) below, not cached
    }
    const cached = key === undefined ? undefined : this.#decisions.get(key);
    // A copy, of the same shape as a fresh decision: a caller cannot alter what the next one is told.
    if (cached) return { allowed: cached.allowed, policyIds: [...cached.policyIds], errors: [], version: cached.version, ...(cached.approval && { approval: cached.approval }) };
    const decision = this.#decide(request);
    if (key !== undefined && decision.errors.length === 0) {
      if (this.#decisions.size >= DECISION_CACHE_SIZE) this.#decisions.clear();
      this.#decisions.set(key, { allowed: decision.allowed, policyIds: [...decision.policyIds], errors: [], version: decision.version, ...(decision.approval && { approval: decision.approval }) });
    }
    return decision;
  }

  #decide(request: PolicyRequest): PolicyDecision {
    const deny = (errors: string[], policyIds: string[] = []): PolicyDecision => ({
      allowed: false,
      policyIds,
      errors,
      version: this.version,
    });
    try {
      const answer = cedar.statefulIsAuthorized({
        ...cedarRequest(request),
        preparsedSchemaName: this.#schemaName,
        preparsedPolicySetId: this.#policySetId,
        validateRequest: true,
      });
      if (answer.type !== 'success') return deny(answer.errors.map((e) => describe(e)));
      const { decision, diagnostics } = answer.response;
      const errors = diagnostics.errors.map((e) => `${e.policyId}: ${describe(e.error)}`);
      const allowed = decision === 'allow' && errors.length === 0;
      const approving = allowed ? diagnostics.reason.filter((id) => Object.hasOwn(this.#approvals, id)) : [];
      return {
        allowed,
        policyIds: [...diagnostics.reason],
        errors,
        version: this.version,
        ...(approving.length > 0 && {
          approval: {
            policies: approving,
            approvers: [...new Set(approving.map((id) => this.#approvals[id]!.approvers).filter((g): g is string => g !== undefined))],
            selfApproval: approving.every((id) => this.#approvals[id]!.selfApproval),
          },
        }),
      };
    } catch (err) {
      return deny([err instanceof Error ? err.message : String(err)]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Requests: Writ's request → Cedar's principal, action, resource, context and entities.

interface CedarRequest {
  principal: cedar.EntityUid;
  action: cedar.EntityUid;
  resource: cedar.EntityUid;
  context: cedar.Context;
  entities: cedar.Entities;
}

const uid = (type: string, id: string): cedar.TypeAndId => {
  if (typeof id !== 'string') throw new TypeError(`the id of a ${type} must be a string`);
  return { type, id };
};
const ref = (entity: cedar.TypeAndId): cedar.CedarValueJson => ({ __entity: entity });

/** An entity whose uid is in the plain `{type, id}` form, so that it can be referenced. */
type Entity = cedar.EntityJson & { uid: cedar.TypeAndId };

function userEntity(user: PolicyUser): Entity {
  return {
    uid: uid(ENTITY_TYPES.user, user.sub),
    attrs: { iss: user.iss, groups: [...user.groups], risk: user.risk },
    parents: [],
  };
}

function connectorEntity(connector: PolicyConnector): Entity {
  return {
    uid: uid(ENTITY_TYPES.connector, connector.spiffeId),
    attrs: { owner: connector.owner, trust_domain: connector.trustDomain },
    parents: [],
  };
}

function level(classification: unknown, what: string): number {
  if (!isClassification(classification)) throw new RangeError(`unknown ${what} ${JSON.stringify(classification)}`);
  return classificationLevel(classification);
}

function chainDepth(depth: unknown): number {
  // Cedar's Long is 64-bit; a JavaScript number is exact only up to 2^53.
  if (typeof depth !== 'number' || !Number.isSafeInteger(depth) || depth < 0) {
    throw new RangeError(`chain depth must be a non-negative integer, not ${String(depth)}`);
  }
  return depth;
}

function tokenBinding(binding: unknown): TokenBinding {
  if (binding !== 'mtls' && binding !== 'dpop') throw new RangeError(`unknown token binding ${JSON.stringify(binding)}`);
  return binding;
}

function egressOf(egress: unknown): boolean {
  if (egress !== undefined && typeof egress !== 'boolean') throw new TypeError('a tool\'s egress flag must be a boolean');
  return egress === true;
}

const level64 = (n: unknown, what: string): number => {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1) throw new RangeError(`the task history's ${what} must be an integer of at least -1, not ${String(n)}`);
  return n;
};
const strings = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new TypeError(`the task history's ${what} must be a list of strings`);
  return [...(v as string[])];
};

/** `context.task`, as the schema's `TaskHistory` record. */
function taskHistory(h: PolicyTaskHistory | undefined): cedar.CedarValueJson {
  const t = h ?? NO_HISTORY;
  return {
    calls: level64(t.calls, 'calls'),
    tools_called: strings(t.toolsCalled, 'tools_called'),
    servers: strings(t.servers, 'servers'),
    resources: strings(t.resources, 'resources'),
    max_classification_read: level64(t.maxClassificationRead, 'max_classification_read'),
    max_classification_written: level64(t.maxClassificationWritten, 'max_classification_written'),
    egress_calls: level64(t.egressCalls, 'egress_calls'),
  };
}

function cedarRequest(request: PolicyRequest): CedarRequest {
  if (request.kind === 'use_grant') return useGrantRequest(request);
  const server: Entity = { uid: uid(ENTITY_TYPES.server, request.server), attrs: {}, parents: [] };
  level(request.tool.classification, 'tool classification');
  const tool: Entity = {
    uid: uid(ENTITY_TYPES.tool, toolEntityId(request.server, request.tool.name)),
    attrs: { name: request.tool.name, classification: request.tool.classification, egress: egressOf(request.tool.egress) },
    parents: [server.uid],
  };
  const user = userEntity(request.user);
  const connector = connectorEntity(request.connector);
  const classification = {
    classification: request.classification,
    classification_level: level(request.classification, 'classification'),
    chain_depth: chainDepth(request.chainDepth),
    binding: tokenBinding(request.binding),
    task: taskHistory(request.task),
  };
  const kind: unknown = request.kind;
  if (request.kind === 'action') {
    if (!isToolAction(request.action)) throw new RangeError(`unknown action ${JSON.stringify(request.action)}`);
    if (typeof request.taskId !== 'string') throw new TypeError('the task id must be a string');
    return {
      principal: user.uid,
      action: uid(ENTITY_TYPES.action, request.action),
      resource: tool.uid,
      context: { connector: ref(connector.uid), ...classification, task_id: request.taskId },
      entities: [user, connector, server, tool],
    };
  }
  if (request.kind === 'delegate') {
    if (!Array.isArray(request.chain)) throw new TypeError('the chain must be a list of SPIFFE IDs');
    return {
      principal: connector.uid,
      action: uid(ENTITY_TYPES.action, DELEGATE_ACTION),
      resource: tool.uid,
      context: {
        user: ref(user.uid),
        chain: request.chain.map((id) => ref(uid(ENTITY_TYPES.connector, id))),
        ...classification,
      },
      entities: [connector, user, server, tool],
    };
  }
  throw new RangeError(`unknown request kind ${JSON.stringify(kind)}`);
}

function useGrantRequest(request: UseGrantRequest): CedarRequest {
  if (typeof request.taskId !== 'string') throw new TypeError('the task id must be a string');
  if (!Array.isArray(request.scopes) || request.scopes.some((s) => typeof s !== 'string')) throw new TypeError('the scopes must be a list of strings');
  const user = userEntity(request.user);
  const connector = connectorEntity(request.connector);
  const provider: Entity = { uid: uid(ENTITY_TYPES.provider, request.provider.id), attrs: { name: request.provider.id, issuer: request.provider.issuer, classification: request.provider.classification, egress: true }, parents: [] };
  return {
    principal: user.uid,
    action: uid(ENTITY_TYPES.action, USE_GRANT_ACTION),
    resource: provider.uid,
    context: {
      connector: ref(connector.uid),
      scopes: [...request.scopes],
      task_id: request.taskId,
      classification: request.provider.classification,
      classification_level: level(request.provider.classification, 'provider classification'),
      chain_depth: chainDepth(request.chainDepth),
      binding: tokenBinding(request.binding),
      task: taskHistory(request.task),
    },
    entities: [user, connector, provider],
  };
}

// ---------------------------------------------------------------------------------------
// Policy sets: text → { id → policy } validated against the schema, and Cedar's caches.

/** `readsTaskId`: some policy names the `task_id` attribute (judged on Cedar's parsed form, where escapes are resolved). */
type Compiled = { ok: true; policies: Record<string, string>; readsTaskId: boolean; readsTaskHistory: boolean; approvals: ApprovalAnnotations } | { ok: false; errors: string[] };

/** Reads a policy's approval annotations; an error message for a malformed one. */
function approvalOf(annotations: Record<string, unknown>, effect: unknown): { approvers?: string; selfApproval: boolean } | string | undefined {
  const has = (k: string) => Object.prototype.hasOwnProperty.call(annotations, k);
  if (!has('approval')) return has('approvers') || has('self_approval') ? '@approvers and @self_approval go with @approval("required")' : undefined;
  if (annotations['approval'] !== 'required') return '@approval takes one value: @approval("required")';
  if (effect !== 'permit') return '@approval("required") marks a permit (a forbid needs no approval)';
  const approvers = annotations['approvers'];
  if (has('approvers') && (typeof approvers !== 'string' || approvers === '' || approvers.length > MAX_ID_LENGTH || CONTROL.test(approvers))) return '@approvers needs a group name: @approvers("security")';
  if (has('self_approval') && annotations['self_approval'] !== 'allowed') return '@self_approval takes one value: @self_approval("allowed")';
  return { ...(typeof approvers === 'string' && { approvers }), selfApproval: annotations['self_approval'] === 'allowed' };
}

const MAX_ID_LENGTH = 128;
const CONTROL = /[\u0000-\u001f\u007f]/;

function compilePolicies(text: string): Compiled {
  if (typeof text !== 'string') return { ok: false, errors: ['the policies must be Cedar text'] };
  // Before Cedar sees it: text nested deeper than its stack allows would leave Cedar unusable (shape.ts).
  const shape = policyShapeProblem(text);
  if (shape !== undefined) return { ok: false, errors: [shape] };
  const parts = cedar.policySetTextToParts(text);
  if (parts.type !== 'success') return { ok: false, errors: parts.errors.map((e) => describe(e, text, 0)) };
  if (parts.policy_templates.length > 0) {
    return {
      ok: false,
      errors: parts.policy_templates.map(
        (t) => `${prefix(undefined, text, text.indexOf(t))}policy templates (?principal, ?resource) are not supported; write static policies`,
      ),
    };
  }

  // Cedar numbers the policies policy0, policy1, … in text order and returns them sorted by
  // that id as a string (policy0, policy1, policy10, policy11, policy2, …).
  const cedarIds = parts.policies.map((_, n) => `policy${n}`).sort();
  const inOrder = parts.policies
    .map((source, i) => ({ source, cedarId: cedarIds[i]!, n: Number(cedarIds[i]!.slice('policy'.length)) }))
    .sort((a, b) => a.n - b.n);
  const errors: string[] = [];
  const policies: Record<string, string> = {};
  const offsets = new Map<string, number>();
  let readsTaskId = false;
  let readsTaskHistory = false;
  const approvals: ApprovalAnnotations = {};
  let cursor = 0;
  for (const { source, cedarId } of inOrder) {
    const offset = text.indexOf(source, cursor);
    if (offset >= 0) cursor = offset + source.length;
    const json = cedar.policyToJson(source);
    if (json.type !== 'success') {
      errors.push(...json.errors.map((e) => describe(e, text, offset, cedarId)));
      continue;
    }
    // The parsed form names attributes unescaped: `context["task\u{5f}id"]` reads as task_id.
    readsTaskId ||= JSON.stringify(json.json).includes('task_id');
    // `context.task` (or `context has task`): the attribute named "task" (a string literal "task" also counts; harmless).
    readsTaskHistory ||= JSON.stringify(json.json).includes('"task"');
    const annotations = json.json.annotations ?? {};
    let id = cedarId;
    if (Object.prototype.hasOwnProperty.call(annotations, 'id')) {
      const value: unknown = annotations['id'];
      if (typeof value !== 'string' || value.length === 0) {
        errors.push(`${prefix(cedarId, text, offset)}@id needs a value: @id("…")`);
        continue;
      }
      if (value.length > MAX_ID_LENGTH || CONTROL.test(value)) {
        errors.push(`${prefix(cedarId, text, offset)}@id must be at most ${MAX_ID_LENGTH} characters without control characters`);
        continue;
      }
      id = value;
    }
    if (Object.prototype.hasOwnProperty.call(policies, id)) {
      errors.push(`${prefix(cedarId, text, offset)}duplicate policy id ${JSON.stringify(id)}`);
      continue;
    }
    const approval = approvalOf(annotations as Record<string, unknown>, (json.json as { effect?: unknown }).effect);
    if (typeof approval === 'string') {
      errors.push(`${prefix(cedarId, text, offset)}${approval}`);
      continue;
    }
    if (approval) approvals[id] = approval;
    policies[id] = source;
    offsets.set(id, offset);
  }
  if (errors.length > 0) return { ok: false, errors };

  const validation = cedar.validate({
    schema: WRIT_SCHEMA,
    policies: { staticPolicies: policies },
    validationSettings: { mode: 'strict' },
  });
  if (validation.type !== 'success') return { ok: false, errors: validation.errors.map((e) => describe(e)) };
  if (validation.validationErrors.length > 0) {
    return {
      ok: false,
      errors: validation.validationErrors.map((e) => describe(e.error, text, offsets.get(e.policyId) ?? -1, e.policyId)),
    };
  }
  return { ok: true, policies, readsTaskId, readsTaskHistory, approvals };
}


let schemaName: string | undefined;

function preparsedSchema(): string {
  if (schemaName === undefined) {
    const name = `writ-schema-${sha256(WRIT_SCHEMA, 'hex').slice(0, 16)}`;
    const answer = cedar.preparseSchema(name, WRIT_SCHEMA);
    if (answer.type !== 'success') {
      throw new Error(`the Writ schema does not parse: ${answer.errors.map((e) => describe(e)).join('; ')}`);
    }
    schemaName = name;
  }
  return schemaName;
}

const preparsedSets = new Set<string>();

function preparsedPolicySet(policies: Record<string, string>): string {
  const id = `writ-policies-${sha256(canonicalJson(policies), 'hex')}`;
  if (!preparsedSets.has(id)) {
    const answer = cedar.preparsePolicySet(id, { staticPolicies: policies });
    if (answer.type !== 'success') throw new PolicyInvalid(answer.errors.map((e) => describe(e)));
    preparsedSets.add(id);
  }
  return id;
}

// ---------------------------------------------------------------------------------------
// Cedar's errors as one line each: "<policy id>, line L, column C: <message> (<help>)".

/**
 * `base` is the character offset in `text` of the source Cedar's byte offsets are relative
 * to (-1: unknown, no position given).
 */
function describe(error: cedar.DetailedError, text?: string, base = -1, policyId?: string): string {
  const location = error.sourceLocations?.[0];
  let offset = -1;
  if (text !== undefined && base >= 0 && location !== undefined) {
    offset = base + Buffer.from(text.slice(base), 'utf8').subarray(0, location.start).toString('utf8').length;
  }
  const detail = error.help ?? location?.label ?? null;
  return `${prefix(policyId, text ?? '', offset)}${error.message}${detail ? ` (${detail})` : ''}`;
}

/** "<policy id>, line L, column C: " for a character offset in `text`; parts unknown are left out. */
function prefix(policyId: string | undefined, text: string, offset: number): string {
  const where: string[] = policyId === undefined ? [] : [policyId];
  if (offset >= 0) {
    const before = text.slice(0, offset);
    where.push(`line ${before.split('\n').length}, column ${offset - before.lastIndexOf('\n')}`);
  }
  return where.length === 0 ? '' : `${where.join(', ')}: `;
}
