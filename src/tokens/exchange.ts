import type { IncomingHttpHeaders } from 'node:http';
import type { AuditLog } from '../audit';
import type { SigningAuthorities } from '../ca/rotator';
import type { Clock } from '../core/clock';
import { sha256 } from '../core/hash';
import type { Random } from '../core/random';
import { isUuid } from '../core/uuid';
import { EMPTY_TASK_HISTORY, historyForAudit, LeaseRefused, type LeaseRefusal, type LeaseStore, type RevocationEpoch, type TaskEventStore, type TaskHistory, type TaskStore } from '../leases';
import type { PolicyEngine, PolicyStore, PolicyUser } from '../policy';
import type { Resource, ResourceStore, Tool } from '../resources';
import type { TrustBundle } from '../spiffe/bundle';
import { actChain, nextChainDepth } from './attenuate';
import {
  classificationLevel,
  effectiveClassification,
  parseAuthorizationDetails,
  validateAuthorizationDetails,
  type Action,
  type Classification,
  type McpToolDetail,
} from './authorization-details';
import {
  AccessDenied,
  InvalidAuthorizationDetails,
  InvalidClient,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  InteractionRequired,
  InvalidTarget,
  isOAuthError,
  TemporarilyUnavailable,
  UnsupportedGrantType,
} from './errors';
import { certificateThumbprint, type Act, type Binding } from './access-token';
import { mintAccessToken } from './sign';
import { hasClientAssertion, JWT_SPIFFE_ASSERTION_TYPE, verifyClientAssertion, type ClientAuthMethod } from './client-assertion';
import { DpopReplayCache, dpopHeader, InvalidDpopProof, verifyDpopProof, type DpopAlgorithm, type DpopNonceSource } from './dpop';
import { verifyAccessToken } from './verify';
import { checkRequestedTokenType, subjectTokenKind, TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE, type IdentityProviders } from './subject-token';
import { noMetrics, type DomainMetrics } from '../telemetry/metrics';
import { GrantRequired, VaultError, type ProviderStore, type TokenVault } from '../vault';

/** The connector calling the token endpoint, from its verified client certificate (RFC 8705 §2). */
export interface ExchangeClient {
  readonly spiffeId: string;
  readonly serial: string;
  /** SHA-256 of the certificate DER, hex. */
  readonly fingerprint: string;
  readonly certificateDer: Uint8Array;
  readonly notAfter: Date;
}

/**
 * The RFC 8693 §2.2.1 response, with RFC 9396 §7 `authorization_details`; `token_type` is
 * `DPoP` for a DPoP-bound token (RFC 9449 §5) and `Bearer` for a certificate-bound one (RFC 8705 §3).
 */
export interface TokenExchangeResponse {
  access_token: string;
  issued_token_type: typeof TOKEN_TYPE.ACCESS_TOKEN;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  task_id: string;
  authorization_details: McpToolDetail[];
}

/**
 * The token vault's answer (RFC 8693 §2.2.1): the provider's own access token, for `scope`, with
 * its life capped by the task token's. `token_type` is the provider's (RFC 6749 §7.1).
 */
export interface GrantReleaseResponse {
  access_token: string;
  issued_token_type: typeof TOKEN_TYPE.ACCESS_TOKEN;
  token_type: string;
  expires_in: number;
  scope: string;
}

/** The registration entries a client's SVID lease names (the broker passes its `EntryStore`). */
export interface ClientEntries {
  get(id: string): Promise<{ readonly enabled: boolean; readonly metadata: { readonly owner?: string } } | undefined>;
}

export interface TokenExchangeDeps {
  issuer: string;
  authority: SigningAuthorities;
  bundle: { current(): Promise<TrustBundle> };
  entries: ClientEntries;
  resources: ResourceStore;
  tasks: TaskStore;
  /** What each task did before (policy's `context.task`); a new task's history is empty. */
  history?: Pick<TaskEventStore, 'history'>;
  leases: LeaseStore;
  /** The latest revocation this replica has heard of, read as each request begins (src/leases/ordering.ts). */
  epochs: RevocationEpoch;
  policies: PolicyStore;
  identityProviders: IdentityProviders;
  /** Whether the user or session was revoked after this subject token was issued (admin or signal revocations). */
  subjectRevoked?: (issuer: string, subject: string, sid: string | undefined, issuedAt: Date, email?: string) => Promise<boolean>;
  /** The user's latest reported risk level (Shared Signals), if any: it overrides the subject token's. */
  userRisk?: (issuer: string, subject: string) => Promise<string | undefined>;
  audit: AuditLog;
  clock: Clock;
  random: Random;
  limits: { defaultTtl: number; maxTtl: number; maxChainDepth: number };
  /**
   * DPoP at the token endpoint (RFC 9449 §5). `replay`: the per-process cache of proofs seen
   * (default: one per TokenExchange, on `clock`); `nonces`: when set, proofs must carry a server
   * nonce (§8; off by default); `algorithms`, `maxAgeSeconds`: as {@link verifyDpopProof} takes them.
   */
  dpop?: { replay?: DpopReplayCache; nonces?: DpopNonceSource; algorithms?: readonly DpopAlgorithm[]; maxAgeSeconds?: number };
  /** Issued tokens and policy decisions, counted once committed (refusals are counted by the HTTP layer, by error code). */
  metrics?: Pick<DomainMetrics, 'tokenIssued' | 'policyDecision'>;
  /** The token vault: an exchange whose `audience` names one of its providers releases the user's grant there (issue 20). */
  vault?: { vault: Pick<TokenVault, 'release'>; providers: Pick<ProviderStore, 'get'> };
}

