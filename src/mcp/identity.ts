/**
 * Who a request protected by `writProtection` comes from, as tool code reads it: the user, the
 * connectors acting for them, the task and the tools granted, all from the verified access
 * token. Express handlers find it on `req.writ`; MCP tool callbacks on `extra.authInfo`, the
 * MCP SDK's `AuthInfo` that its transports pass along.
 *
 * ```ts
 * server.registerTool('search', { inputSchema: { query: z.string() } }, async ({ query }, extra) => {
 *   const who = writIdentityOf(extra.authInfo)!; // { user: 'alice', connectors: ['spiffe://…/agent'], taskId, tools }
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
  /** `writ` holds the {@link WritIdentity}. */
  extra?: Record<string, unknown>;
}

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

/** The MCP SDK's `AuthInfo` for a verified token, with the identity in `extra.writ`. */
export function mcpAuthInfo(token: string, identity: WritIdentity): McpAuthInfo {
  const { claims } = identity;
  return {
    token,
    clientId: claims.client_id,
    scopes: claims.authorization_details.flatMap((d) => d.tools.flatMap((t) => d.actions.map((a) => `${t}:${a}`))),
    expiresAt: claims.exp,
    resource: new URL(claims.aud),
    extra: { writ: identity },
  };
}

/**
 * The identity of a request that passed `writProtection`, from the MCP SDK's `extra.authInfo`
 * in a tool callback or request handler; undefined when the request did not pass it.
 */
export function writIdentityOf(authInfo: { extra?: Record<string, unknown> } | undefined): WritIdentity | undefined {
  const identity = authInfo?.extra?.writ as WritIdentity | undefined;
  return identity !== undefined && typeof identity === 'object' && typeof identity.user === 'string' ? identity : undefined;
}

/** The verified claims of a request that passed `writProtection`, from the MCP SDK's `extra.authInfo`. */
export function writClaimsOf(authInfo: { extra?: Record<string, unknown> } | undefined): AccessTokenClaims | undefined {
  return writIdentityOf(authInfo)?.claims;
}
