/**
 * Protecting an MCP server (a resource server fronting tools) with Writ access tokens.
 *
 * For every request, in this order, each a small check that names the rule it enforces:
 *
 * 1. a bearer token in the `Authorization` header (RFC 6750 §2.1), or 401 with a
 *    `WWW-Authenticate: Bearer` challenge without an error code (RFC 6750 §3);
 * 2. the JWT verifies with Writ's keys (`GET /oauth2/jwks`, cached, fetched again when a token
 *    names an unknown `kid`): ES256, `typ` at+jwt, `iss`, `aud` equal to this resource's URI,
 *    `exp` (RFC 9068 §4), or 401 `invalid_token`;
 * 3. the token is bound to the TLS client certificate of *this* request: `cnf.x5t#S256` is
 *    the SHA-256 thumbprint of the peer certificate's DER (RFC 8705 §3), or 401 `invalid_token`;
 * 4. when introspection is configured, Writ says the token is still active (RFC 7662; an
 *    answer is reused for at most a second), so revocation and task end take effect within a
 *    second, or 401 `invalid_token` (see `./introspection`);
 * 5. the MCP 2026-07-28 standard headers agree with the body (SEP-2243, see `./headers`): when
 *    the request carries `Mcp-Method`/`Mcp-Name` (required from `MCP-Protocol-Version`
 *    2026-07-28), they name the body's `method` and `params.name`/`params.uri`, or 400 with the
 *    JSON-RPC error -32020 HeaderMismatch. So a gateway in front of this server may authorize
 *    on the headers alone: a request whose headers say something the body does not never gets
 *    here. Legacy requests without the headers pass as before;
 * 6. every JSON-RPC `tools/call` in the body names a tool the token's `authorization_details`
 *    (RFC 9396) grant, or 403 `insufficient_scope` (RFC 6750 §3.1) before the MCP transport
 *    sees the request (see `./tools` for which actions a call needs). The challenge says what
 *    to ask for (per-tool step-up, SEP-2350): `scope="…"` when `toolScopes` maps the tool, and
 *    `authorization_details="<base64url JSON>"`, the RFC 9396 array to request
 *    (`src/tokens/step-up.ts`, `parseStepUpChallenge` reads it); the JSON body carries the same
 *    array as `authorization_details`;
 * 7. with `decisions`, each granted `tools/call` is decided again by Writ's AuthZEN PDP, as
 *    policy says now (see `./decisions`): a denial is JSON-RPC error -32001, no decision -32603.
 *    Tools the token lists in `per_call` are always decided (over `introspect.tls` when
 *    `decisions` is not given; a server with neither refuses their calls, -32603);
 * 8. each call let through is reported to Writ with how it ended (task history, `./reporter`),
 *    in the background; while the buffer of unsent reports is full, calls are refused (-32603).
 *
 * Every challenge carries `resource_metadata` (RFC 9728 §5.1), the URL where
 * `protectedResourceMetadataHandler` serves the document naming Writ, as the MCP authorization
 * specification (2025-06-18) requires. When Writ or its keys cannot be reached the answer is
 * 503, never a pass (fail closed).
 *
 * Then the request's {@link WritIdentity} (user, connector chain, task, tools) is on `req.writ`,
 * and the MCP SDK's `AuthInfo` on `req.auth` with the identity in `extra.writ` (the SDK's
 * transports hand it to tool callbacks as `extra.authInfo` in SDK v1, `ctx.http.authInfo` in
 * SDK v2; read it with `writIdentityOf(extra)` / `writIdentityOf(ctx)`).
 * `tools/list` answers list every tool the server has unless the server or transport is
 * wrapped with `grantedToolsOnly`, which lists only the granted ones.
 *
 * This middleware is the recommended way to protect a server with either SDK version. SDK
 * v2's `requireBearerAuth` with `writTokenVerifier` (`./verifier`) also works, with
 * `writBinding` after it, but is weaker: a verifier sees no connection, so the RFC 8705 binding
 * needs that second middleware (until then nothing is granted); Writ being unreachable is 400
 * there, not 503 with `Retry-After`; its challenges have no `realm`, its answers no
 * `Cache-Control: no-store`; and it checks neither the 2026-07-28 headers nor tool grants.
 *
 * With SDK v2 (`@modelcontextprotocol/server`, `/node`), the stateless 2026-07-28 handler:
 *
 * ```ts
 * const handler = createMcpHandler(() => grantedToolsOnly(buildMcpServer()));
 * const node = toNodeHandler(handler);
 * app.post('/github', express.json(), protect, (req, res) => void node(req, res, req.body)); // pass the parsed body
 * ```
 *
 * ```ts
 * const resource = 'https://mcp.example.com/github';     // as registered at Writ: the token's aud
 * const protect = writProtection({
 *   resource,
 *   issuer: 'https://writ.example.com',
 *   jwksUri: 'https://writ.example.com/oauth2/jwks',
 *   ca: bundlePem,                                        // Writ's trust bundle
 *   introspect: { url: 'https://writ.example.com/oauth2/introspect', tls: { cert: svidPem, key: svidKey, ca: bundlePem } },
 * });
 * const app = express();
 * app.use(protectedResourceMetadataHandler({ resource, issuer: 'https://writ.example.com' }));
 * app.post('/github', express.json(), protect, async (req, res) => {
 *   const server = grantedToolsOnly(buildMcpServer());
 *   const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
 *   res.on('close', () => void server.close());
 *   await server.connect(transport);
 *   await transport.handleRequest(req, res, req.body);
 * });
 * https.createServer({ cert: svidPem, key: svidKey, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, app).listen(443);
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters } from 'jose';
import { JwksUnavailable, RemoteJwks, StaticJwks, type KeySource } from '../jwt';
import { systemClock, type Clock } from '../core/clock';
import { InvalidRequest, InvalidToken, OAuthError, oauthText, TemporarilyUnavailable } from '../tokens/errors';
import { certificateThumbprint, type AccessTokenClaims } from '../tokens/access-token';
import { classificationLevel, type Action, type Classification } from '../tokens/authorization-details';
import { verifyAccessToken } from '../tokens/verify';
import { mcpAuthInfo, writIdentity, type McpAuthInfo, type WritIdentity } from './identity';
import { introspector, type IntrospectionOptions } from './introspection';
import { protectedResourceMetadataUrl } from './metadata';
import { tlsFetch, type PemInput } from './tls-fetch';
import { requiredActions, requireTool, toolCallRequests, toolCalls, ToolNotGranted, type ToolActions } from './tools';
import { acceptsUrlElicitation, APPROVAL_STATE_PREFIX, ApprovalPending, CallDenied, decider, NO_DECISION, needsDecision, sendCallDenied, sendInputRequired, type DecisionOptions } from './decisions';
import { observeOutcomes } from './outcomes';
import { TaskEventReporter, type ReportingOptions } from './reporter';
import { randomUUID } from 'node:crypto';
import { checkMcpHeaders, HeaderMismatch, sendHeaderMismatch } from './headers';
import { formatStepUpChallengeParams, isScope, stepUpDetails, type StepUpDetail } from '../tokens/step-up';
import { ProxyTrust, type TrustedProxies } from '../tokens/client-cert';
import { DPOP_SIGNING_ALGORITHMS, DpopReplayCache, dpopHeader, InvalidDpopProof, isDpopError, UseDpopNonce, verifyDpopProof, type DpopNonceSource } from '../tokens/dpop';

// ---------------------------------------------------------------------------------------
// Options and the request's additions.
// ---------------------------------------------------------------------------------------

/** A key resolver for jose's `jwtVerify`. */
export type KeyFunction = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