/** What the HTTP layer passes besides the form: the request's `DPoP` header(s), unparsed (RFC 9449 §4.1). */
export interface ExchangeRequestHeaders {
  readonly dpop?: IncomingHttpHeaders['dpop'];
}

/** What the issued token is bound to (`cnf`): the client certificate (RFC 8705 §3.1) or a DPoP key (RFC 9449 §6.1). */
type TokenBinding = { readonly kind: 'mtls'; readonly clientCertificate: Uint8Array } | { readonly kind: 'dpop'; readonly dpopJkt: string };

/** The authenticated connector: who, how, and what its credential's lease and lifetime are. */
interface Connector {
  spiffeId: string;
  owner: string;
  trustDomain: string;
  /** The leases that must still be live at commit: the X.509-SVID's and/or the JWT-SVID's. */
  leaseIds: string[];
  method: ClientAuthMethod;
  /** The authenticating credential's expiry: the token never outlives it. */
  notAfter: Date;
}

/** The form parameters of a token exchange request (RFC 8693 §2.1), each given at most once. */
interface TokenExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  resource: string;
  authorizationDetails: McpToolDetail[];
  taskId?: string;
}

/** The user and the context the subject token establishes. */
interface Subject {
  user: PolicyUser;
  sid?: string;
  /** The user's email from the subject token, recorded so that signals naming users by email reach their leases. */
  email?: string;
  expiresAt: Date;
  /** Chained: the parent token. */
  parent?: { jti: string; act: Act; authorizationDetails: McpToolDetail[]; taskId: string; expiresAt: Date };
}

const SINGLE = ['grant_type', 'subject_token', 'subject_token_type', 'authorization_details', 'task_id', 'requested_token_type', 'scope', 'audience', 'actor_token', 'actor_token_type'];

const NOT_A_CLIENT = 'the client certificate is not a current X.509-SVID of an enabled registration entry';
const NOT_A_LIVE_JWT_SVID = 'client_assertion is not a current JWT-SVID of an enabled registration entry';
const PARENT_REVOKED = 'subject_token: the access token, or one it was exchanged from, was revoked or has expired';
const USER_REVOKED = 'subject_token: the user or session was revoked after this token was issued; sign in again';

/**
 * RFC 8693 §2.1, for both kinds of exchange: each parameter at most once, the token exchange
 * grant type, no actor token (the actor is the authenticated client), an access token requested.
 * Returns the reader of the form's string parameters.
 */
function parseCommon(form: Record<string, unknown>): (name: string) => string | undefined {
  for (const name of SINGLE) if (Array.isArray(form[name])) throw new InvalidRequest(`${name} is given more than once`);
  const str = (name: string) => (typeof form[name] === 'string' ? (form[name] as string) : undefined);
  if (str('grant_type') === undefined) throw new InvalidRequest('grant_type is missing');
  if (str('grant_type') !== TOKEN_EXCHANGE_GRANT_TYPE) throw new UnsupportedGrantType(`grant_type must be ${TOKEN_EXCHANGE_GRANT_TYPE}`);
  if (form.actor_token !== undefined) throw new InvalidRequest('actor_token is not supported: the actor is the authenticated client');
  checkRequestedTokenType(str('requested_token_type'));
  return str;
}

/** The error a lease refused at commit answers: the one a request made after the revocation gets. */
function lostRace(refusal: LeaseRefusal, client: Pick<Connector, 'leaseIds' | 'method'>) {
  const notAClient = () => new InvalidClient(client.method === 'jwt-spiffe' ? NOT_A_LIVE_JWT_SVID : NOT_A_CLIENT);
  if (refusal.reason === 'task-ended') return new InvalidGrant('the task has ended');
  if (refusal.reason === 'requires') return client.leaseIds.includes(refusal.lease) ? notAClient() : new InvalidGrant(PARENT_REVOKED);
  switch (refusal.kind) {
    case 'kill-switch':
    case 'connector':
      return notAClient(); // RFC 8705 §2: the client's SVID is revoked
    case 'user':
    case 'session':
    case 'email':
      return new InvalidGrant(USER_REVOKED);
    case 'jti':
      return new InvalidGrant(PARENT_REVOKED);
    default:
      return new InvalidGrant('a revocation naming this token arrived while it was being issued; none was issued');
  }
}


