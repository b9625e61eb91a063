/**
 * Protecting an MCP server (a resource server fronting tools) with Writ access tokens.
 *
 * For every request, in this order, each a small check that names the rule it enforces:
 *
 * 1. a bearer token in the `Authorization` header (RFC 6750 §2.1), or 401 with a bare
 *    `WWW-Authenticate: Bearer` challenge (RFC 6750 §3);
 * 2. the JWT verifies with Writ's keys (`GET /oauth2/jwks`): ES256, `typ` at+jwt, `iss`,
 *    `aud` equal to this resource's URI, `exp` (RFC 9068 §4), or 401 `invalid_token`;
 * 3. the token is bound to the TLS client certificate of *this* request: `cnf.x5t#S256` is
 *    the SHA-256 thumbprint of the peer certificate's DER (RFC 8705 §3), or 401 `invalid_token`;
 * 4. when introspection is configured, Writ says the token is still active (RFC 7662), so
 *    revocation and task end take effect on the next call, or 401 `invalid_token`;
 * 5. every JSON-RPC `tools/call` in the body names a tool the token's `authorization_details`
 *    (RFC 9396) grant, or 403 `insufficient_scope` (RFC 6750 §3.1) before the MCP transport
 *    sees the request.
 *
 * Then the verified claims are on `req.writ`, and the MCP SDK's `AuthInfo` on `req.auth` (the
 * SDK's transports hand it to tool callbacks as `extra.authInfo`). When Writ or its keys
 * cannot be reached the answer is 503, never a pass (fail closed).
 *
 * Which action a tool call needs: an MCP `tools/call` does not say whether it reads or writes.
 * By default a tool may be called when it appears in any granted detail, whatever the action
 * (Writ granted it only after policy allowed the actions asked for). Give `toolActions` to
 * require specific actions per tool, e.g. `{ delete_repo: 'delete' }`: the tool and all its
 * actions must then be granted together in one detail; tools not listed keep the default.
 *
 * ```ts
 * const protect = writProtection({
 *   resource: 'https://mcp.example.com/github',           // as registered at Writ: the token's aud
 *   issuer: 'https://writ.example.com',
 *   jwksUri: 'https://writ.example.com/oauth2/jwks',
 *   ca: bundlePem,                                        // Writ's trust bundle
 *   introspect: { url: 'https://writ.example.com/oauth2/introspect', tls: { cert: svidPem, key: svidKey, ca: bundlePem } },
 * });
 * const app = express();
 * app.post('/mcp', express.json(), protect, (req, res) => transport.handleRequest(req, res, req.body));
 * https.createServer({ cert: svidPem, key: svidKey, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, app).listen(443);
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import type { FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters } from 'jose';
import { JwksUnavailable, RemoteJwks, StaticJwks, type KeySource } from '../attestation/jwks';
import { systemClock, type Clock } from '../core/clock';
import type { Action, McpToolDetail } from '../tokens/authorization-details';
import { InsufficientScope, InvalidRequest, InvalidToken, OAuthError, TemporarilyUnavailable } from '../tokens/errors';
import { certificateThumbprint, verifyAccessToken, type AccessTokenClaims } from '../tokens/mint';

// ---------------------------------------------------------------------------------------
// Options and the request's additions.
// ---------------------------------------------------------------------------------------

/** PEM text (or several, or DER buffers) as `tls.createSecureContext` takes them. */
export type PemInput = string | Buffer | readonly (string | Buffer)[];

