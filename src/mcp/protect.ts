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
 * 5. every JSON-RPC `tools/call` in the body names a tool the token's `authorization_details`
 *    (RFC 9396) grant, or 403 `insufficient_scope` (RFC 6750 §3.1) before the MCP transport
 *    sees the request (see `./tools` for which actions a call needs).
 *
 * Every challenge carries `resource_metadata` (RFC 9728 §5.1), the URL where
 * `protectedResourceMetadataHandler` serves the document naming Writ, as the MCP authorization
 * specification (2025-06-18) requires. When Writ or its keys cannot be reached the answer is
 * 503, never a pass (fail closed).
 *
 * Then the request's {@link WritIdentity} (user, connector chain, task, tools) is on `req.writ`,
 * and the MCP SDK's `AuthInfo` on `req.auth` with the identity in `extra.writ` (the SDK's
 * transports hand it to tool callbacks as `extra.authInfo`; read it with `writIdentityOf`).
 * `tools/list` answers list every tool the server has unless the server or transport is
 * wrapped with `grantedToolsOnly`, which lists only the granted ones.
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
import type { TLSSocket } from 'node:tls';
import type { FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters } from 'jose';
import { JwksUnavailable, RemoteJwks, StaticJwks, type KeySource } from '../jwt';
import { systemClock, type Clock } from '../core/clock';
import { InvalidRequest, InvalidToken, OAuthError, TemporarilyUnavailable } from '../tokens/errors';
import { certificateThumbprint, type AccessTokenClaims } from '../tokens/access-token';
import { verifyAccessToken } from '../tokens/verify';
import { mcpAuthInfo, writIdentity, type McpAuthInfo, type WritIdentity } from './identity';
import { introspector, type IntrospectionOptions } from './introspection';
import { protectedResourceMetadataUrl } from './metadata';
import { tlsFetch, type PemInput } from './tls-fetch';
import { requiredActions, requireTool, toolCalls, type ToolActions } from './tools';

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
}

// ---------------------------------------------------------------------------------------
// The middleware.
// ---------------------------------------------------------------------------------------

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

/** Builds the middleware that admits only requests with a valid Writ token bound to their TLS client certificate. */
export function writProtection(options: WritProtectionOptions): WritProtection {
  if (!URL.canParse(options.resource)) throw new Error('writProtection: "resource" must be an absolute URI');
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new Error('writProtection: "issuer" is required');
  const clock = options.clock ?? systemClock;
  const keys = keySource(options, clock);
  const introspect = options.introspect && introspector(options.introspect, { resource: options.resource, clock, fetch: options.fetch });
  const challenge = {
    realm: options.realm ?? options.resource,
    resourceMetadataUrl: options.resourceMetadataUrl === false ? undefined : (options.resourceMetadataUrl ?? protectedResourceMetadataUrl(options.resource)),
  };

  const verify = async (token: string, req: IncomingMessage): Promise<AccessTokenClaims> => {
    const claims = await verifySignedToken(token, keys, options, clock);
    checkCertificateBinding(claims, (options.clientCertificate ?? tlsPeerCertificate)(req));
    if (introspect) await introspect(token, claims);
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
      writReq.writ = writIdentity(claims, options.toolActions);
      writReq.auth = mcpAuthInfo(token, writReq.writ);
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
const quoted = (text: string, max = 512): string => `"${text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "'").slice(0, max)}"`;

/**
 * The `WWW-Authenticate` value for a refusal (RFC 6750 §3): `Bearer realm="…"`, then, unless
 * the request carried no credentials at all, `error` and `error_description`; and
 * `resource_metadata` (RFC 9728 §5.1) when given: the URL of the protected resource metadata.
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