/**
 * The granted tools whose calls need a decision at call time (the token's `per_call`): those
 * the registry marks `per_call`, or all of them when the policy set reads the task's history
 * (a call on another server may change the answer before the token expires).
 */
function perCallTools(resource: Resource, granted: readonly McpToolDetail[], readsHistory: boolean): string[] {
  const tools = [...new Set(granted.flatMap((d) => d.tools))];
  return readsHistory ? tools : tools.filter((name) => resource.tools.find((t) => t.name === name)?.per_call === true);
}

/**
 * RFC 8693 token exchange, as a pipeline of small steps (authenticate the client → parse
 * the request → verify the subject token → resolve resource and tools → attenuate for
 * chains → decide policy per tool → commit the task and lease → mint). Every refusal is an
 * OAuth error and is audited; nothing is returned before its lease is committed.
 */
export class TokenExchange {
  readonly #replay: DpopReplayCache;

  readonly #metrics: Pick<DomainMetrics, 'tokenIssued' | 'policyDecision'>;

  constructor(private readonly deps: TokenExchangeDeps) {
    this.#replay = deps.dpop?.replay ?? new DpopReplayCache({ clock: deps.clock });
    this.#metrics = deps.metrics ?? noMetrics;
  }

  /**
   * `client`: the verified mTLS client certificate, if any; `headers.dpop`: the request's DPoP
   * header(s). The client authenticates with its X.509-SVID (RFC 8705 §2) and/or a JWT-SVID
   * client assertion (draft-ietf-oauth-spiffe-client-auth); the token is bound to the DPoP
   * proof's key when there is one (RFC 9449 §5), else to the client certificate — never to nothing.
   */
  async exchange(client: ExchangeClient | undefined, form: Record<string, unknown>, headers: ExchangeRequestHeaders = {}): Promise<TokenExchangeResponse | GrantReleaseResponse> {
    let audit: Record<string, unknown> = { client: client?.spiffeId };
    let user: { sub: string; iss: string } | undefined;
    try {
      // Before any check: a revocation committed after this point refuses the lease at commit.
      const epoch = await this.deps.epochs.begin();
      const connector = await this.authenticate(client, form);
      audit = { ...audit, client: connector.spiffeId, client_auth: connector.method };
      const binding = await this.bind(client, headers);
      audit = { ...audit, binding: binding.kind };
      // RFC 8693 §2.1: an audience (and no resource) naming a provider of the token vault.
      if (this.deps.vault && form.resource === undefined && typeof form.audience === 'string') {
        const released = await this.releaseGrant(connector, binding, form, (a) => (audit = { ...audit, ...a }), (u) => (user = u));
        return released;
      }
      const request = this.parse(form);
      audit = { ...audit, resource: request.resource };
      const subject = await this.verifySubject(request, connector);
      user = subject.user;
      audit = { ...audit, user: subject.user.sub };
      const resource = await this.deps.resources.get(request.resource);
      if (!resource) throw new InvalidTarget(`resource ${request.resource.slice(0, 256)} is not registered`); // RFC 8707 §2
      const wanted = this.resolveTools(resource, request.authorizationDetails);
      const chain = subject.parent ? this.attenuateChain(subject.parent, wanted) : { depth: 0, dropped: [] };
      const engine = await this.deps.policies.engine();
      const task = await this.task(request, subject, connector.spiffeId);
      // A task already under way (a named task_id, a chained hop) brings what it did before, on any server.
      const history = task.pending || !this.deps.history || !engine.readsTaskHistory ? EMPTY_TASK_HISTORY : await this.deps.history.history(task.id);
      const { granted, decisions, approvalTools } = this.decide(engine, { resource, wanted, subject, connector, depth: chain.depth, taskId: task.id, binding: binding.kind, history });
      audit = { ...audit, taskId: task.id, policyVersion: engine.version, decisions, ...(history.calls > 0 && { taskHistory: historyForAudit(history) }), ...(chain.dropped.length > 0 && { attenuated: chain.dropped }) };
      if (granted.length === 0) throw new AccessDenied('policy allows none of the requested tools and actions now');
      // A tool whose permit needs approval is granted for per-call decisions only: each call waits for, and is bound to, an approval.
      const perCall = [...new Set([...perCallTools(resource, granted, engine.readsTaskHistory), ...approvalTools])];
      const issued = await this.issue({ binding, connector, subject, resource, granted, perCall, task, audit, epoch });
      this.#metrics.tokenIssued({ chained: subject.parent !== undefined, binding: binding.kind });
      return issued;
    } catch (err) {
      const code = (err as { type?: string }).type ?? 'server_error';
      await this.deps.audit
        .append({ type: 'token.refused', subject: user?.sub, subjectIssuer: user?.iss, actor: (audit.client as string | undefined) ?? undefined, details: { ...audit, error: code } })
        .catch(() => undefined);
      if (isOAuthError(err)) throw err;
      throw new TemporarilyUnavailable('the broker cannot decide now', { cause: err });
    }
  }

