import { sha256 } from '../core/hash';
import { parseStepUpChallenge, type StepUpChallenge } from '../tokens/step-up';
import { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE_BY_NAME } from '../tokens/rfc8693';
import type { DpopKey } from './dpop';
import { WritError, WritOAuthError, WritProtocolError } from './errors';
import { fresh, systemTimers, type Timers } from './time';
import { accessOf, type X509Source } from './x509-source';

/** Where an approval request stands (`waitForApproval`). */
export interface ApprovalStatus {
  readonly id: string;
  /** pending, approved, denied, expired or revoked. */
  readonly status: string;
  readonly approvedUntil?: Date;
  /** The approver's stated reason, if any. */
  readonly reason?: string;
}

/** An approval that ended without being granted (denied, expired, revoked), or that no approver decided in time. */
export class ApprovalNotGranted extends WritError {
  constructor(
    readonly approval: ApprovalStatus,
    message = `the approval was ${approval.status}${approval.reason ? `: ${approval.reason}` : ''}`,
  ) {
    super(message);
  }
}

/** The actions an MCP tool performs (Writ's Cedar actions). */
export type ToolAction = 'read' | 'write' | 'execute' | 'delete';

/** Data classifications, lowest first. */
export type DataClassification = 'public' | 'internal' | 'confidential' | 'restricted';

/** A tool the task needs, and what it will do with it. */
export interface ToolRequest {
  /** The tool's name as the resource registered it, e.g. `search`. */
  readonly name: string;
  readonly actions: readonly ToolAction[];
  /**
   * The class of the data the task will handle with it, when higher than the registry's for
   * the tool (a lower one is never used).
   */
  readonly dataClassification?: DataClassification;
}

/** One granted RFC 9396 authorization details object of type `mcp_tool`, as the broker answered it. */
export interface McpToolGrant {
  readonly type: 'mcp_tool';
  readonly tools: readonly string[];
  readonly actions: readonly ToolAction[];
  readonly data_classification?: DataClassification;
}

/** A token exchange for the end user's identity (RFC 8693 §2.1). */
export interface ExchangeRequest {
  /** The user's ID token (or JWT) from an identity provider the broker trusts. */
  readonly subjectToken: string;
  /** `id_token` (default) or `jwt` (RFC 8693 §3 `urn:ietf:params:oauth:token-type:…`). */
  readonly subjectTokenType?: 'id_token' | 'jwt';
  /** The MCP server the token is for (RFC 8707 `resource`, the token's `aud`). */
  readonly resource: string;
  readonly tools: readonly ToolRequest[];
  /** A task this user and connector began before; omitted, the broker begins a new one. */
  readonly taskId?: string;
}

/** A downstream hop: an access token this workload received, exchanged for another resource. */
export interface ChainRequest {
  /** The Writ access token received (its `aud` must be this workload's resource). */
  readonly token: string;
  readonly resource: string;
  readonly tools: readonly ToolRequest[];
}

/** An access token for one task, one resource and the tools policy allowed (RFC 8693 §2.2.1). */
export interface TaskToken {
  /**
   * An RFC 9068 JWT bound to the source's SVID (RFC 8705 `cnf.x5t#S256`; send it as
   * `Authorization: Bearer` over mTLS with that SVID), or, when the client has a DPoP key, to
   * that key (RFC 9449 `cnf.jkt`; send it as `Authorization: DPoP` with a proof).
   */
  readonly accessToken: string;
  readonly tokenType: 'Bearer' | 'DPoP';
  /** When the request was sent (the token was issued no earlier). */
  readonly issuedAt: Date;
  /** From `expires_in`, counted from when the request was sent. */
  readonly expiresAt: Date;
  /** The task it belongs to: pass it to later exchanges of the same task, and to {@link TaskTokenClient.endTask}. */
  readonly taskId: string;
  readonly resource: string;
  /** What policy allowed: the answer's `authorization_details` (RFC 9396 §7), possibly less than asked. */
  readonly granted: readonly McpToolGrant[];
}