export interface WritProtectionOptions {
  /** This resource's URI as registered at Writ: a token's `aud` must be exactly this (RFC 8707 §2, RFC 9068 §4). */
  readonly resource: string;
  /** Writ's issuer identifier (its RFC 8414 `issuer`): a token's `iss` must be exactly this. */
  readonly issuer: string;
  /**
   * Writ's `jwks_uri` (`GET /oauth2/jwks`): fetched on first use and cached for 10 minutes; a
   * token whose `kid` no cached key has makes it fetch again (Writ publishes a new key before it
   * signs with it), at most once every 30 s.
   */
  readonly jwksUri?: string;
  /** Or the keys themselves: a JWK Set, a {@link KeySource} or a key function. One of `jwksUri` and `keys` is required. */
  readonly keys?: JSONWebKeySet | KeySource | KeyFunction;
  /** Writ's trust bundle (PEM), to fetch `jwksUri` over TLS; without it, the system's CAs. */
  readonly ca?: PemInput;
  /** Ask Writ whether each token is still active, so that revocation and task end take effect within a second. */
  readonly introspect?: IntrospectionOptions;
  /** The actions a call of each tool needs (see `./tools`); unlisted tools need any granted action. */
  readonly toolActions?: ToolActions;
  /**
   * The OAuth scope (RFC 6749 §3.3) a client should ask for to call each tool: a 403 refusing
   * a `tools/call` of a mapped tool carries it as `scope="…"` (RFC 6750 §3, per-tool step-up).
   * Optional; Writ itself grants `authorization_details`, which every such challenge carries.
   */
  readonly toolScopes?: Readonly<Record<string, string>>;
  /**
   * RFC 9728 §5.1 `resource_metadata` in every challenge: by default
   * `protectedResourceMetadataUrl(resource)`, where `protectedResourceMetadataHandler` serves
   * the document; `false` leaves it out.
   */
  readonly resourceMetadataUrl?: string | false;
  /** RFC 6750 §3 `realm`; the resource URI by default. */
  readonly realm?: string;
  /** Tolerance for `exp`, `iat` and `nbf`, in seconds; 0 by default. */
  readonly clockSkew?: number;
  /**
   * The DER of the client certificate the request came with: by default the TLS peer
   * certificate of the request's own connection, or, from a {@link trustedProxies} peer, the
   * RFC 9440 `Client-Cert` it forwarded. Replacing it overrides both.
   */
  readonly clientCertificate?: (req: IncomingMessage) => Uint8Array | undefined;
  /**
   * Proxies that terminate TLS in front of this server and forward the client's certificate in
   * RFC 9440 `Client-Cert` (by their own X.509-SVID on the connection, or by source address).
   * `Client-Cert` from any other peer is refused (400), never believed; none is trusted by default.
   */
  readonly trustedProxies?: TrustedProxies;
  /** DPoP-bound tokens (RFC 9449 `cnf.jkt`, `Authorization: DPoP`): how their proofs are checked. */
  readonly dpop?: DpopOptions;
  /** Largest request body read when no body parser ran before, in bytes; 4 MiB by default (the MCP SDK's limit). */
  readonly maxBodyBytes?: number;
  /** How to reach Writ (JWKS, introspection); by default {@link tlsFetch} with `ca` and `introspect.tls`. */
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  /**
   * A decision per `tools/call` from Writ's AuthZEN PDP (after the token's grants are checked): a
   * denial is answered as JSON-RPC error -32001, no decision as -32603 (closed), and the tool never runs.
   */
  readonly decisions?: DecisionOptions;
  /**
   * Task history: each `tools/call` let through, and how it ended, reported to Writ in the
   * background (see `./reporter`). On by default whenever this server's SVID is known (from
   * `decisions` or `introspect`); `false` turns it off. Calls are refused while the bounded
   * buffer of unsent reports is full.
   */
  readonly reporting?: ReportingOptions | false;
  /**
   * How long a retried call that waits for an approval (it carries the `requestState` Writ's
   * `input_required` gave) is held open while the approval is pending, in ms; 15000 by default.
   * The MCP client retries at once; holding it lets a human decide without the client giving up.
   */
  readonly approvalWaitMs?: number;
  /** Called with every refusal (for logs or audit); the response is already decided. */
  readonly onRefusal?: (error: OAuthError, req: IncomingMessage) => void;
}