  /**
   * The token vault (issue 20): the connector presents its own live task token (`subject_token`,
   * an access token of this broker, proving its key: the same certificate or DPoP key it is
   * bound to) and names the provider as `audience` and what it needs as `scope` (RFC 8693 §2.1).
   * Policy decides `use_grant` for the task's user; the vault then releases an access token of the
   * user's grant there. Without a grant that covers `scope`: `interaction_required` with the link
   * where the user links their account.
   */
  private async releaseGrant(
    connector: Connector,
    binding: TokenBinding,
    form: Record<string, unknown>,
    note: (audit: Record<string, unknown>) => void,
    noteUser: (user: { sub: string; iss: string }) => void,
  ): Promise<GrantReleaseResponse> {
    const { vault, providers } = this.deps.vault!;
    const str = parseCommon(form);
    if (form.authorization_details !== undefined) throw new InvalidRequest('authorization_details is for Writ\'s own resources; ask a provider of the token vault for a scope');
    if (str('subject_token_type') !== TOKEN_TYPE.ACCESS_TOKEN || str('subject_token') === undefined) throw new InvalidRequest(`the token vault takes the connector's task token: subject_token_type ${TOKEN_TYPE.ACCESS_TOKEN}`);
    const providerId = str('audience')!;
    note({ provider: providerId });
    const provider = await providers.get(providerId);
    if (!provider) throw new InvalidTarget(`audience: ${providerId.slice(0, 64)} is not a provider of the token vault`);
    const scopes = [...new Set((str('scope') ?? '').split(' ').filter(Boolean))];
    if (scopes.length === 0) throw new InvalidScope('scope: name what the task needs at the provider (RFC 8693 section 2.1)');
    const beyond = scopes.filter((sc) => !provider.scopes.includes(sc));
    if (beyond.length > 0) throw new InvalidScope(`scope: ${providerId} does not grant ${beyond.join(' ').slice(0, 200)}`);
    note({ scopes });

    const bundle = await this.deps.bundle.current();
    const claims = await verifyAccessToken(str('subject_token')!, bundle.jwtAuthorities, { issuer: this.deps.issuer, clock: this.deps.clock });
    const now = this.deps.clock.now();
    if (!(await this.deps.leases.tokenAlive(claims.jti, now))) throw new InvalidGrant(PARENT_REVOKED);
    // Who may use it: the task token's own connector, holding its key; or the resource (MCP server)
    // the token was issued for, by its own SVID, as for chaining (the server calls the SaaS for the
    // user). A token that leaked anywhere else is of no use here.
    let hops = actChain(claims.act).length - 1;
    if (claims.client_id === connector.spiffeId) {
      const held = 'jkt' in claims.cnf ? binding.kind === 'dpop' && binding.dpopJkt === claims.cnf.jkt : binding.kind === 'mtls' && certificateThumbprint(binding.clientCertificate) === claims.cnf['x5t#S256'];
      if (!held) throw new InvalidGrant('subject_token: it is bound to another key than the one this request proves (RFC 8705 section 3, RFC 9449 section 6)');
    } else {
      const audience = await this.deps.resources.get(claims.aud);
      if (!audience || audience.spiffeId !== connector.spiffeId) throw new InvalidGrant('subject_token: only the connector the task token was issued to, or the resource it is for, may use it here');
      hops += 1;
    }
    const task = await this.deps.tasks.get(claims.task_id);
    if (!task || task.endedAt) throw new InvalidGrant('subject_token: its task has ended');
    const user = { sub: claims.sub, iss: task.subjectIssuer, groups: task.subjectGroups, risk: (await this.deps.userRisk?.(task.subjectIssuer, claims.sub)) ?? task.subjectRisk ?? 'unknown' };
    noteUser(user);
    note({ taskId: task.id, user: user.sub });

    const engine = await this.deps.policies.engine();
    const history = this.deps.history && engine.readsTaskHistory ? await this.deps.history.history(task.id) : EMPTY_TASK_HISTORY;
    const decision = engine.decide({ kind: 'use_grant', user, connector, provider: { id: provider.id, issuer: provider.issuer, classification: provider.classification }, scopes, chainDepth: hops, taskId: task.id, binding: binding.kind, task: history });
    this.#metrics.policyDecision('use_grant', decision.allowed);
    note({ policyVersion: engine.version, policies: decision.policyIds, ...(decision.errors.length > 0 && { errors: decision.errors }) });
    if (!decision.allowed) throw new AccessDenied(`policy does not let ${connector.spiffeId} use ${user.sub}'s grant at ${provider.id} for ${scopes.join(' ')} now`);
    try {
      const released = await vault.release({ provider, user, scopes, connector: connector.spiffeId, taskId: task.id, jti: claims.jti, taskTokenExpiresAt: new Date(claims.exp * 1000), audit: { policyVersion: engine.version, policies: decision.policyIds } });
      return { access_token: released.accessToken, issued_token_type: TOKEN_TYPE.ACCESS_TOKEN, token_type: released.tokenType === 'bearer' ? 'Bearer' : released.tokenType, expires_in: released.expiresIn, scope: released.scopes.join(' ') };
    } catch (err) {
      if (err instanceof GrantRequired) throw new InteractionRequired(err.message, err.linkUrl, Math.max(1, Math.floor((err.linkExpiresAt.getTime() - now.getTime()) / 1000)));
      if (err instanceof VaultError && err.status === 403) throw new InvalidGrant(err.message);
      if (err instanceof VaultError && err.status === 502) throw new TemporarilyUnavailable(err.message, { cause: err });
      throw err;
    }
  }