/** The answer of {@link TaskTokenClient.endTask}. */
export interface EndedTask {
  readonly taskId: string;
  /** How many tokens of the task were revoked, chained ones included. */
  readonly revoked: number;
}

/** Options of a {@link TaskTokenClient}. */
export interface TaskTokenClientOptions {
  /**
   * Bind tokens to this DPoP key (RFC 9449) instead of the SVID's certificate: for MCP servers
   * reached through a proxy that terminates TLS. The exchange itself still authenticates with
   * the SVID over mTLS; each exchange and each resource request carries a fresh proof.
   */
  readonly dpop?: DpopKey;
}

/** Options of {@link TaskTokenClient.taskFetch}. */
export interface TaskFetchOptions {
  /** How requests reach the MCP server: e.g. `tlsFetch` over mTLS with the SVID, or the global `fetch` for DPoP through a proxy. */
  readonly fetch: typeof fetch;
  /**
   * The actions the client will ask for when a server's step-up challenge refuses `tool`:
   * given, it decides (undefined or none: the challenge is not followed); not given, the
   * actions the challenge names are asked for. Policy at Writ decides either way.
   */
  readonly actionsFor?: (tool: string) => readonly ToolAction[] | undefined;
  /** Told about every step-up: the tool asked for and whether policy granted it. */
  readonly onStepUp?: (event: StepUpEvent) => void;
}

/** One step-up {@link TaskTokenClient.taskFetch} followed. */
export interface StepUpEvent {
  /** What the server asked for. */
  readonly tools: readonly ToolRequest[];
  /** Whether policy granted all of it (the request was then retried with the new token). */
  readonly granted: boolean;
  /** The new token, when the broker issued one (it may grant less than asked: then `granted` is false). */
  readonly token?: TaskToken;
  /** The broker's refusal, when it issued none. */
  readonly refused?: WritOAuthError;
}

/**
 * A `fetch` that sends each request with the task's token (a new DPoP proof each time, when
 * DPoP-bound) and follows per-tool step-up once; pass it as an MCP client transport's `fetch`.
 */
export interface TaskFetch {
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The task's current token (exchanged on the first request). */
  token(): Promise<TaskToken>;
  /** Ends the task (every token of it revoked); a fetch of an ended task is refused by the server. */
  end(): Promise<EndedTask | undefined>;
}

const GRANT_TYPE = TOKEN_EXCHANGE_GRANT_TYPE;
const TOKEN_TYPE = TOKEN_TYPE_BY_NAME;
/** Most tokens cached at once; expired ones and those of a previous SVID go first. */
const MAX_CACHED = 1024;


/** A SaaS's access token the token vault released to a task ({@link TaskTokenClient.providerToken}). */
export interface ProviderToken {
  readonly accessToken: string;
  /** The provider's token type (usually Bearer). */
  readonly tokenType: string;
  /** Never beyond the task token's expiry. */
  readonly expiresAt: Date;
  readonly scope: string;
  readonly provider: string;
}

/**
 * Per-task access tokens from the broker's token exchange (POST /oauth2/token, RFC 8693 with
 * RFC 9396 `authorization_details` of type `mcp_tool`), authenticated with the source's current
 * X.509-SVID (RFC 8705 `tls_client_auth`). Tokens are cached per SVID, subject token, task,
 * resource and tools while more than half their life (and more than 30 s) is left; concurrent
 * identical requests share one exchange. An exchange without `taskId` begins a new task, so it
 * is never answered from the cache; pass the `taskId` it returned to reuse its token. Refusals are typed: {@link AccessDeniedError} when
 * policy allows nothing, {@link InvalidGrantError} for a bad subject token or an ended task, …
 *
 * @example
 * const tokens = new TaskTokenClient(source);
 * const t = await tokens.exchange({ subjectToken: idToken, resource: 'https://mcp.example.com/github',
 *   tools: [{ name: 'search', actions: ['read'] }] });
 * // … call the MCP server with `Authorization: Bearer ${t.accessToken}` over mTLS with the same SVID …
 * await tokens.endTask(t.taskId);
 */
