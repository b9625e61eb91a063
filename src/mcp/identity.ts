/**
 * Who a request protected by `writProtection` comes from, as tool code reads it: the user, the
 * connectors acting for them, the task and the tools granted, all from the verified access
 * token. Express handlers find it on `req.writ`; MCP tool callbacks in the MCP SDK's `AuthInfo`
 * that its transports pass along: `extra.authInfo` (SDK v1), `ctx.http.authInfo` (SDK v2);
 * `writIdentityOf` takes any of the three.
 *
 * ```ts
 * server.registerTool('search', { inputSchema: { query: z.string() } }, async ({ query }, extra) => {
 *   const who = writIdentityOf(extra)!; // or (SDK v2) writIdentityOf(ctx); { user: 'alice', connectors: ['spiffe://…/agent'], taskId, tools }
 *   return { content: [{ type: 'text', text: `searching for ${who.user} via ${who.connector}` }] };
 * });
 * ```
 */
import type { McpToolDetail } from '../tokens/authorization-details';
import type { AccessTokenClaims, Act } from '../tokens/access-token';
import { grantedTools, type ToolActions } from './tools';

/** The verified identities behind a request, read from its Writ access token. */
export interface WritIdentity {
  /** The end user the call is made for: the token's `sub`, as Writ's identity provider named them. */
  readonly user: string;
  /** The connector that presented the token (its SPIFFE ID): `client_id`, the outermost `act.sub`. */
  readonly connector: string;
  /**
   * The delegation chain from the nested `act` claims (RFC 8693 §4.1): the connector that
   * presented the token first, then the one it acts for, and so on to the connector that first
   * exchanged the user's token. One entry unless connectors exchanged tokens onward.
   */
  readonly connectors: readonly string[];
  /** The task the token was issued for (`task_id`): Writ revokes all of a task's tokens when it ends. */
  readonly taskId: string;
  /** The tools this request may run here: named in `authorization_details`, with the actions `toolActions` requires. */
  readonly tools: readonly string[];
  /** The RFC 9396 `authorization_details` as granted: tools, actions and data classification. */
  readonly authorizationDetails: readonly McpToolDetail[];
  /** The user's session at the identity provider (`sid`), when Writ knew it. */
  readonly sessionId?: string;
  /** The verified claims themselves. */
  readonly claims: AccessTokenClaims;
}

/**
 * What the MCP SDK calls `AuthInfo` (v1 `@modelcontextprotocol/sdk/server/auth/types`, v2
 * `@modelcontextprotocol/server`): its Streamable HTTP transports pass `req.auth` to request
 * handlers, as `extra.authInfo` (SDK v1) or `ctx.http.authInfo` (SDK v2).
 */
export interface McpAuthInfo {
  token: string;
  clientId: string;
  /** Writ grants `authorization_details`, not scopes: `<tool>:<action>` for each granted pair. */
  scopes: string[];
  expiresAt?: number;
  resource?: URL;
  /** RFC 9728 §5.1: where the resource's metadata is (SDK v2 uses it in its scope challenges). */
  resourceMetadataUrl?: string;
  /**
   * `writ` holds the {@link WritIdentity}; `sub`, `act`, `task_id`, `cnf` are the token's claims
   * and `tools` the granted tool names, for code that reads plain fields. A token whose
   * certificate binding was not checked yet (`writTokenVerifier`) has none of these, only
   * `unboundClaims`.
   */
  extra?: Record<string, unknown>;
}

/** The plain members of {@link McpAuthInfo.extra} for a verified, bound token. */
export interface WritAuthExtra {
  readonly writ: WritIdentity;
  readonly sub: string;
  readonly act: Act;
  readonly task_id: string;
  readonly cnf: AccessTokenClaims['cnf'];
  readonly tools: readonly string[];
}

/** An `AuthInfo` as any SDK version shapes it: only `extra` is read. */
export interface AuthInfoLike {
  /** The bearer token as presented (the MCP SDK's `AuthInfo.token`). */
  token?: string | undefined;
  extra?: Record<string, unknown> | undefined;
}

/**
 * Where the identity of a request can be read from: an `AuthInfo`, SDK v1's `extra` (request
 * handler extra, with `authInfo`) or SDK v2's `ctx` (`ServerContext`, with `http.authInfo`).
 */
export type WritAuthSource = AuthInfoLike | { authInfo?: AuthInfoLike | undefined } | { http?: { authInfo?: AuthInfoLike | undefined } | undefined };