  /**
   * The client: its X.509-SVID (RFC 8705 §2) and/or a JWT-SVID client assertion
   * (draft-ietf-oauth-spiffe-client-auth). Each credential must be live (its lease neither
   * expired nor revoked — the kill switch revokes both) and its entry enabled; given both,
   * they must name the same SPIFFE ID, and both must be live.
   */
  private async authenticate(client: ExchangeClient | undefined, form: Record<string, unknown>): Promise<Connector> {
    const assertion = hasClientAssertion(form) ? await this.authenticateAssertion(form) : undefined;
    const certificate = client ? await this.authenticateCertificate(client) : undefined;
    if (!certificate && !assertion) {
      throw new InvalidClient(`authenticate with the connector's X.509-SVID as the TLS client certificate (RFC 8705 §2) or a JWT-SVID as client_assertion (client_assertion_type ${JWT_SPIFFE_ASSERTION_TYPE})`);
    }
    if (certificate && assertion && certificate.spiffeId !== assertion.spiffeId) throw new InvalidClient('the client certificate and the client assertion name different clients');
    const first = (certificate ?? assertion)!;
    return {
      ...first,
      leaseIds: [...(certificate?.leaseIds ?? []), ...(assertion?.leaseIds ?? [])],
      // RFC 6749 §2.3: one method per request; with both, the certificate authenticates and the assertion must agree.
      method: certificate ? 'tls_client_auth' : 'jwt-spiffe',
    };
  }

  /** RFC 8705 §2: the client is the SVID's SPIFFE ID; the SVID must be live and its entry enabled. */
  private async authenticateCertificate(client: ExchangeClient): Promise<Connector> {
    const lease = await this.deps.leases.activeSvid(client.serial, client.fingerprint, this.deps.clock.now());
    const entry = lease?.entryId ? await this.deps.entries.get(lease.entryId) : undefined;
    if (!lease || !entry || !entry.enabled || lease.spiffeId !== client.spiffeId) {
      throw new InvalidClient(NOT_A_CLIENT);
    }
    return { spiffeId: client.spiffeId, owner: entry.metadata.owner ?? '', trustDomain: new URL(client.spiffeId).hostname, leaseIds: [lease.id], method: 'tls_client_auth', notAfter: client.notAfter };
  }

  /** draft-ietf-oauth-spiffe-client-auth: a JWT-SVID this broker issued, whose lease is live and whose entry is enabled. */
  private async authenticateAssertion(form: Record<string, unknown>): Promise<Connector> {
    const svid = await verifyClientAssertion(form, { issuer: this.deps.issuer, bundle: await this.deps.bundle.current(), clock: this.deps.clock });
    const now = this.deps.clock.now();
    const lease = (await this.deps.leases.tokenAlive(svid.jti, now)) ? await this.deps.leases.get(svid.jti) : undefined;
    const entry = lease?.entryId ? await this.deps.entries.get(lease.entryId) : undefined;
    if (!lease || lease.kind !== 'jwt-svid' || lease.spiffeId !== svid.spiffeId || lease.revokedAt || lease.expiresAt <= now || !entry || !entry.enabled) {
      throw new InvalidClient(NOT_A_LIVE_JWT_SVID);
    }
    return { spiffeId: svid.spiffeId, owner: entry.metadata.owner ?? '', trustDomain: new URL(svid.spiffeId).hostname, leaseIds: [lease.id], method: 'jwt-spiffe', notAfter: svid.expiresAt };
  }

  /**
   * RFC 9449 §5: with a DPoP proof (for POST to `<issuer>/oauth2/token`, the broker's public
   * URL — what the client sees, also behind a TLS-terminating proxy) the token is bound to its
   * key, even over mTLS; else to the client certificate (RFC 8705 §3). Neither: refused.
   */
  private async bind(client: ExchangeClient | undefined, headers: ExchangeRequestHeaders): Promise<TokenBinding> {
    const header = dpopHeader({ dpop: headers.dpop });
    if (header !== undefined) {
      const dpop = this.deps.dpop;
      const proof = await verifyDpopProof(header, {
        method: 'POST',
        url: `${this.deps.issuer}/oauth2/token`,
        clock: this.deps.clock,
        replay: this.#replay,
        ...(dpop?.nonces !== undefined && { nonce: dpop.nonces }),
        ...(dpop?.algorithms !== undefined && { algorithms: dpop.algorithms }),
        ...(dpop?.maxAgeSeconds !== undefined && { maxAgeSeconds: dpop.maxAgeSeconds }),
      });
      return { kind: 'dpop', dpopJkt: proof.jkt };
    }
    if (client) return { kind: 'mtls', clientCertificate: client.certificateDer };
    // Never an unbound bearer token: without a client certificate, the request must prove a key.
    throw new InvalidDpopProof('send a DPoP proof (RFC 9449 §4) in the DPoP header: without a client certificate, the token is bound to a DPoP key');
  }