export class TaskTokenClient {
  readonly #source: X509Source;
  readonly #cache = new Map<string, TaskToken>();
  readonly #inflight = new Map<string, Promise<TaskToken>>();
  readonly #dpop: DpopKey | undefined;
  /** The broker's token endpoint (RFC 8414 `token_endpoint`): the `htu` of DPoP proofs sent to it. */
  #tokenEndpoint: Promise<string> | undefined;
  /** The last `DPoP-Nonce` each resource server's origin gave (RFC 9449 §9). */
  readonly #nonces = new Map<string, string>();

  constructor(source: X509Source, options: TaskTokenClientOptions = {}) {
    accessOf(source);
    this.#source = source;
    this.#dpop = options.dpop;
  }

  /** Exchanges the user's ID token for a token for `resource` and the tools policy allows now. */
  exchange(request: ExchangeRequest): Promise<TaskToken> {
    const type = request.subjectTokenType ?? 'id_token';
    if (type !== 'id_token' && type !== 'jwt') return Promise.reject(new TypeError('subjectTokenType is id_token or jwt'));
    return this.#exchange(request.subjectToken, TOKEN_TYPE[type], request.resource, request.tools, request.taskId);
  }

  /**
   * Exchanges an access token this workload received for one to a downstream resource
   * (`subject_token_type` access_token). The broker allows the hop only where a `delegate`
   * policy does; the new token stays in the parent's task and never grants more or lives longer.
   */
  chain(request: ChainRequest): Promise<TaskToken> {
    return this.#exchange(request.token, TOKEN_TYPE.access_token, request.resource, request.tools, undefined);
  }