/** TLS settings for talking to Writ, or for any HTTPS client with an X.509-SVID. */
export interface TlsClientOptions {
  /** Trust anchors: Writ's trust bundle (PEM). Without it, the system's CAs. */
  readonly ca?: PemInput;
  /** Client certificate chain (the X.509-SVID, PEM, leaf first) for mutual TLS. */
  readonly cert?: PemInput;
  /** Its private key (PEM). */
  readonly key?: PemInput;
  /** Replaces the host name check, e.g. to check the server's SPIFFE ID instead (X509-SVID §5). */
  readonly checkServerIdentity?: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

/** A key resolver for jose's `jwtVerify`. */
export type KeyFunction = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

export interface IntrospectionOptions {
  /** Writ's `POST /oauth2/introspect` (RFC 7662 §2). */
  readonly url: string;
  /** This server's own X.509-SVID (the registered resource's `spiffe_id`) and Writ's bundle: the introspection caller authenticates by mTLS. */
  readonly tls: TlsClientOptions & Required<Pick<TlsClientOptions, 'cert' | 'key'>>;
  /** Give up (503, fail closed) after this many milliseconds; 5000 by default. */
  readonly timeoutMs?: number;
}

export interface WritProtectionOptions {
  /** This resource's URI as registered at Writ: a token's `aud` must be exactly this (RFC 8707 §2, RFC 9068 §4). */
  readonly resource: string;
  /** Writ's issuer identifier (its RFC 8414 `issuer`): a token's `iss` must be exactly this. */
  readonly issuer: string;
  /** Writ's `jwks_uri` (`GET /oauth2/jwks`): fetched on first use, cached, refetched on an unknown `kid` at most every 30 s. */
  readonly jwksUri?: string;
  /** Or the keys themselves: a JWK Set, a {@link KeySource} or a key function. One of `jwksUri` and `keys` is required. */
  readonly keys?: JSONWebKeySet | KeySource | KeyFunction;
  /** Writ's trust bundle (PEM), to fetch `jwksUri` over TLS; without it, the system's CAs. */
  readonly ca?: PemInput;
  /** Ask Writ whether each token is still active, so that revocation and task end take effect at once. */
  readonly introspect?: IntrospectionOptions;
  /** The actions a call of each tool needs (see the module comment); unlisted tools need any granted action. */
  readonly toolActions?: Readonly<Record<string, Action | readonly Action[]>>;
  /** RFC 9728 §5.1: sent as `resource_metadata` in every challenge, for clients that discover the authorization server. */
  readonly resourceMetadataUrl?: string;
  /** RFC 6750 §3 `realm`; the resource URI by default. */
  readonly realm?: string;
  /** Tolerance for `exp`, `iat` and `nbf`, in seconds; 0 by default. */
  readonly clockSkew?: number;
  /**
   * The DER of the client certificate the request came with: by default the TLS peer
   * certificate of the request's own connection. Replace only behind a TLS-terminating proxy
   * you trust to forward it.
   */
  readonly clientCertificate?: (req: IncomingMessage) => Uint8Array | undefined;
  /** Largest request body read when no body parser ran before, in bytes; 4 MiB by default (the MCP SDK's limit). */
  readonly maxBodyBytes?: number;
  /** How to reach Writ (JWKS, introspection); by default {@link tlsFetch} with `ca` and `introspect.tls`. */
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  /** Called with every refusal (for logs or audit); the response is already decided. */
  readonly onRefusal?: (error: OAuthError, req: IncomingMessage) => void;
}

/**
 * What the MCP SDK calls `AuthInfo` (`@modelcontextprotocol/sdk/server/auth/types`): its
 * Streamable HTTP transport passes `req.auth` to request handlers as `extra.authInfo`.
 */
export interface McpAuthInfo {
  token: string;
  clientId: string;
  /** Writ grants `authorization_details`, not scopes: `<tool>:<action>` for each granted pair. */
  scopes: string[];
  expiresAt?: number;
  resource?: URL;
  extra?: Record<string, unknown>;
}

/** A request that passed {@link writProtection}. */
export interface WritRequest extends IncomingMessage {
  /** The verified claims of the access token. */
  writ?: AccessTokenClaims;
  /** The same, as the MCP SDK's `AuthInfo` (`extra.writ` holds the claims). */
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
}

// ---------------------------------------------------------------------------------------
// The middleware.
// ---------------------------------------------------------------------------------------

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
const DEFAULT_INTROSPECTION_TIMEOUT = 5000;

/** Builds the middleware that admits only requests with a valid Writ token bound to their TLS client certificate. */
export function writProtection(options: WritProtectionOptions): WritProtection {
  if (!URL.canParse(options.resource)) throw new Error('writProtection: "resource" must be an absolute URI');
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new Error('writProtection: "issuer" is required');
  const clock = options.clock ?? systemClock;
  const keys = keySource(options, clock);
  const introspect = options.introspect && introspector(options.introspect, options.fetch);
  const challenge = { realm: options.realm ?? options.resource, resourceMetadataUrl: options.resourceMetadataUrl };

  const verify = async (token: string, req: IncomingMessage): Promise<AccessTokenClaims> => {
    const claims = await verifySignedToken(token, keys, options, clock);
    checkCertificateBinding(claims, (options.clientCertificate ?? tlsPeerCertificate)(req));
    if (introspect) await introspect(token, claims, options.resource);
    return claims;
  };

  const protect = ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    const refuse = (err: unknown) => {
      const error = asOAuthError(err);
      options.onRefusal?.(error, req);
      sendBearerError(res, error, challenge);
    };
    const admit = async (): Promise<void> => {
      const token = bearerToken(req);
      if (token === undefined) throw new MissingToken();
      const claims = await verify(token, req);
      const body = await jsonBody(req as WritRequest, options.maxBodyBytes ?? DEFAULT_MAX_BODY);
      for (const tool of toolCalls(body)) requireTool(claims, tool, requiredActions(options.toolActions, tool));
      const writReq = req as WritRequest;
      writReq.writ = claims;
      writReq.auth = authInfo(token, claims);
    };
    // What the handlers after `next` throw is theirs to answer, not a refusal of the token.
    admit().then(() => next(), refuse);
  }) as WritProtection;
  protect.verify = verify;
  return protect;
}