  /** RFC 8693 §2.1, RFC 8707 §2, RFC 9396 §2. */
  private parse(form: Record<string, unknown>): TokenExchangeRequest {
    const str = parseCommon(form);
    if (form.scope !== undefined) throw new InvalidScope('scope is not used: name tools and actions in authorization_details (RFC 9396)');
    const subjectToken = str('subject_token');
    const subjectTokenType = str('subject_token_type');
    if (!subjectToken || !subjectTokenType) throw new InvalidRequest('subject_token and subject_token_type are required');
    const resources = form.resource === undefined ? [] : Array.isArray(form.resource) ? form.resource : [form.resource];
    if (resources.length !== 1) throw new InvalidTarget('give exactly one resource (RFC 8707 §2)');
    const resource = String(resources[0]);
    if (!URL.canParse(resource) || new URL(resource).hash) throw new InvalidTarget('resource must be an absolute URI without a fragment (RFC 8707 §2)');
    if (form.audience !== undefined && form.audience !== resource) throw new InvalidTarget('audience, when given, must be the resource (RFC 8693 §2.1)');
    const details = str('authorization_details');
    if (details === undefined) throw new InvalidRequest('authorization_details is required: name the mcp_tool tools and actions the task needs');
    const taskId = str('task_id');
    if (taskId !== undefined && !isUuid(taskId)) throw new InvalidRequest('task_id is not a task id this broker issued');
    return { subjectToken, subjectTokenType, resource, authorizationDetails: parseAuthorizationDetails(details), ...(taskId !== undefined && { taskId }) };
  }

  /** The user's identity: an ID token or JWT from an identity provider, or (chaining) a Writ access token. */
  private async verifySubject(request: TokenExchangeRequest, connector: { spiffeId: string }): Promise<Subject> {
    if (subjectTokenKind(request.subjectTokenType) === 'user') {
      const id = await this.deps.identityProviders.verify(request.subjectToken);
      const issuedAt = typeof id.claims.iat === 'number' ? new Date(id.claims.iat * 1000) : new Date(0);
      const email = typeof id.claims.email === 'string' ? id.claims.email : undefined;
      if (await this.deps.subjectRevoked?.(id.iss, id.sub, id.sid, issuedAt, email)) throw new InvalidGrant(USER_REVOKED);
      const risk = (await this.deps.userRisk?.(id.iss, id.sub)) ?? id.risk?.toLowerCase() ?? 'unknown';
      return { user: { sub: id.sub, iss: id.iss, groups: id.groups, risk }, ...(id.sid !== undefined && { sid: id.sid }), ...(email !== undefined && { email }), expiresAt: id.exp };
    }
    const bundle = await this.deps.bundle.current();
    const claims = await verifyAccessToken(request.subjectToken, bundle.jwtAuthorities, { issuer: this.deps.issuer, clock: this.deps.clock });
    if (!(await this.deps.leases.tokenAlive(claims.jti, this.deps.clock.now()))) throw new InvalidGrant(PARENT_REVOKED);
    // Only the resource the token was issued for may present it: a token that leaked elsewhere cannot be exchanged.
    const audience = await this.deps.resources.get(claims.aud);
    if (!audience || audience.spiffeId !== connector.spiffeId) throw new InvalidGrant('subject_token: only the resource the token was issued for may exchange it');
    const task = await this.deps.tasks.get(claims.task_id);
    if (!task || task.endedAt) throw new InvalidGrant('subject_token: its task has ended');
    return {
      user: { sub: claims.sub, iss: task.subjectIssuer, groups: task.subjectGroups, risk: (await this.deps.userRisk?.(task.subjectIssuer, claims.sub)) ?? task.subjectRisk ?? 'unknown' },
      ...(claims.sid !== undefined && { sid: claims.sid }),
      expiresAt: new Date(claims.exp * 1000),
      parent: { jti: claims.jti, act: claims.act, authorizationDetails: validateAuthorizationDetails(claims.authorization_details), taskId: claims.task_id, expiresAt: new Date(claims.exp * 1000) },
    };
  }

