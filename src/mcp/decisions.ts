/**
 * A decision per `tools/call` (the AuthZEN MCP binding): before a granted call reaches its tool,
 * Writ's policy decision point is asked whether the token's user may make it now, so a policy
 * change, the task's end or the connector's kill switch take effect on the next call, not the
 * next token. The PEP authenticates with this server's X.509-SVID. Fails closed.
 */
import type { ServerResponse } from 'node:http';
import { OAuthError } from '../tokens/errors';
import type { AccessTokenClaims } from '../tokens/access-token';
import type { Action } from '../tokens/authorization-details';
import { tlsFetch, type TlsClientOptions } from './tls-fetch';

export interface DecisionOptions {
  /** Writ's AuthZEN evaluation endpoint: `<issuer>/access/v1/evaluation`. */
  readonly url: string;
  /** This server's X.509-SVID and key, and Writ's trust bundle (the PEP authenticates over mTLS). */
  readonly tls: TlsClientOptions;
  /** The tools asked about per call; every tool by default. Tools the token lists in `per_call` are asked about whatever this says. */
  readonly tools?: readonly string[];
  /** How long to wait for a decision (ms); 5000 by default. */
  readonly timeoutMs?: number;
  /** Replaces the fetch built from `tls` (tests). */
  readonly fetch?: typeof fetch;
}

/** The MCP binding's JSON-RPC codes: -32001 a denial, -32603 when no decision could be had (closed). */
export const CALL_DENIED = -32001;
export const NO_DECISION = -32603;

/** A `tools/call` the PDP denied, or could not decide (answered as a JSON-RPC error, never passed on). */
export class CallDenied extends OAuthError {
  constructor(
    readonly code: typeof CALL_DENIED | typeof NO_DECISION,
    readonly reason: string,
    readonly requestId: unknown,
  ) {
    super('access_denied', reason, { status: 403 });
  }
}

/** One `tools/call` to decide: the tool, the actions it needs, its JSON-RPC id, and this server's id for it (`context.call_id`, which its report names too). */
export interface DecidedCall {
  readonly tool: string;
  readonly actions: readonly Action[];
  readonly requestId: unknown;
  readonly callId: string;
}

/** Whether the token says every call of `tool` needs a decision at call time (`per_call`). */
export const needsDecision = (claims: Pick<AccessTokenClaims, 'per_call'>, tool: string): boolean => claims.per_call?.includes(tool) === true;

/** The approval a denial waits for (the PDP's `context.approval`, AuthZEN Access Request and Approval Profile). */
export interface PendingApproval {
  readonly id: string;
  readonly url: string;
  readonly expires_at?: string;
}

/** A call that waits for an approver: answered as an MCP `input_required` result with a URL elicitation, or -32001 naming the URL. */
export class ApprovalPending extends CallDenied {
  constructor(
    readonly approval: PendingApproval,
    readonly tool: string,
    requestId: unknown,
  ) {
    super(CALL_DENIED, `${tool}: an approver must approve this call first (${approval.url})`, requestId);
  }
}

/** The `requestState` a retried call carries back (MCP 2026-07-28): it only names the approval; the PDP decides again on retry, so nothing here is trusted. */
export const APPROVAL_STATE_PREFIX = 'writ-approval:';

/** Asks the PDP about one call (`required`: whatever `tools` says); resolves when permitted, rejects with {@link CallDenied}. */
export function decider(options: DecisionOptions, server: string): (claims: AccessTokenClaims, call: DecidedCall, required?: boolean) => Promise<void> {
  const doFetch = options.fetch ?? tlsFetch(options.tls, { keepAlive: true });
  const covered = options.tools && new Set(options.tools);
  const ask = async (claims: AccessTokenClaims, tool: string, action: Action | undefined, requestId: unknown, callId: string) => {
    const body = {
      subject: { type: 'identity', id: claims.sub },
      action: { name: 'tools/call', ...(action && { properties: { action } }) },
      resource: { type: 'tool', id: tool, properties: { server } },
      context: { task_id: claims.task_id, agent: claims.client_id, call_id: callId, jti: claims.jti },
    };
    let answer: { decision?: unknown; context?: { reason?: unknown } };
    try {
      const res = await doFetch(options.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(options.timeoutMs ?? 5000) });
      if (res.status !== 200) throw new Error(`the PDP answered ${res.status}`);
      answer = (await res.json()) as typeof answer;
    } catch (err) {
      throw new CallDenied(NO_DECISION, `no decision could be had for ${tool}: ${(err as Error).message}`, requestId);
    }
    const approval = (answer.context as { approval?: { id?: unknown; url?: unknown; status?: unknown; expires_at?: unknown } } | undefined)?.approval;
    if (answer.decision !== true && approval?.status === 'pending' && typeof approval.id === 'string' && typeof approval.url === 'string')
      throw new ApprovalPending({ id: approval.id, url: approval.url, ...(typeof approval.expires_at === 'string' && { expires_at: approval.expires_at }) }, tool, requestId);
    if (answer.decision !== true) throw new CallDenied(CALL_DENIED, typeof answer.context?.reason === 'string' ? `${tool}: ${answer.context.reason}` : `${tool}: denied`, requestId);
  };
  return async (claims, call, required = false) => {
    if (!required && covered && !covered.has(call.tool)) return;
    // Every action the call needs must be permitted; with none listed, the tool's one registered action.
    for (const action of call.actions.length > 0 ? call.actions : [undefined]) await ask(claims, call.tool, action, call.requestId, call.callId);
  };
}

/**
 * MCP 2026-07-28 (Multi Round-Trip Requests, SEP-2322; URL-mode elicitation, SEP-1036): the call
 * waits for an approver, so the result is `input_required` with one URL elicitation pointing at
 * the approval; the client retries the same call with the `requestState` given here.
 */
export function sendInputRequired(res: ServerResponse, pending: ApprovalPending): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const result = {
    resultType: 'input_required',
    inputRequests: {
      'writ-approval': { method: 'elicitation/create', params: { mode: 'url', message: `An approver must approve ${pending.tool} for this task. Open the request, then try again.`, url: pending.approval.url } },
    },
    requestState: `${APPROVAL_STATE_PREFIX}${pending.approval.id}`,
  };
  res.statusCode = 200;
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ jsonrpc: '2.0', id: pending.requestId ?? null, result }));
}

/** Whether the `tools/call` request says its client takes URL-mode elicitations (2026-07-28: `_meta` carries the client's capabilities). */
export function acceptsUrlElicitation(params: unknown): boolean {
  const meta = (params as { _meta?: Record<string, unknown> } | undefined)?._meta;
  const capabilities = meta?.['io.modelcontextprotocol/clientCapabilities'] as { elicitation?: { url?: unknown } } | undefined;
  return typeof capabilities?.elicitation?.url === 'object' && capabilities.elicitation.url !== null;
}

/** The JSON-RPC error the MCP client receives for a denied call (HTTP 200, as a JSON-RPC response). */
export function sendCallDenied(res: ServerResponse, denied: CallDenied): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = 200;
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ jsonrpc: '2.0', id: denied.requestId ?? null, error: { code: denied.code, message: denied.reason } }));
}