/** The connectors of an `act` chain, outermost (the current actor, RFC 8693 §4.1) first. */
export function actorChain(act: Act): string[] {
  const chain: string[] = [];
  for (let a: Act | undefined = act; a !== undefined; a = a.act) chain.push(a.sub);
  return chain;
}

/** The identities of verified claims; `toolActions` as the middleware was given them. */
export function writIdentity(claims: AccessTokenClaims, toolActions?: ToolActions): WritIdentity {
  const connectors = actorChain(claims.act);
  return {
    user: claims.sub,
    connector: connectors[0]!,
    connectors,
    taskId: claims.task_id,
    tools: grantedTools(claims, toolActions),
    authorizationDetails: claims.authorization_details,
    ...(claims.sid !== undefined && { sessionId: claims.sid }),
    claims,
  };
}

/** `<tool>:<action>` for each pair the claims grant. */
const scopesOf = (claims: AccessTokenClaims): string[] => claims.authorization_details.flatMap((d) => d.tools.flatMap((t) => d.actions.map((a) => `${t}:${a}`)));

/** The MCP SDK's `AuthInfo` for a verified, certificate-bound token, with the identity in `extra.writ`. */
export function mcpAuthInfo(token: string, identity: WritIdentity, resourceMetadataUrl?: string): McpAuthInfo {
  const { claims } = identity;
  const extra: WritAuthExtra = { writ: identity, sub: claims.sub, act: claims.act, task_id: claims.task_id, cnf: claims.cnf, tools: identity.tools };
  return {
    token,
    clientId: claims.client_id,
    scopes: scopesOf(claims),
    expiresAt: claims.exp,
    resource: new URL(claims.aud),
    ...(resourceMetadataUrl !== undefined && { resourceMetadataUrl }),
    extra: { ...extra },
  };
}

/**
 * The `AuthInfo` for a token whose signature, claims and introspection passed but whose RFC
 * 8705 certificate binding was not checked (a token verifier sees no connection): no scopes,
 * no identity, only `extra.unboundClaims`, so {@link writIdentityOf} is undefined and nothing is
 * granted until `writBinding` checks the binding (fail closed).
 */
export function unboundAuthInfo(token: string, claims: AccessTokenClaims, resourceMetadataUrl?: string): McpAuthInfo {
  return {
    token,
    clientId: claims.client_id,
    scopes: [],
    expiresAt: claims.exp,
    resource: new URL(claims.aud),
    ...(resourceMetadataUrl !== undefined && { resourceMetadataUrl }),
    extra: { unboundClaims: claims },
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The `AuthInfo` of a source: SDK v2's `ctx.http.authInfo`, SDK v1's `extra.authInfo`, or the
 * value itself when it is one.
 */
export function authInfoOf(source: WritAuthSource | undefined): AuthInfoLike | undefined {
  if (!isRecord(source)) return undefined;
  if ('http' in source) return isRecord(source.http) && isRecord(source.http.authInfo) ? (source.http.authInfo as AuthInfoLike) : undefined;
  if ('authInfo' in source) return isRecord(source.authInfo) ? (source.authInfo as AuthInfoLike) : undefined;
  return source as AuthInfoLike;
}

/**
 * The identity of a request that passed `writProtection` (or `writBinding`): from an
 * `AuthInfo`, SDK v1's `extra` or SDK v2's `ctx` in a tool callback or request handler;
 * undefined when the request did not pass it.
 *
 * ```ts
 * server.registerTool('search', { inputSchema: z.object({ query: z.string() }) }, async ({ query }, ctx) => {
 *   const who = writIdentityOf(ctx)!; // SDK v2; SDK v1: writIdentityOf(extra) or writIdentityOf(extra.authInfo)
 * });
 * ```
 */
export function writIdentityOf(source: WritAuthSource | undefined): WritIdentity | undefined {
  const identity = authInfoOf(source)?.extra?.writ as WritIdentity | undefined;
  return identity !== undefined && identity !== null && typeof identity === 'object' && typeof identity.user === 'string' ? identity : undefined;
}

/** The verified claims of a request that passed `writProtection`, from an `AuthInfo`, v1 `extra` or v2 `ctx`. */
export function writClaimsOf(source: WritAuthSource | undefined): AccessTokenClaims | undefined {
  return writIdentityOf(source)?.claims;
}