  /** Each requested tool must be one the resource has, for an action it performs; the class is the registry's or a declared higher one. */
  private resolveTools(resource: Resource, details: readonly McpToolDetail[]): { tool: Tool; action: Action; classification: Classification }[] {
    const wanted: { tool: Tool; action: Action; classification: Classification }[] = [];
    for (const d of details) {
      for (const name of d.tools) {
        const tool = resource.tools.find((t) => t.name === name);
        if (!tool) throw new InvalidAuthorizationDetails(`${resource.uri} has no tool "${name}"`);
        for (const action of d.actions) {
          if (!tool.actions.includes(action)) throw new InvalidAuthorizationDetails(`tool "${name}" does not ${action}`);
          const classification = effectiveClassification(tool.classification, d.data_classification);
          if (!wanted.some((w) => w.tool.name === name && w.action === action && w.classification === classification)) wanted.push({ tool, action, classification });
        }
      }
    }
    return wanted;
  }

  /**
   * A chained token never grants more than its parent: each requested action must be one
   * the parent granted, at a classification no higher than the parent granted that action
   * at; it names no more tools than the parent did; and the chain stays within the maximum
   * depth. What exceeds the parent is dropped (and audited); if nothing remains, access_denied.
   */
  private attenuateChain(parent: NonNullable<Subject['parent']>, wanted: { tool: Tool; action: Action; classification: Classification }[]): { depth: number; dropped: string[] } {
    const depth = nextChainDepth(parent.act, this.deps.limits.maxChainDepth);
    const ceiling = new Map<Action, number>();
    for (const d of parent.authorizationDetails) {
      const level = classificationLevel(d.data_classification ?? 'public');
      for (const a of d.actions) ceiling.set(a, Math.max(ceiling.get(a) ?? -1, level));
    }
    const dropped: string[] = [];
    const kept = wanted.filter((w) => {
      const max = ceiling.get(w.action);
      const ok = max !== undefined && classificationLevel(w.classification) <= max;
      if (!ok) dropped.push(`${w.tool.name} ${w.action} ${w.classification}`);
      return ok;
    });
    const parentTools = new Set(parent.authorizationDetails.flatMap((d) => d.tools)).size;
    if (new Set(kept.map((w) => w.tool.name)).size > parentTools) throw new AccessDenied(`a chained token names at most as many tools as its parent (${parentTools})`);
    if (kept.length === 0) throw new AccessDenied('the parent token allows none of the requested actions at the requested classification');
    wanted.splice(0, wanted.length, ...kept);
    return { depth, dropped };
  }

  /** One Cedar decision per tool and action (and, chained, a `delegate` decision per tool); the allowed ones are granted. */
  private decide(
    engine: PolicyEngine,
    ctx: { resource: Resource; wanted: { tool: Tool; action: Action; classification: Classification }[]; subject: Subject; connector: { spiffeId: string; owner: string; trustDomain: string }; depth: number; taskId: string; binding: Binding; history: TaskHistory },
  ): { granted: McpToolDetail[]; decisions: Record<string, unknown>[]; approvalTools: string[] } {
    const decisions: Record<string, unknown>[] = [];
    const approvalTools = new Set<string>();
    const allowed: { tool: string; action: Action; classification: Classification }[] = [];
    for (const w of ctx.wanted) {
      const tool = { name: w.tool.name, classification: w.tool.classification, egress: w.tool.egress === true };
      const user = engine.decide({ kind: 'action', action: w.action, user: ctx.subject.user, connector: ctx.connector, server: ctx.resource.uri, tool, classification: w.classification, chainDepth: ctx.depth, taskId: ctx.taskId, binding: ctx.binding, task: ctx.history });
      this.#metrics.policyDecision('action', user.allowed);
      let ok = user.allowed;
      const record: Record<string, unknown> = { tool: w.tool.name, action: w.action, allowed: user.allowed, policies: user.policyIds, ...(user.errors.length > 0 && { errors: user.errors }) };
      if (ctx.subject.parent) {
        const delegate = engine.decide({ kind: 'delegate', connector: ctx.connector, user: ctx.subject.user, chain: actChain(ctx.subject.parent.act), chainDepth: ctx.depth, server: ctx.resource.uri, tool, classification: w.classification, binding: ctx.binding, task: ctx.history });
        this.#metrics.policyDecision('delegate', delegate.allowed);
        ok = ok && delegate.allowed;
        record.delegate = { allowed: delegate.allowed, policies: delegate.policyIds };
      }
      if (user.approval) record.approval = { policies: user.approval.policies };
      decisions.push(record);
      if (ok) allowed.push({ tool: w.tool.name, action: w.action, classification: w.classification });
      if (ok && user.approval) approvalTools.add(w.tool.name);
    }
    const byTool = new Map<string, McpToolDetail>();
    for (const a of allowed) {
      const key = `${a.tool} ${a.classification}`;
      const d = byTool.get(key);
      byTool.set(key, { type: 'mcp_tool', tools: [a.tool], actions: [...(d?.actions ?? []), a.action], data_classification: a.classification });
    }
    return { granted: [...byTool.values()], decisions, approvalTools: [...approvalTools] };
  }