/** RFC 6750 §3: a request with no authentication at all gets a challenge without an error code. */
class MissingToken extends OAuthError {
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

function keySource(options: WritProtectionOptions, clock: Clock): KeySource {
  const { keys, jwksUri } = options;
  if (keys !== undefined && jwksUri !== undefined) throw new Error('writProtection: give "jwksUri" or "keys", not both');
  if (typeof keys === 'function') return { getKey: keys };
  if (isKeySource(keys)) return keys;
  if (keys !== undefined) return new StaticJwks(keys);
  if (jwksUri === undefined) throw new Error('writProtection: "jwksUri" or "keys" is required');
  if (!URL.canParse(jwksUri) || new URL(jwksUri).protocol !== 'https:') throw new Error('writProtection: "jwksUri" must be an https URL');
  return new RemoteJwks(jwksUri, { clock, fetch: options.fetch ?? tlsFetch({ ...(options.ca !== undefined && { ca: options.ca }) }) });
}

async function verifySignedToken(token: string, keys: KeySource, options: WritProtectionOptions, clock: Clock): Promise<AccessTokenClaims> {
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
  if (clientCertificate === undefined)
    throw new InvalidToken('the token is bound to a client certificate and this connection presented none (RFC 8705 §3)');
  if (certificateThumbprint(clientCertificate) !== claims.cnf['x5t#S256'])
    throw new InvalidToken('the token is bound to another client certificate ("cnf" "x5t#S256", RFC 8705 §3.1)');
}

// ---------------------------------------------------------------------------------------
// Step 4: introspection (RFC 7662).
// ---------------------------------------------------------------------------------------

function introspector(options: IntrospectionOptions, fetchOption: typeof fetch | undefined) {
  if (!URL.canParse(options.url) || new URL(options.url).protocol !== 'https:') throw new Error('writProtection: "introspect.url" must be an https URL');
  const fetchImpl = fetchOption ?? tlsFetch(options.tls);
  const timeoutMs = options.timeoutMs ?? DEFAULT_INTROSPECTION_TIMEOUT;
  const unavailable = (why: string, cause?: unknown) => new TemporarilyUnavailable(`Writ cannot say whether the token is active: ${why}`, { cause });

  return async (token: string, claims: AccessTokenClaims, resource: string): Promise<void> => {
    let answer: unknown;
    try {
      const response = await fetchImpl(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        throw unavailable(`introspection answered HTTP ${response.status}`);
      }
      answer = await response.json();
    } catch (err) {
      if (err instanceof OAuthError) throw err;
      throw unavailable('introspection failed', err);
    }
    if (typeof answer !== 'object' || answer === null || typeof (answer as { active?: unknown }).active !== 'boolean') throw unavailable('the introspection response has no "active" member');
    const a = answer as { active: boolean; jti?: unknown; aud?: unknown };
    // RFC 7662 §2.2: anything but active true means the token may not be used.
    if (!a.active) throw new InvalidToken('the token is no longer active: revoked, its task ended, or expired (RFC 7662 §2.2)');
    if ((a.jti !== undefined && a.jti !== claims.jti) || (a.aud !== undefined && a.aud !== resource))
      throw new InvalidToken('introspection describes another token');
  };
}

// ---------------------------------------------------------------------------------------
// Step 5: tools (RFC 9396 authorization_details, RFC 6750 §3.1 insufficient_scope).
// ---------------------------------------------------------------------------------------

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The tool names of the JSON-RPC `tools/call` requests in an MCP message body (one message or
 * a batch). A `tools/call` without a string `params.name` yields `undefined`, which no grant
 * matches: it is refused rather than passed (fail closed).
 */
export function toolCalls(body: unknown): (string | undefined)[] {
  const messages = Array.isArray(body) ? body : [body];
  const tools: (string | undefined)[] = [];
  for (const m of messages) {
    if (!isRecord(m) || m.method !== 'tools/call') continue;
    const name = isRecord(m.params) ? m.params.name : undefined;
    tools.push(typeof name === 'string' ? name : undefined);
  }
  return tools;
}

function requiredActions(toolActions: WritProtectionOptions['toolActions'], tool: string | undefined): readonly Action[] {
  if (tool === undefined || toolActions === undefined || !Object.hasOwn(toolActions, tool)) return [];
  const actions = toolActions[tool]!;
  return typeof actions === 'string' ? [actions as Action] : (actions as readonly Action[]);
}

/**
 * Whether the token's `authorization_details` grant `tool`: with no `actions`, when any
 * granted detail names the tool; otherwise when one detail names the tool and every action.
 */
export function toolGranted(claims: Pick<AccessTokenClaims, 'authorization_details'>, tool: string | undefined, actions: Action | readonly Action[] = []): boolean {
  if (tool === undefined) return false;
  const needed: readonly Action[] = typeof actions === 'string' ? [actions] : actions;
  return claims.authorization_details.some((d: McpToolDetail) => d.tools.includes(tool) && needed.every((a) => d.actions.includes(a)));
}

/**
 * Refuses a tool call the token does not grant: throws {@link InsufficientScope} (403,
 * `WWW-Authenticate: Bearer error="insufficient_scope"`, RFC 6750 §3.1), which
 * {@link sendBearerError} answers. Usable inside an MCP tool callback with `extra.authInfo.extra.writ`.
 */
export function requireTool(claims: Pick<AccessTokenClaims, 'authorization_details'>, tool: string | undefined, actions: Action | readonly Action[] = []): void {
  if (toolGranted(claims, tool, actions)) return;
  const what = tool === undefined ? 'a tools/call without a tool name' : `the tool ${JSON.stringify(tool.slice(0, 128))}${typeof actions === 'string' || actions.length > 0 ? ` for ${[actions].flat().join(', ')}` : ''}`;
  throw new InsufficientScope(`the token's authorization_details do not grant ${what} (RFC 9396)`);
}

/** The Writ claims a protected request carries, from the MCP SDK's `extra.authInfo`. */
export function writClaimsOf(authInfo: { extra?: Record<string, unknown> } | undefined): AccessTokenClaims | undefined {
  return authInfo?.extra?.writ as AccessTokenClaims | undefined;
}

function authInfo(token: string, claims: AccessTokenClaims): McpAuthInfo {
  return {
    token,
    clientId: claims.client_id,
    scopes: claims.authorization_details.flatMap((d) => d.tools.flatMap((t) => d.actions.map((a) => `${t}:${a}`))),
    expiresAt: claims.exp,
    resource: new URL(claims.aud),
    extra: { writ: claims },
  };
}

/**
 * The parsed body: the one a body parser left on `req.body`, or, for a JSON POST that none
 * parsed, read here (at most `maxBytes`) and left on `req.body` for the MCP transport
 * (`transport.handleRequest(req, res, req.body)`). Read only after the token was verified.
 */
async function jsonBody(req: WritRequest, maxBytes: number): Promise<unknown> {
  if (req.body !== undefined) return req.body;
  if (req.method !== 'POST' || req.readableEnded) return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return undefined;
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
const quoted = (text: string, max = 512): string => `"${text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "'").slice(0, max)}"`;

/**
 * The `WWW-Authenticate` value for a refusal (RFC 6750 §3): `Bearer realm="…"`, then, unless
 * the request carried no credentials at all, `error` and `error_description`; and
 * `resource_metadata` (RFC 9728 §5.1) when configured.
 */
export function bearerChallenge(error: OAuthError | undefined, options: { realm?: string; resourceMetadataUrl?: string | undefined } = {}): string {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm=${quoted(options.realm)}`);
  if (error !== undefined && !(error instanceof MissingToken)) params.push(`error="${error.error}"`, `error_description=${quoted(error.error_description)}`);
  if (options.resourceMetadataUrl !== undefined) params.push(`resource_metadata=${quoted(options.resourceMetadataUrl, 2048)}`);
  return params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
}

/**
 * Answers a refusal: the error's status (401 `invalid_token`, 403 `insufficient_scope`, 400
 * `invalid_request`, 503 when Writ cannot answer), a `WWW-Authenticate` challenge on 401, 403
 * and 400 (RFC 6750 §3) and the JSON body `{error, error_description}` (`invalid_token` also
 * for a request without credentials, whose challenge carries no error code). Never cached.
 */
export function sendBearerError(res: ServerResponse, error: OAuthError, options: { realm?: string; resourceMetadataUrl?: string | undefined } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = error.status;
  if (error.status === 401 || error.status === 403 || error.error === 'invalid_request') res.setHeader('WWW-Authenticate', bearerChallenge(error, options));
  if (error.status === 503) res.setHeader('Retry-After', '5');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(error.toJSON()));
}

// ---------------------------------------------------------------------------------------
// RFC 9728 protected resource metadata.
// ---------------------------------------------------------------------------------------

/** RFC 9728 §3.1: where a resource's metadata lives — `/.well-known/oauth-protected-resource` inserted before its path. */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}`;
}

/**
 * RFC 9728 §2: the resource's metadata document — the authorization server (Writ), header-only
 * bearer tokens, certificate-bound tokens (RFC 8705 §3.4) and `mcp_tool` authorization details.
 */
export function protectedResourceMetadata(options: Pick<WritProtectionOptions, 'resource' | 'issuer'>): Record<string, unknown> {
  return {
    resource: options.resource,
    authorization_servers: [options.issuer],
    bearer_methods_supported: ['header'],
    tls_client_certificate_bound_access_tokens: true,
    authorization_details_types_supported: ['mcp_tool'],
  };
}

// ---------------------------------------------------------------------------------------
// fetch over node:https with TLS options (Node 20's fetch takes no client certificate).
// ---------------------------------------------------------------------------------------

/** Statuses whose responses have no body (Fetch standard "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * A WHATWG `fetch` over `node:https` that trusts `ca` and presents `cert`/`key` as the client
 * certificate: for reaching Writ, or for an MCP client's transport (the SDK's `fetch` option).
 * The response body streams (Server-Sent Events work); `signal` aborts the request and the
 * body; redirects are never followed (with `redirect: 'error'` one fails the request, as
 * fetch does). One connection per request.
 */
export function tlsFetch(tls: TlsClientOptions): typeof fetch {
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== 'https:') throw new TypeError(`tlsFetch: only https URLs are fetched, not ${url.protocol}`);
    const body = request.body === null ? undefined : Buffer.from(await request.arrayBuffer());
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => (headers[name] = value));
    if (body !== undefined) headers['content-length'] = String(body.length);
    const signal = request.signal;
    signal.throwIfAborted();
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: request.method,
          headers,
          agent: false,
          ...(tls.ca !== undefined && { ca: tls.ca as string | Buffer | (string | Buffer)[] }),
          ...(tls.cert !== undefined && { cert: tls.cert as string | Buffer | (string | Buffer)[] }),
          ...(tls.key !== undefined && { key: tls.key as string | Buffer | (string | Buffer)[] }),
          ...(tls.checkServerIdentity !== undefined && { checkServerIdentity: tls.checkServerIdentity }),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400 && request.redirect === 'error') {
            res.destroy();
            return reject(new TypeError(`tlsFetch: redirect refused (HTTP ${status})`));
          }
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const noBody = NULL_BODY.has(status) || request.method === 'HEAD';
          if (noBody) res.resume();
          resolve(
            new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status,
              statusText: res.statusMessage ?? '',
              headers: responseHeaders,
            }),
          );
        },
      );
      // Aborting destroys the connection: before the response that rejects, after it the body stream errors.
      const abort = () => req.destroy(signal.reason instanceof Error ? signal.reason : new DOMException('the request was aborted', 'AbortError'));
      const done = () => signal.removeEventListener('abort', abort);
      signal.addEventListener('abort', abort, { once: true });
      req.on('response', (res) => res.on('close', done));
      req.on('error', (err) => {
        done();
        reject(err);
      });
      req.end(body);
    });
  };
}