/** How `writProtection` checks DPoP proofs (RFC 9449 §7.1). */
export interface DpopOptions {
  /** Require a server nonce in every proof (RFC 9449 §9); a proof without the current one gets 401 `use_dpop_nonce` and a `DPoP-Nonce`. */
  readonly nonces?: DpopNonceSource;
  /** The proofs' `jti`s seen, to refuse a replay (RFC 9449 §11.1); one per middleware by default. */
  readonly replay?: DpopReplayCache;
  /** How old a proof may be (its `iat`), in seconds; 60 by default. */
  readonly maxAgeSeconds?: number;
  /**
   * The URL the client sent the request to, as `htu` must name it: by default the origin of
   * `resource` with the request's path, so that a proxy in front changes nothing.
   */
  readonly url?: (req: IncomingMessage) => string;
}

/** A request that passed {@link writProtection}. */
export interface WritRequest extends IncomingMessage {
  /** Who the request comes from: user, connector chain, task and tools, from the verified token. */
  writ?: WritIdentity;
  /** The same as the MCP SDK's `AuthInfo` (`extra.writ` holds the identity). */
  auth?: McpAuthInfo;
  /** The parsed JSON body (set here when no body parser ran before). */
  body?: unknown;
}

/** Express-style middleware; also usable from a plain `node:http(s)` handler with a `next` callback. */
export interface WritProtection {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  /**
   * Checks 2–4 alone for a token presented on `req`'s connection: the verified claims, or an
   * {@link OAuthError} (`invalid_token` 401, `temporarily_unavailable` 503).
   */
  verify(token: string, req: IncomingMessage): Promise<AccessTokenClaims>;
  /** Sends the buffered call reports now (before a graceful stop); resolves when sent or when Writ could not take them. */
  flush(): Promise<void>;
  /** Flushes, then lets no more calls through (each would be refused, its history not kept). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// The middleware.
// ---------------------------------------------------------------------------------------

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

/** The options the token checks (steps 2 and 4) need: shared by `writProtection` and `writTokenVerifier`. */
export type TokenCheckOptions = Pick<
  WritProtectionOptions,
  'resource' | 'issuer' | 'jwksUri' | 'keys' | 'ca' | 'introspect' | 'resourceMetadataUrl' | 'realm' | 'clockSkew' | 'fetch' | 'clock'
>;

/** Steps 2 and 4 and the challenge settings, built once from the options (one code path for every entry point). */
export interface TokenChecks {
  readonly clock: Clock;
  /** RFC 6750 §3 `realm` and RFC 9728 §5.1 `resource_metadata` of every challenge. */
  readonly challenge: { readonly realm: string; readonly resourceMetadataUrl: string | undefined };
  /** Step 2: the verified claims, or {@link InvalidToken} / {@link TemporarilyUnavailable}. */
  signed(token: string): Promise<AccessTokenClaims>;
  /** Step 4: resolves when Writ says the token is active (nothing to do without `introspect`). */
  active(token: string, claims: AccessTokenClaims): Promise<void>;
}

/** Validates the options and builds the token checks; throws at once on a configuration error. */
export function tokenChecks(options: TokenCheckOptions, who = 'writProtection'): TokenChecks {
  if (typeof options.resource !== 'string' || !URL.canParse(options.resource)) throw new Error(`${who}: "resource" must be an absolute URI`);
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new Error(`${who}: "issuer" is required`);
  const clock = options.clock ?? systemClock;
  const keys = keySource(options, clock);
  const introspect = options.introspect && introspector(options.introspect, { resource: options.resource, clock, fetch: options.fetch });
  return {
    clock,
    challenge: {
      realm: options.realm ?? options.resource,
      resourceMetadataUrl: options.resourceMetadataUrl === false ? undefined : (options.resourceMetadataUrl ?? protectedResourceMetadataUrl(options.resource)),
    },
    signed: (token) => verifySignedToken(token, keys, options, clock),
    active: async (token, claims) => {
      if (introspect) await introspect(token, claims);
    },
  };
}

/** Builds the middleware that admits only requests with a valid Writ token bound to their TLS client certificate. */
export function writProtection(options: WritProtectionOptions): WritProtection {
  const checks = tokenChecks(options);
  for (const [tool, scope] of Object.entries(options.toolScopes ?? {}))
    if (typeof scope !== 'string' || !isScope(scope)) throw new Error(`writProtection: "toolScopes" of ${JSON.stringify(tool)} is not an RFC 6749 §3.3 scope`);
  const challenge = { ...checks.challenge, ...(options.toolScopes !== undefined && { toolScopes: options.toolScopes }), ...(options.toolActions !== undefined && { toolActions: options.toolActions }) };

  const binding = senderBinding(options, checks.clock);
  const writ = writBase(options);
  // Tools the token marks per_call are decided even without `decisions`, over introspection's mTLS identity.
  const perCallTls = options.decisions?.tls ?? options.introspect?.tls;
  const decide = options.decisions ? decider(options.decisions, options.resource) : undefined;
  const decideRequired = decide ?? (perCallTls && decider({ url: `${writ}/access/v1/evaluation`, tls: perCallTls, ...(options.fetch && { fetch: options.fetch }) }, options.resource));
  const reporter = reporterOf(options, writ, checks.clock);

  const verify = async (token: string, req: IncomingMessage): Promise<AccessTokenClaims> => {
    const claims = await checks.signed(token);
    await binding(claims, token, presentedScheme(req), req);
    await checks.active(token, claims);
    return claims;
  };

  const protect = ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    const refuse = (err: unknown) => {
      const error = asOAuthError(err);
      options.onRefusal?.(error, req);
      if (error instanceof HeaderMismatch) sendHeaderMismatch(res, error.detail);
      else if (error instanceof ApprovalPending && inputRequiredFits(req as WritRequest)) sendInputRequired(res, error);
      else if (error instanceof CallDenied) sendCallDenied(res, error);
      else sendBearerError(res, error, { ...challenge, ...(presentedScheme(req) === 'DPoP' && { scheme: 'DPoP' as const }) });
    };
    const admit = async (): Promise<void> => {
      const token = accessToken(req);
      if (token === undefined) throw new MissingToken();
      const claims = await verify(token, req);
      const body = await jsonBody(req as WritRequest, options.maxBodyBytes ?? DEFAULT_MAX_BODY);
      // Step 5 before step 6: what the headers say is what the tool check decided on.
      const mismatch = checkMcpHeaders(req.headers, body);
      if (mismatch !== undefined) throw new HeaderMismatch(mismatch);
      for (const tool of toolCalls(body)) requireTool(claims, tool, requiredActions(options.toolActions, tool));
      const calls = toolCallRequests(body).map((c) => ({ tool: c.name!, requestId: c.id, args: c.arguments, params: c.params, callId: randomUUID(), actions: callActions(claims, c.name!, options.toolActions) }));
      // A call whose report would find no room does not run: its history could not be kept.
      if (reporter && calls.length > 0 && !reporter.accepting) throw new CallDenied(NO_DECISION, 'the task history cannot be recorded now (Writ has not taken this server\'s call reports); try again later', calls[0]!.requestId);
      // Step 7: each granted call, as policy decides now (always for the token's per_call tools).
      for (const call of calls) {
        const required = needsDecision(claims, call.tool);
        if (required && !decideRequired) throw new CallDenied(NO_DECISION, `${call.tool}: every call needs a decision from Writ (the token's per_call), and this server is configured for none (decisions or introspect)`, call.requestId);
        const ask = required ? decideRequired : decide;
        if (ask) await untilApproved(() => ask(claims, call, required), call.params, options.approvalWaitMs ?? 15_000);
      }
      if (reporter && calls.length > 0) {
        observeOutcomes(res, calls.map((c) => c.requestId), (outcomes) =>
          calls.forEach((c, i) => {
            const touched = options.reporting ? options.reporting.resourceOf?.(c.tool, c.args) : undefined;
            reporter.add({ task_id: claims.task_id, call_id: c.callId, tool: c.tool, actions: c.actions, ...classificationOf(claims, c.tool), ...(touched !== undefined && { resource: touched }), outcome: outcomes[i]! });
          }),
        );
      }
      const writReq = req as WritRequest;
      writReq.writ = writIdentity(claims, options.toolActions);
      writReq.auth = mcpAuthInfo(token, writReq.writ, checks.challenge.resourceMetadataUrl);
    };
    // What the handlers after `next` throw is theirs to answer, not a refusal of the token.
    admit().then(() => next(), refuse);
  }) as WritProtection;
  protect.verify = verify;
  protect.flush = async () => reporter?.flush();
  protect.close = async () => reporter?.close();
  return protect;
}

