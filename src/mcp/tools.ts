/**
 * Which MCP tools a Writ access token lets a request run: the token's RFC 9396
 * `authorization_details` (type `mcp_tool`, naming tools and actions), read against the
 * JSON-RPC messages of the request. Refusals are RFC 6750 §3.1 `insufficient_scope`.
 *
 * An MCP `tools/call` does not say whether it reads or writes. By default a tool may be called
 * when it appears in any granted detail, whatever the action (Writ granted it only after
 * policy allowed the actions asked for). {@link ToolActions} require specific actions per
 * tool, e.g. `{ delete_repo: 'delete' }`: the tool and all its actions must then be granted
 * together in one detail; tools not listed keep the default.
 */
import type { Action, McpToolDetail } from '../tokens/authorization-details';
import { InsufficientScope } from '../tokens/errors';
import type { AccessTokenClaims } from '../tokens/access-token';

/** The actions a call of each tool needs; unlisted tools need any granted action. */
export type ToolActions = Readonly<Record<string, Action | readonly Action[]>>;

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
    tools.push(toolNameOf(m));
  }
  return tools;
}

/** The `tools/call` requests of a body with their JSON-RPC ids (for answering one of them). */
export function toolCallRequests(body: unknown): { name: string | undefined; id: unknown; arguments: unknown; params: Record<string, unknown> | undefined }[] {
  const messages = Array.isArray(body) ? body : [body];
  return messages
    .filter((m): m is Record<string, unknown> => isRecord(m) && m.method === 'tools/call')
    .map((m) => ({ name: toolNameOf(m), id: m.id, arguments: isRecord(m.params) ? m.params.arguments : undefined, params: isRecord(m.params) ? m.params : undefined }));
}

/** `params.name` of a `tools/call` request, when it is a string. */
export function toolNameOf(request: { params?: unknown }): string | undefined {
  const name = isRecord(request.params) ? request.params.name : undefined;
  return typeof name === 'string' ? name : undefined;
}

/** The actions `toolActions` requires for `tool` (none: any granted action will do). */
export function requiredActions(toolActions: ToolActions | undefined, tool: string | undefined): readonly Action[] {
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
 * The tools a request with this token may run here: every tool named in a granted detail,
 * with the actions `toolActions` requires of it, in the order the details name them.
 */
export function grantedTools(claims: Pick<AccessTokenClaims, 'authorization_details'>, toolActions?: ToolActions): string[] {
  const named = new Set(claims.authorization_details.flatMap((d) => d.tools));
  return [...named].filter((tool) => toolGranted(claims, tool, requiredActions(toolActions, tool)));
}

/**
 * Refuses a tool call the token does not grant: throws {@link InsufficientScope} (403,
 * `WWW-Authenticate: Bearer error="insufficient_scope"`, RFC 6750 §3.1), which
 * `sendBearerError` answers. Usable inside an MCP tool callback with
 * `writIdentityOf(extra.authInfo)?.claims`.
 */
export function requireTool(claims: Pick<AccessTokenClaims, 'authorization_details'>, tool: string | undefined, actions: Action | readonly Action[] = []): void {
  if (toolGranted(claims, tool, actions)) return;
  throw new ToolNotGranted(tool, typeof actions === 'string' ? [actions] : actions);
}

/**
 * {@link InsufficientScope} for one tool: which tool and actions a new token would need, so
 * that the 403 challenge can say what to ask for (per-tool step-up, SEP-2350).
 */
export class ToolNotGranted extends InsufficientScope {
  constructor(
    /** The refused tool; undefined for a `tools/call` without a tool name. */
    readonly tool: string | undefined,
    /** The actions the call needs (none: any granted action would do). */
    readonly actions: readonly Action[],
  ) {
    const what = tool === undefined ? 'a tools/call without a tool name' : `the tool ${JSON.stringify(tool.slice(0, 128))}${actions.length > 0 ? ` for ${actions.join(', ')}` : ''}`;
    super(`the token's authorization_details do not grant ${what} (RFC 9396)`);
  }
}