  /**
   * The token vault: a SaaS's access token for the task `taskToken` belongs to (this connector's
   * own task token, over the same SVID, or DPoP key, it is bound to), for `scope` at the provider
   * Writ knows as `provider` (RFC 8693 `audience`). Use it at once; it lives no longer than the
   * task token. {@link InteractionRequiredError} with `linkUri` when the user must link their
   * account first; {@link AccessDeniedError} when policy does not allow it now.
   */
  async providerToken(taskToken: TaskToken | string, request: { provider: string; scope: string | readonly string[] }): Promise<ProviderToken> {
    const subject = typeof taskToken === 'string' ? taskToken : taskToken.accessToken;
    if (typeof subject !== 'string' || subject === '') throw new TypeError('a task token is required');
    if (typeof request?.provider !== 'string' || request.provider === '') throw new TypeError('provider is required');
    const scope = typeof request.scope === 'string' ? request.scope : request.scope.join(' ');
    if (scope.trim() === '') throw new TypeError('scope is required');
    const access = accessOf(this.#source);
    const headers = this.#dpop === undefined ? undefined : { dpop: this.#dpop.proof({ method: 'POST', url: await this.#tokenEndpointUrl() }) };
    const sentAt = access.clock.now();
    const form = new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: subject, subject_token_type: TOKEN_TYPE.access_token, audience: request.provider, scope });
    const answer = await access.call({ method: 'POST', path: '/oauth2/token', form, ...(headers && { headers }) }, { mtls: true });
    const body = (answer.body ?? {}) as { access_token?: unknown; token_type?: unknown; expires_in?: unknown; scope?: unknown };
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') throw new WritProtocolError('the token vault answer lacks access_token or expires_in', answer.status);
    return { accessToken: body.access_token, tokenType: typeof body.token_type === 'string' ? body.token_type : 'Bearer', expiresAt: new Date(sentAt.getTime() + body.expires_in * 1000), scope: typeof body.scope === 'string' ? body.scope : scope, provider: request.provider };
  }

  /** Ends a task (POST /v1/tasks/{id}/end): every token of it, chained ones included, is revoked before the answer. */
  async endTask(taskId: string): Promise<EndedTask> {
    if (typeof taskId !== 'string' || taskId === '') throw new TypeError('taskId is required');
    const answer = await accessOf(this.#source).call({ method: 'POST', path: `/v1/tasks/${encodeURIComponent(taskId)}/end` }, { mtls: true });
    for (const [key, token] of this.#cache) if (token.taskId === taskId) this.#cache.delete(key);
    const body = (answer.body ?? {}) as { task_id?: unknown; revoked?: unknown };
    return { taskId: typeof body.task_id === 'string' ? body.task_id : taskId, revoked: typeof body.revoked === 'number' ? body.revoked : 0 };
  }

  /**
   * Waits for an approver (a tool action a permit marks `@approval("required")`): polls the
   * approval request (`GET /v1/approvals/{id}`, as the task's connector, over mTLS) with backoff
   * — 1 s, doubling, at most 15 s between polls — until it is approved (resolves), or denied,
   * expired or revoked ({@link ApprovalNotGranted}), or `timeoutMs` passed (15 minutes by default).
   * `approval` is the id, or the URL an `input_required` elicitation or a denial named. Then retry
   * the call: the next per-call decision finds the approval.
   */
  async waitForApproval(approval: string, options: { timeoutMs?: number; timers?: Timers; onPending?: (a: ApprovalStatus) => void } = {}): Promise<ApprovalStatus> {
    const id = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/i.exec(approval)?.[1];
    if (id === undefined) throw new TypeError('approval is an approval id or its URL');
    const access = accessOf(this.#source);
    const timers = options.timers ?? systemTimers;
    const deadline = access.clock.now().getTime() + (options.timeoutMs ?? 15 * 60_000);
    for (let delay = 1000; ; delay = Math.min(delay * 2, 15_000)) {
      const answer = await access.call({ method: 'GET', path: `/v1/approvals/${id}` }, { mtls: true });
      const body = (answer.body ?? {}) as { id?: unknown; status?: unknown; approved_until?: unknown; decision_reason?: unknown };
      if (typeof body.status !== 'string') throw new WritProtocolError('the approval answer lacks a status', answer.status);
      const status: ApprovalStatus = { id, status: body.status, ...(typeof body.approved_until === 'string' && { approvedUntil: new Date(body.approved_until) }), ...(typeof body.decision_reason === 'string' && { reason: body.decision_reason }) };
      if (status.status === 'approved') return status;
      if (status.status !== 'pending') throw new ApprovalNotGranted(status);
      options.onPending?.(status);
      const now = access.clock.now().getTime();
      if (now >= deadline) throw new ApprovalNotGranted(status, 'no approver decided in time');
      await new Promise<void>((resolve) => timers.setTimeout(resolve, Math.min(delay, deadline - now)));
    }
  }

  /** Forgets every cached token (they stay valid at the broker until they expire or their task ends). */
  clear(): void {
    this.#cache.clear();
  }

  /**
   * A `fetch` for one task at one MCP server: the first request exchanges `request` for a token;
   * each request carries it (`Authorization: Bearer`, or `DPoP` with a fresh proof, RFC 9449
   * §7.1, retried once with the server's `DPoP-Nonce` when it asks for one, §9). A `tools/call`
   * the token does not grant answers 403 `insufficient_scope` with the tool to ask for (MCP
   * SEP-2350; `@writ/mcp` names it in the challenge's `authorization_details`): the client then
   * exchanges again within the same task for the tools so far plus that one — policy decides
   * again — and, when granted, retries the request once with the new token. When policy refuses,
   * the server's 403 is the answer. Only a challenge naming the tool the request itself calls
   * is followed, and the token is sent to the resource's origin only, never along a redirect.
   * Requests whose body is a stream are not retried.
   *
   * ```ts
   * const fetch = tokens.taskFetch({ subjectToken, resource, tools: [{ name: 'list_issues', actions: ['read'] }] }, { fetch: mtls });
   * const client = new Client({ name: 'agent', version: '1.0.0' });
   * await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch }));
   * await client.callTool({ name: 'create_issue', arguments: { title } });   // steps up to create_issue, if policy allows
   * await fetch.end();
   * ```
   */
  taskFetch(request: ExchangeRequest, options: TaskFetchOptions): TaskFetch {
    if (typeof options?.fetch !== 'function') throw new TypeError('options.fetch is required');
    let tools: readonly ToolRequest[] = request.tools;
    let current: Promise<TaskToken> | undefined;
    const token = (): Promise<TaskToken> => {
      current ??= this.exchange({ ...request, tools });
      // A failed first exchange is not remembered: the next request tries again.
      current.catch(() => (current = undefined));
      return current;
    };
    const send = (input: string | URL | Request, init: RequestInit | undefined, t: TaskToken, nonce?: string) => {
      const url = input instanceof Request ? input.url : String(input);
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
      const headers = new Headers(input instanceof Request ? input.headers : undefined);
      new Headers(init?.headers).forEach((v, k) => headers.set(k, v));
      headers.set('authorization', `${t.tokenType} ${t.accessToken}`);
      if (t.tokenType === 'DPoP') {
        const origin = new URL(url).origin;
        const n = nonce ?? this.#nonces.get(origin);
        headers.set('dpop', this.#dpopKey().proof({ method, url, accessToken: t.accessToken, ...(n !== undefined && { nonce: n }) }));
      }
      return options.fetch(input, { ...init, headers });
    };
    const replayable = (input: string | URL | Request, init: RequestInit | undefined) =>
      !(input instanceof Request && input.body !== null) && (init?.body === undefined || init.body === null || typeof init.body === 'string' || init.body instanceof URLSearchParams || init.body instanceof ArrayBuffer || ArrayBuffer.isView(init.body));
    const resourceOrigin = new URL(request.resource).origin;
    const taskFetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const origin = new URL(input instanceof Request ? input.url : String(input)).origin;
      // The task's token goes to its resource's origin only, and never along a redirect.
      if (origin !== resourceOrigin) throw new TypeError(`taskFetch sends ${request.resource}'s token to ${resourceOrigin} only, not to ${origin}`);
      init = { ...init, redirect: 'manual' };
      let t = await token();
      let res = await send(input, init, t);
      const nonce = res.headers.get('dpop-nonce');
      if (nonce !== null && t.tokenType === 'DPoP') this.#nonces.set(origin, nonce);
      // RFC 9449 §9: the resource server wants a nonce in the proof: once more, with it.
      if (res.status === 401 && nonce !== null && t.tokenType === 'DPoP' && /error="use_dpop_nonce"/.test(res.headers.get('www-authenticate') ?? '') && replayable(input, init)) {
        await res.body?.cancel();
        res = await send(input, init, t, nonce);
      }
      if (res.status !== 403 || !replayable(input, init)) return res;
      // Only for the tool this very request calls: a server cannot make the client ask for others.
      const called = calledTool(init?.body);
      const added = called === undefined ? [] : stepUpTools(parseStepUpChallenge(res.headers.get('www-authenticate') ?? ''), called, options.actionsFor);
      if (added.length === 0) return res;
      const wanted = mergeTools(tools, added);
      let next: TaskToken;
      try {
        next = await this.exchange({ ...request, tools: wanted, taskId: t.taskId });
      } catch (err) {
        if (!(err instanceof WritOAuthError)) throw err;
        options.onStepUp?.({ tools: added, granted: false, refused: err });
        return res;
      }
      // RFC 9396 §7: the answer's authorization_details say what was granted, possibly less than asked.
      const granted = added.every((t) => t.actions.every((a) => next.granted.some((d) => d.tools.includes(t.name) && d.actions.includes(a))));
      options.onStepUp?.({ tools: added, granted, token: next });
      if (!granted) return res;
      tools = wanted;
      current = Promise.resolve(next);
      t = next;
      await res.body?.cancel();
      return send(input, init, t);
    }) as TaskFetch;
    taskFetch.token = token;
    taskFetch.end = async () => {
      if (current === undefined) return undefined;
      const t = await current.catch(() => undefined);
      return t === undefined ? undefined : this.endTask(t.taskId);
    };
    return taskFetch;
  }

  #dpopKey(): DpopKey {
    if (this.#dpop === undefined) throw new TypeError('this client has no DPoP key');
    return this.#dpop;
  }

  /** The broker's `token_endpoint` from its RFC 8414 metadata, read once. */
  #tokenEndpointUrl(): Promise<string> {
    this.#tokenEndpoint ??= accessOf(this.#source)
      .call({ method: 'GET', path: '/.well-known/oauth-authorization-server' }, { mtls: false })
      .then((answer) => {
        const endpoint = (answer.body as { token_endpoint?: unknown } | undefined)?.token_endpoint;
        if (typeof endpoint !== 'string' || !URL.canParse(endpoint)) throw new WritProtocolError("the broker's metadata names no token_endpoint", answer.status);
        return endpoint;
      });
    this.#tokenEndpoint.catch(() => (this.#tokenEndpoint = undefined));
    return this.#tokenEndpoint;
  }

  async #exchange(subjectToken: string, subjectTokenType: string, resource: string, tools: readonly ToolRequest[], taskId: string | undefined): Promise<TaskToken> {
    if (typeof subjectToken !== 'string' || subjectToken === '') throw new TypeError('a subject token is required');
    if (typeof resource !== 'string' || resource === '') throw new TypeError('resource is required');
    if (!Array.isArray(tools) || tools.length === 0) throw new TypeError('name at least one tool');
    const details = authorizationDetails(tools);
    const access = accessOf(this.#source);
    // Tokens are bound to the certificate they were exchanged with (RFC 8705 §3): one of a previous SVID is useless.
    const svid = access.material().svid;
    const keyOf = (task: string | null) => JSON.stringify([svid.fingerprint, this.#dpop?.jkt ?? null, subjectTokenType, sha256(subjectToken, 'base64url'), resource, task, details]);
    // Without a task id the broker begins a new task (RFC 8693 has no notion of one; Writ's task_id
    // does): never answered from the cache, or two tasks would share one id and end together. A
    // chained hop stays in its parent's task, so the parent token names it.
    const cacheable = taskId !== undefined || subjectTokenType === TOKEN_TYPE.access_token;
    const key = keyOf(taskId ?? null);
    const cached = cacheable ? this.#cache.get(key) : undefined;
    const now = access.clock.now().getTime();
    if (cached && fresh(cached, now)) return cached;
    let pending = cacheable ? this.#inflight.get(key) : undefined;
    if (!pending) {
      const form = new URLSearchParams({
        grant_type: GRANT_TYPE,
        subject_token: subjectToken,
        subject_token_type: subjectTokenType,
        resource,
        authorization_details: JSON.stringify(details),
        ...(taskId !== undefined && { task_id: taskId }),
      });
      pending = this.#request(form, resource);
      if (cacheable) {
        this.#inflight.set(key, pending);
        void pending.finally(() => this.#inflight.delete(key)).catch(() => undefined);
      }
    }
    const token = await pending;
    // Remembered under the task it belongs to: a later exchange naming that task is served from here.
    this.#remember(cacheable ? key : keyOf(token.taskId), token, svid.fingerprint, access.clock.now().getTime());
    return token;
  }

  async #request(form: URLSearchParams, resource: string): Promise<TaskToken> {
    const access = accessOf(this.#source);
    // RFC 9449 §5: a proof for this very request binds the token to the key (cnf.jkt).
    const headers = this.#dpop === undefined ? undefined : { dpop: this.#dpop.proof({ method: 'POST', url: await this.#tokenEndpointUrl() }) };
    const sentAt = access.clock.now();
    const answer = await access.call({ method: 'POST', path: '/oauth2/token', form, ...(headers && { headers }) }, { mtls: true });
    const body = (answer.body ?? {}) as { access_token?: unknown; token_type?: unknown; expires_in?: unknown; task_id?: unknown; authorization_details?: unknown };
    if (typeof body.access_token !== 'string' || typeof body.task_id !== 'string' || typeof body.expires_in !== 'number' || !Array.isArray(body.authorization_details)) {
      throw new WritProtocolError('the token exchange answer lacks access_token, expires_in, task_id or authorization_details', answer.status);
    }
    // RFC 9449 §5: a DPoP-bound token is token_type DPoP; anything else was not bound to the key asked for.
    const expected = this.#dpop === undefined ? 'Bearer' : 'DPoP';
    if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== expected.toLowerCase()) throw new WritProtocolError(`the token exchange answered token_type ${String(body.token_type)}, not ${expected}`, answer.status);
    return {
      accessToken: body.access_token,
      tokenType: expected,
      issuedAt: sentAt,
      expiresAt: new Date(sentAt.getTime() + body.expires_in * 1000),
      taskId: body.task_id,
      resource,
      granted: body.authorization_details as McpToolGrant[],
    };
  }

  #remember(key: string, token: TaskToken, fingerprint: string, now: number): void {
    this.#cache.delete(key);
    this.#cache.set(key, token);
    if (this.#cache.size <= MAX_CACHED) return;
    for (const [k, t] of this.#cache) if (t.expiresAt.getTime() <= now || !k.startsWith(`["${fingerprint}"`)) this.#cache.delete(k);
    while (this.#cache.size > MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!);
  }
}

/**
 * The `authorization_details` of the request (RFC 9396 §2): one `mcp_tool` object per tool, in a
 * canonical order (tools by name, actions sorted and unique), so equal requests cache alike.
 */
function authorizationDetails(tools: readonly ToolRequest[]): McpToolGrant[] {
  return tools
    .map((t) => {
      if (typeof t?.name !== 'string' || t.name === '') throw new TypeError('every tool has a name');
      if (!Array.isArray(t.actions) || t.actions.length === 0) throw new TypeError(`tool ${t.name} needs at least one action`);
      return { type: 'mcp_tool' as const, tools: [t.name], actions: [...new Set(t.actions)].sort(), ...(t.dataClassification !== undefined && { data_classification: t.dataClassification }) };
    })
    .sort((a, b) => (a.tools[0]! < b.tools[0]! ? -1 : a.tools[0]! > b.tools[0]! ? 1 : 0));
}

const TOOL_ACTIONS: ReadonlySet<string> = new Set<ToolAction>(['read', 'write', 'execute', 'delete']);

/** The tool of a request body that is one JSON-RPC `tools/call`, else undefined. */
function calledTool(body: unknown): string | undefined {
  const text = typeof body === 'string' ? body : body instanceof URLSearchParams ? undefined : body instanceof ArrayBuffer || ArrayBuffer.isView(body) ? Buffer.from(body as ArrayBuffer).toString('utf8') : undefined;
  if (text === undefined) return undefined;
  try {
    const message = JSON.parse(text) as { method?: unknown; params?: { name?: unknown } };
    return message?.method === 'tools/call' && typeof message.params?.name === 'string' ? message.params.name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What to ask for after a step-up challenge for the tool `called`: that tool alone, with the
 * actions `actionsFor` allows it (when given: the client's own say), else the ones the challenge
 * names (known actions only); nothing when the challenge names another tool or no actions.
 */
function stepUpTools(challenge: StepUpChallenge | undefined, called: string, actionsFor: TaskFetchOptions['actionsFor']): ToolRequest[] {
  const details = challenge?.authorizationDetails ?? [];
  if (details.length !== 1 || details[0]!.tools.length !== 1 || details[0]!.tools[0] !== called) return [];
  const asked = (details[0]!.actions ?? []).filter((a) => TOOL_ACTIONS.has(a)) as ToolAction[];
  const actions = actionsFor !== undefined ? actionsFor(called) : asked;
  if (actions === undefined || actions.length === 0) return [];
  return [{ name: called, actions }];
}

/** `tools` with `added` merged in: actions of a tool named in both are united. */
function mergeTools(tools: readonly ToolRequest[], added: readonly ToolRequest[]): ToolRequest[] {
  const byName = new Map<string, ToolRequest>(tools.map((t) => [t.name, t]));
  for (const t of added) {
    const had = byName.get(t.name);
    byName.set(t.name, had === undefined ? t : { ...had, actions: [...new Set([...had.actions, ...t.actions])] });
  }
  return [...byName.values()];
}