/**
 * Decides; a retried call that waits for an approval (its `requestState` names one) is held and
 * decided again every half second while it is pending, up to `waitMs`, so a human can decide.
 */
async function untilApproved(decide: () => Promise<void>, params: Record<string, unknown> | undefined, waitMs: number): Promise<void> {
  const retried = typeof params?.requestState === 'string' && params.requestState.startsWith(APPROVAL_STATE_PREFIX);
  const deadline = Date.now() + (retried ? waitMs : 0);
  for (;;) {
    try {
      return await decide();
    } catch (err) {
      if (!(err instanceof ApprovalPending) || Date.now() + 500 > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** An `input_required` result answers one `tools/call` whose client takes URL elicitations; anything else gets the -32001 error naming the URL. */
function inputRequiredFits(req: WritRequest): boolean {
  const calls = Array.isArray(req.body) ? req.body : [req.body];
  if (calls.length !== 1) return false;
  return acceptsUrlElicitation((calls[0] as { params?: unknown } | undefined)?.params);
}

/**
 * Where Writ's API is reached, for the endpoints not configured by URL: the prefix of the
 * introspection (or decision) URL, which this server reaches already; else the issuer.
 */
function writBase(options: WritProtectionOptions): string {
  for (const [url, suffix] of [[options.introspect?.url, '/oauth2/introspect'], [options.decisions?.url, '/access/v1/evaluation']] as const)
    if (url !== undefined && url.endsWith(suffix)) return url.slice(0, -suffix.length);
  return options.issuer.replace(/\/+$/, '');
}

/** The reporter `reporting` asks for: on whenever this server's SVID is known, unless `false`. */
function reporterOf(options: WritProtectionOptions, writ: string, clock: Clock): TaskEventReporter | undefined {
  if (options.reporting === false) return undefined;
  const tls = options.reporting?.tls ?? options.decisions?.tls ?? options.introspect?.tls;
  const fetchImpl = options.reporting?.fetch ?? (tls ? undefined : options.fetch);
  if (!tls && !fetchImpl) return undefined;
  return new TaskEventReporter({ ...options.reporting, url: options.reporting?.url ?? `${writ}/v1/task-events`, server: options.resource, ...(tls && { tls }), ...(fetchImpl && { fetch: fetchImpl }) }, clock);
}

/** The actions a call performs, as decided and reported: what `toolActions` requires, else every action the token grants the tool. */
function callActions(claims: AccessTokenClaims, tool: string, toolActions: ToolActions | undefined): Action[] {
  const required = requiredActions(toolActions, tool);
  if (required.length > 0) return [...required];
  return [...new Set(claims.authorization_details.filter((d) => d.tools.includes(tool)).flatMap((d) => d.actions))];
}

/** The highest classification the token grants the tool at (the broker takes it if above the registry's). */
function classificationOf(claims: AccessTokenClaims, tool: string): { classification?: Classification } {
  const declared = claims.authorization_details.filter((d) => d.tools.includes(tool)).flatMap((d) => (d.data_classification === undefined ? [] : [d.data_classification]));
  return declared.length === 0 ? {} : { classification: declared.reduce((a, b) => (classificationLevel(b) > classificationLevel(a) ? b : a)) };
}

/** RFC 6750 §3: a request with no authentication at all gets a challenge without an error code. */
export class MissingToken extends OAuthError {
  constructor() {
    super('invalid_token', 'a bearer token is required (RFC 6750 §2.1)', { status: 401 });
  }
}

/** An OAuth error for anything thrown on the way; what is not one fails closed as 503. */
function asOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  return new TemporarilyUnavailable('the token cannot be checked now', { cause: err });
}

// ---------------------------------------------------------------------------------------
// Step 1: the bearer token (RFC 6750 §2.1).
// ---------------------------------------------------------------------------------------

/** RFC 6750 §2.1 `b64token`. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
/** RFC 9449 §7.1: `Authorization: DPoP <token>`, the same token68 syntax. */
const DPOP = /^DPoP +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The scheme the request presents its access token with: `Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1); undefined for none. */
export function presentedScheme(req: IncomingMessage): 'Bearer' | 'DPoP' | undefined {
  const header = req.headers.authorization ?? '';
  if (/^Bearer(\s|$)/i.test(header)) return 'Bearer';
  if (/^DPoP(\s|$)/i.test(header)) return 'DPoP';
  return undefined;
}

/**
 * The access token of an `Authorization: Bearer` or `Authorization: DPoP` header (which one
 * binds which token is checked after verification); undefined without either. Throws like
 * {@link bearerToken}.
 */
export function accessToken(req: IncomingMessage): string | undefined {
  if (presentedScheme(req) !== 'DPoP') return bearerToken(req);
  if (new URL(req.url ?? '/', 'http://resource.invalid').searchParams.has('access_token'))
    throw new InvalidRequest('send the access token in the Authorization header (RFC 6750 §2.1), not in the URI');
  const match = DPOP.exec(req.headers.authorization!);
  if (!match) throw new InvalidRequest('the Authorization header is not "DPoP <token>" (RFC 9449 §7.1)');
  return match[1]!;
}

/**
 * The token of an `Authorization: Bearer` header; undefined when the request carries no
 * bearer credentials (no header, or another scheme). Throws {@link InvalidRequest} for a
 * malformed header, and for a token in the query (RFC 6750 §2.3, which this server does not
 * accept: URLs end up in logs).
 */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (new URL(req.url ?? '/', 'http://resource.invalid').searchParams.has('access_token'))
    throw new InvalidRequest('send the access token in the Authorization header (RFC 6750 §2.1), not in the URI');
  if (header === undefined || header === '') return undefined;
  if (!/^Bearer(\s|$)/i.test(header)) return undefined;
  const match = BEARER.exec(header);
  if (!match) throw new InvalidRequest('the Authorization header is not "Bearer <token>" (RFC 6750 §2.1)');
  return match[1]!;
}

// ---------------------------------------------------------------------------------------
// Step 2: the JWT (RFC 9068 §4).
// ---------------------------------------------------------------------------------------

const isKeySource = (k: unknown): k is KeySource => typeof k === 'object' && k !== null && typeof (k as KeySource).getKey === 'function';

function keySource(options: TokenCheckOptions, clock: Clock): KeySource {
  const { keys, jwksUri } = options;
  if (keys !== undefined && jwksUri !== undefined) throw new Error('writProtection: give "jwksUri" or "keys", not both');
  if (typeof keys === 'function') return { getKey: keys };
  if (isKeySource(keys)) return keys;
  if (keys !== undefined) return new StaticJwks(keys);
  if (jwksUri === undefined) throw new Error('writProtection: "jwksUri" or "keys" is required');
  if (!URL.canParse(jwksUri) || new URL(jwksUri).protocol !== 'https:') throw new Error('writProtection: "jwksUri" must be an https URL');
  return new RemoteJwks(jwksUri, { clock, fetch: options.fetch ?? tlsFetch({ ...(options.ca !== undefined && { ca: options.ca }) }) });
}

async function verifySignedToken(token: string, keys: KeySource, options: TokenCheckOptions, clock: Clock): Promise<AccessTokenClaims> {
  try {
    return await verifyAccessToken(token, keys, {
      issuer: options.issuer,
      audience: options.resource,
      clock,
      clockSkew: options.clockSkew ?? 0,
      errorCode: 'invalid_token',
    });
  } catch (err) {
    // Writ's keys could not be fetched: that says nothing about the token, so no 401 — and no pass.
    if ((err as { cause?: unknown }).cause instanceof JwksUnavailable) throw new TemporarilyUnavailable("Writ's token-signing keys cannot be fetched now", { cause: err });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// Step 3: the certificate binding (RFC 8705 §3).
// ---------------------------------------------------------------------------------------

/** The DER of the TLS client certificate of the request's connection, if it presented one. */
export function tlsPeerCertificate(req: IncomingMessage): Uint8Array | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate();
  return cert && cert.raw && cert.raw.length > 0 ? new Uint8Array(cert.raw) : undefined;
}

/**
 * RFC 8705 §3: a certificate-bound token is accepted only over a mutual-TLS connection whose
 * client certificate hashes to the token's `cnf.x5t#S256`. A token copied elsewhere is useless
 * without the private key of that certificate: TLS made the client prove it holds that key
 * (CertificateVerify) whether or not the server also checked the chain, so the binding holds
 * either way; still, serve with `requestCert: true, rejectUnauthorized: true` and Writ's bundle
 * as `ca` so that only SVIDs connect. Throws {@link InvalidToken}.
 */
export function checkCertificateBinding(claims: Pick<AccessTokenClaims, 'cnf'>, clientCertificate: Uint8Array | undefined): void {
  if (!('x5t#S256' in claims.cnf)) throw new InvalidToken('the token is DPoP-bound (cnf.jkt) and this resource server checks only certificate binding');
  if (clientCertificate === undefined)
    throw new InvalidToken('the token is bound to a client certificate and this connection presented none (RFC 8705 §3)');
  if (certificateThumbprint(clientCertificate) !== claims.cnf['x5t#S256'])
    throw new InvalidToken('the token is bound to another client certificate ("cnf" "x5t#S256", RFC 8705 §3.1)');
}

/**
 * Step 3 for either binding, as the token's `cnf` names it:
 * - `x5t#S256` (RFC 8705 §3): presented as `Bearer`, over a connection whose client certificate
 *   — the TLS peer's own, or the one a trusted proxy forwarded in `Client-Cert` (RFC 9440) —
 *   hashes to it;
 * - `jkt` (RFC 9449 §7.1): presented as `DPoP` (a DPoP-bound token sent as a bearer token is
 *   refused, §7.2) with one `DPoP` proof for this method and URL, signed by that key, carrying
 *   the token's hash (`ath`), fresh, not replayed, and with the server's nonce when required.
 * Throws {@link InvalidToken}, `invalid_dpop_proof` or `use_dpop_nonce` (401), or
 * {@link InvalidRequest} for a `Client-Cert` from a peer that is not a trusted proxy.
 */
function senderBinding(options: WritProtectionOptions, clock: Clock): (claims: AccessTokenClaims, token: string, scheme: 'Bearer' | 'DPoP' | undefined, req: IncomingMessage) => Promise<void> {
  const proxies = new ProxyTrust(options.trustedProxies);
  const replay = options.dpop?.replay ?? new DpopReplayCache({ clock });
  const origin = new URL(options.resource).origin;
  // The configured origin and the request's path only: an absolute-form target cannot pick the host the proof is compared with.
  const urlOf = options.dpop?.url ?? ((req: IncomingMessage) => `${origin}${new URL(req.url ?? '/', 'http://path.invalid').pathname}`);
  const certificateOf = (req: IncomingMessage): Uint8Array | undefined => {
    if (options.clientCertificate) return options.clientCertificate(req);
    const own = tlsPeerCertificate(req);
    // No proxies and no forwarded certificate (every direct request): nothing to parse.
    if (!proxies.configured && req.headers['client-cert'] === undefined) return own;
    // A proxy is known by its SPIFFE ID only when TLS verified its certificate against the bundle (a self-signed one could name any ID).
    const verified = (req.socket as Partial<TLSSocket>).authorized === true;
    const peer = { address: req.socket.remoteAddress, spiffeId: verified && own ? spiffeIdOf(own) : undefined };
    const forwarded = proxies.forwarded(req.headers, peer);
    // From a trusted proxy the TLS peer is the proxy: its own certificate is never the client's.
    if (forwarded !== undefined || (proxies.configured && proxies.trusts(peer))) return forwarded?.certificate;
    return own;
  };
  return async (claims, token, scheme, req) => {
    if ('jkt' in claims.cnf) {
      if (scheme !== 'DPoP') throw new InvalidToken('the token is DPoP-bound ("cnf" "jkt"): present it as "Authorization: DPoP" with a proof (RFC 9449 §7.2)');
      const proof = dpopHeader(req.headers);
      if (proof === undefined) throw new InvalidDpopProof('a DPoP-bound token needs a DPoP proof in the DPoP header (RFC 9449 §7.1)').forResource();
      try {
        await verifyDpopProof(proof, {
          method: req.method ?? 'GET',
          url: urlOf(req),
          accessToken: token,
          jkt: claims.cnf.jkt,
          clock,
          replay,
          ...(options.dpop?.nonces !== undefined && { nonce: options.dpop.nonces }),
          ...(options.dpop?.maxAgeSeconds !== undefined && { maxAgeSeconds: options.dpop.maxAgeSeconds }),
        });
      } catch (err) {
        // RFC 9449 §7.1: a resource server answers a bad proof with 401 and a DPoP challenge.
        throw isDpopError(err) ? err.forResource() : err;
      }
      return;
    }
    if (scheme !== 'Bearer') throw new InvalidToken('the token is bound to a client certificate ("cnf" "x5t#S256"): present it as "Authorization: Bearer" (RFC 8705 §3)');
    checkCertificateBinding(claims, certificateOf(req));
  };
}

/** The one SPIFFE ID in a certificate's URI SANs (a proxy's X.509-SVID), if it has exactly one. */
function spiffeIdOf(der: Uint8Array): string | undefined {
  try {
    const uris = (new X509Certificate(der).subjectAltName ?? '').split(', ').filter((n) => n.startsWith('URI:spiffe://'));
    return uris.length === 1 ? uris[0]!.slice(4) : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Step 5: the body, whose tools/call requests ./tools checks.
// ---------------------------------------------------------------------------------------

/**
 * The parsed body: the one a body parser left on `req.body`, or, for a JSON POST that none
 * parsed, read here (at most `maxBytes`) and left on `req.body` for the MCP transport
 * (`transport.handleRequest(req, res, req.body)`). Read only after the token was verified.
 */
async function jsonBody(req: WritRequest, maxBytes: number): Promise<unknown> {
  if (req.body !== undefined) return req.body;
  if (req.method !== 'POST' || req.readableEnded) return undefined;
  // What an MCP SDK transport may read as JSON is checked here: older ones take a Content-Type
  // with "application/json" anywhere in it (text/plain; x=application/json), so match as loosely.
  if (!(req.headers['content-type'] ?? '').toLowerCase().includes('application/json')) return undefined;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBytes) throw new OAuthError('invalid_request', `the body is larger than ${maxBytes} bytes`, { status: 413 });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw new OAuthError('invalid_request', `the body is larger than ${maxBytes} bytes`, { status: 413 });
    chunks.push(chunk);
  }
  try {
    req.body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new InvalidRequest('the body is not JSON');
  }
  return req.body;
}

// ---------------------------------------------------------------------------------------
// Answers (RFC 6750 §3).
// ---------------------------------------------------------------------------------------

/** RFC 6750 §3: `error_description` and `realm` are quoted strings of %x20-21 / %x23-5B / %x5D-7E. */
const quoted = (text: string, max = 512): string => `"${oauthText(text).slice(0, max)}"`;

/** How challenges are formatted: `realm`, `resource_metadata`, and the per-tool step-up maps. */
export interface ChallengeOptions {
  realm?: string;
  resourceMetadataUrl?: string | undefined;
  /** Tool → scope for `scope="…"` on a refused tool call (see `WritProtectionOptions.toolScopes`). */
  toolScopes?: Readonly<Record<string, string>>;
  /** The actions each tool requires, for the step-up `authorization_details` when the error does not say. */
  toolActions?: ToolActions;
  /** `DPoP` for a request that presented a DPoP-bound token (RFC 9449 §7.1): the challenge then also names the `algs` accepted. */
  scheme?: 'Bearer' | 'DPoP';
}

/** The step-up `authorization_details` for an error refusing one named tool (SEP-2350), else undefined. */
function stepUpOf(error: OAuthError | undefined, options: ChallengeOptions): { tool: string; actions: readonly Action[]; scope: string | undefined } | undefined {
  // A name no registry could hold (MCP tool names are 1 to 128 characters) asks for nothing.
  if (!(error instanceof ToolNotGranted) || error.tool === undefined || error.tool.length > 128) return undefined;
  const actions = error.actions.length > 0 ? error.actions : requiredActions(options.toolActions, error.tool);
  const scope = options.toolScopes !== undefined && Object.hasOwn(options.toolScopes, error.tool) ? options.toolScopes[error.tool] : undefined;
  return { tool: error.tool, actions, scope };
}

/**
 * The `WWW-Authenticate` value for a refusal (RFC 6750 §3): `Bearer realm="…"`, then, unless
 * the request carried no credentials at all, `error` and `error_description`; for a refused
 * tool call (`insufficient_scope` from `requireTool`) the step-up parameters `scope="…"`
 * (when `toolScopes` maps the tool) and `authorization_details="<base64url of the JSON
 * array>"` (`formatStepUpChallengeParams`, `src/tokens/step-up.ts`); and `resource_metadata`
 * (RFC 9728 §5.1) when given: the URL of the protected resource metadata.
 */
export function bearerChallenge(error: OAuthError | undefined, options: ChallengeOptions = {}): string {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm=${quoted(options.realm)}`);
  if (error !== undefined && !(error instanceof MissingToken)) params.push(`error="${error.error}"`, `error_description=${quoted(error.error_description)}`);
  const step = stepUpOf(error, options);
  if (step !== undefined) params.push(...formatStepUpChallengeParams(step));
  if (options.resourceMetadataUrl !== undefined) params.push(`resource_metadata=${quoted(options.resourceMetadataUrl, 2048)}`);
  const scheme = options.scheme ?? 'Bearer';
  if (scheme === 'DPoP') params.push(`algs="${DPOP_SIGNING_ALGORITHMS.join(' ')}"`); // RFC 9449 §7.1
  return params.length === 0 ? scheme : `${scheme} ${params.join(', ')}`;
}

/**
 * Answers a refusal: the error's status (401 `invalid_token`, 403 `insufficient_scope`, 400
 * `invalid_request`, 503 when Writ cannot answer), a `WWW-Authenticate` challenge on 401, 403
 * and 400 (RFC 6750 §3) and the JSON body `{error, error_description}` (`invalid_token` also
 * for a request without credentials, whose challenge carries no error code), plus
 * `authorization_details` (the step-up array, plain JSON) for a refused tool call. Never cached.
 */
export function sendBearerError(res: ServerResponse, error: OAuthError, options: ChallengeOptions = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = error.status;
  if (error.status === 401 || error.status === 403 || error.error === 'invalid_request') res.setHeader('WWW-Authenticate', bearerChallenge(error, options));
  if (error.status === 503) res.setHeader('Retry-After', '5');
  if (error instanceof UseDpopNonce && error.nonce !== '') res.setHeader('DPoP-Nonce', error.nonce); // RFC 9449 §9
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  const step = stepUpOf(error, options);
  const details: StepUpDetail[] | undefined = step && stepUpDetails(step.tool, step.actions);
  res.end(JSON.stringify(details === undefined ? error.toJSON() : { ...error.toJSON(), authorization_details: details }));
}