  /** The task the token belongs to: the parent's when chained; the named one (same user and connector); or a new one. */
  private async task(request: TokenExchangeRequest, subject: Subject, connector: string): Promise<{ id: string; pending: boolean }> {
    if (subject.parent) {
      if (request.taskId !== undefined && request.taskId !== subject.parent.taskId) throw new InvalidRequest('a chained token belongs to its parent\'s task');
      return { id: subject.parent.taskId, pending: false };
    }
    // A new task is only written once something is granted: refusals leave no task behind.
    if (request.taskId === undefined) return { id: this.deps.random.uuid(), pending: true };
    const task = await this.deps.tasks.get(request.taskId);
    if (!task || task.subject !== subject.user.sub || task.subjectIssuer !== subject.user.iss || task.connector !== connector) throw new InvalidRequest('task_id names no task of this user and connector');
    if (task.endedAt) throw new InvalidGrant('the task has ended');
    return { id: task.id, pending: false };
  }

  /** Mints the token, then commits its lease, its task when new, and the audit event together (group commit) before returning it. */
  private async issue(ctx: {
    binding: TokenBinding;
    connector: Connector;
    subject: Subject;
    resource: Resource;
    granted: McpToolDetail[];
    perCall: string[];
    task: { id: string; pending: boolean };
    audit: Record<string, unknown>;
    epoch: number;
  }): Promise<TokenExchangeResponse> {
    const connector = ctx.connector.spiffeId;
    const minted = await mintAccessToken(
      {
        issuer: this.deps.issuer,
        subject: ctx.subject.user.sub,
        audience: ctx.resource.uri,
        clientId: connector,
        ...(ctx.binding.kind === 'dpop' ? { dpopJkt: ctx.binding.dpopJkt } : { clientCertificate: ctx.binding.clientCertificate }),
        ...(ctx.subject.parent && { parentAct: ctx.subject.parent.act }),
        authorizationDetails: ctx.granted,
        taskId: ctx.task.id,
        ...(ctx.subject.sid !== undefined && { sid: ctx.subject.sid }),
        perCall: ctx.perCall,
        lifetime: {
          default: this.deps.limits.defaultTtl,
          maximum: this.deps.limits.maxTtl,
          certificateNotAfter: ctx.connector.notAfter,
          subjectTokenExpiresAt: ctx.subject.expiresAt,
          ...(ctx.subject.parent && { parentTokenExpiresAt: ctx.subject.parent.expiresAt }),
        },
      },
      this.deps.authority.jwtKey,
      this.deps.clock,
      this.deps.random,
    );
    const { user } = ctx.subject;
    try {
      await this.deps.leases.record(
        {
          id: minted.jti,
          kind: 'access-token',
          spiffeId: connector,
          subject: user.sub,
          subjectIssuer: user.iss,
          subjectEmail: ctx.subject.email ?? null,
          sid: ctx.subject.sid ?? null,
          taskId: ctx.task.id,
          audience: [ctx.resource.uri],
          // The binding: the certificate's SHA-256 (hex), or `jkt:` and the DPoP key's thumbprint (RFC 9449 §6.1).
          fingerprint: ctx.binding.kind === 'dpop' ? `jkt:${ctx.binding.dpopJkt}` : sha256(ctx.binding.clientCertificate, 'hex'),
          authorizationDetails: ctx.granted,
          parentId: ctx.subject.parent?.jti ?? null,
          issuedAt: minted.issuedAt,
          expiresAt: minted.expiresAt,
        },
        {
          // A new task is only written once something is granted: refusals leave no task behind.
          ...(ctx.task.pending && { task: { id: ctx.task.id, subject: user.sub, subjectIssuer: user.iss, connector, subjectGroups: user.groups, subjectRisk: user.risk !== 'unknown' ? user.risk : null } }),
          audit: { type: 'token.issued', subject: user.sub, subjectIssuer: user.iss, actor: connector, details: { ...ctx.audit, jti: minted.jti, granted: ctx.granted, expiresAt: minted.expiresAt.toISOString(), claims: minted.claims } },
          // Checked again at commit: the client's SVID and the parent token must still be live, and no revocation since `epoch` may name the token.
          basis: { epoch: ctx.epoch, requires: [...ctx.connector.leaseIds, ...(ctx.subject.parent ? [ctx.subject.parent.jti] : [])] },
        },
      );
    } catch (err) {
      // A revocation won the race: refused as a request made after it would be, and nothing was issued.
      if (err instanceof LeaseRefused) throw lostRace(err.refusal, ctx.connector);
      throw new TemporarilyUnavailable('the token could not be recorded; none was issued', { cause: err });
    }
    return {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.ACCESS_TOKEN,
      token_type: ctx.binding.kind === 'dpop' ? 'DPoP' : 'Bearer', // RFC 9449 §5; RFC 8705 §3
      expires_in: minted.expiresIn,
      task_id: ctx.task.id,
      authorization_details: ctx.granted,
    };
  }
}
