/**
 * The MCP side of tool grants: `tools/list` answers only the tools the request's token grants,
 * and a `tools/call` of any other tool never reaches the server's handler. It works on JSON-RPC
 * messages, between an MCP SDK transport and the `McpServer` (or low-level `Server`) connected
 * to it, so it holds however the transport frames its answers (`application/json` or
 * `text/event-stream`), for replayed SSE events too, and in stateful sessions as in stateless.
 *
 * Which tools a request may see and call comes from the {@link WritIdentity} that
 * `writProtection` put on `req.auth` (the transport's `extra.authInfo`): its `tools`. A
 * message without one sees no tools and may call none (fail closed).
 *
 * ```ts
 * app.post('/mcp', express.json(), protect, async (req, res) => {
 *   const server = grantedToolsOnly(buildMcpServer());          // or grantedToolsOnly(transport)
 *   const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
 *   res.on('close', () => void server.close());
 *   await server.connect(transport);
 *   await transport.handleRequest(req, res, req.body);
 * });
 * ```
 */
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, MessageExtraInfo, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { writIdentityOf } from './identity';
import { toolNameOf } from './tools';

/** What has a `connect(transport)`: the SDK's `McpServer` and `Server`. */
export interface McpServerLike {
  connect(transport: Transport): Promise<void>;
}

/**
 * JSON-RPC error for a `tools/call` the token does not grant: "Invalid params" (-32602), as the
 * MCP SDK answers for a tool it does not have; the tool does not exist for this token.
 */
export const TOOL_NOT_GRANTED = -32602;

const GUARDED = Symbol.for('writ.grantedToolsOnly');
/** JSON-RPC "Invalid Request". */
const INVALID_REQUEST = -32600;
/** tools/list requests awaiting their answer, per transport; beyond this more are refused (never answered unfiltered). */
const PENDING_LISTS = 1024;

type MessageHandler = NonNullable<Transport['onmessage']>;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCancellation = (m: unknown): m is { params: { requestId: RequestId } } =>
  isRecord(m) && m.method === 'notifications/cancelled' && isRecord(m.params) && (typeof m.params.requestId === 'string' || typeof m.params.requestId === 'number');
const isRequest = (m: unknown): m is { method: string; id: RequestId; params?: unknown } =>
  isRecord(m) && typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number');

/**
 * Makes `tools/list` answer only the granted tools and refuses `tools/call` of others, on an MCP
 * SDK server (every transport it is connected to from now on) or on one transport (whether or
 * not a server is connected to it yet). Returns its argument, changed in place; applying it
 * twice changes nothing.
 *
 * A refused `tools/call` gets the JSON-RPC error {@link TOOL_NOT_GRANTED}; `writProtection`
 * refuses it earlier with HTTP 403 `insufficient_scope`, so this is the second line.
 */
export function grantedToolsOnly<T extends Transport | McpServerLike>(target: T): T {
  if ((target as unknown as Record<symbol, unknown>)[GUARDED]) return target;
  Object.defineProperty(target, GUARDED, { value: true });
  if (typeof (target as Transport).send === 'function') guardTransport(target as Transport);
  else if (typeof (target as McpServerLike).connect === 'function') {
    const server = target as McpServerLike;
    const connect = server.connect.bind(server);
    server.connect = (transport: Transport) => connect(grantedToolsOnly(transport));
  } else throw new TypeError('grantedToolsOnly: expected an MCP SDK server (McpServer, Server) or transport');
  return target;
}

function guardTransport(transport: Transport): void {
  /** tools/list request id → the tools its token grants. */
  const lists = new Map<RequestId, readonly string[]>();
  const send = transport.send.bind(transport);
  const refuse = (id: RequestId, code: number, message: string): void =>
    void send({ jsonrpc: '2.0', id, error: { code, message } }).catch((err: unknown) => transport.onerror?.(err instanceof Error ? err : new Error(String(err))));

  transport.send = (message: JSONRPCMessage, options?: Parameters<Transport['send']>[1]) => send(onlyGrantedTools(message, lists), options);

  /** The handlers this transport's guard wraps. */
  const guards = new WeakSet<MessageHandler>();
  const isGuarded = (handler: unknown) => typeof handler === 'function' && guards.has(handler as MessageHandler);
  const guard = (handler: MessageHandler): MessageHandler => {
    const guarded = ((message: JSONRPCMessage, extra?: MessageExtraInfo) => {
      // A request reusing a pending tools/list's id would take its answer, or its cancellation (the SDK keys both by id).
      if (isRequest(message) && lists.has(message.id)) return refuse(message.id, INVALID_REQUEST, 'the id of a pending tools/list request was used again');
      if (isRequest(message) && (message.method === 'tools/list' || message.method === 'tools/call')) {
        const tools = writIdentityOf(extra?.authInfo)?.tools ?? [];
        if (message.method === 'tools/list') {
          if (lists.size >= PENDING_LISTS) return refuse(message.id, -32603, `more than ${PENDING_LISTS} tools/list requests are pending`);
          lists.set(message.id, tools);
        } else {
          const name = toolNameOf(message);
          if (name === undefined || !tools.includes(name))
            return refuse(message.id, TOOL_NOT_GRANTED, `${name === undefined ? 'a tools/call without a tool name' : `Tool ${name.slice(0, 128)}`} is not granted by the access token (insufficient_scope)`);
        }
      } else if (isCancellation(message)) {
        // A cancelled request is never answered (MCP "Cancellation"): forget it.
        lists.delete(message.params.requestId);
      }
      handler(message, extra);
    }) as MessageHandler;
    guards.add(guarded);
    return guarded;
  };

  // The server installs its handler by assigning `transport.onmessage` (Protocol.connect), before
  // or after this runs: intercept the assignment, keeping whatever storage the transport has
  // (a field, or an accessor that forwards to an inner transport, as the Node Streamable HTTP one does).
  const descriptor = propertyDescriptor(transport, 'onmessage');
  let stored: MessageHandler | undefined = descriptor && 'value' in descriptor ? (descriptor.value as MessageHandler | undefined) : undefined;
  const read = descriptor?.get ? () => descriptor.get!.call(transport) as MessageHandler | undefined : () => stored;
  const write = descriptor?.set ? (h: MessageHandler | undefined) => void descriptor.set!.call(transport, h) : (h: MessageHandler | undefined) => void (stored = h);
  const current = read();
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: read,
    set: (handler: MessageHandler | undefined) => write(handler === undefined || isGuarded(handler) ? handler : guard(handler)),
  });
  if (current !== undefined && !isGuarded(current)) write(guard(current));
}

function propertyDescriptor(object: object, name: string): PropertyDescriptor | undefined {
  for (let o: object | null = object; o !== null; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, name);
    if (descriptor) return descriptor;
  }
  return undefined;
}

/**
 * The answer to a pending tools/list with only the granted tools in `result.tools`; other
 * messages as they are. An answer listing tools that no pending tools/list awaits (its request
 * was cancelled, or its id reused) lists none: it is never sent unfiltered.
 */
function onlyGrantedTools(message: JSONRPCMessage, lists: Map<RequestId, readonly string[]>): JSONRPCMessage {
  const m: unknown = message;
  if (!isRecord(m) || 'method' in m || (typeof m.id !== 'string' && typeof m.id !== 'number')) return message;
  const granted = lists.get(m.id) ?? [];
  if (!lists.delete(m.id) && !(isRecord(m.result) && 'tools' in m.result)) return message;
  if (!isRecord(m.result)) return message; // an error answer lists nothing
  const tools: unknown[] = Array.isArray(m.result.tools) ? m.result.tools.filter((t: unknown) => isRecord(t) && typeof t.name === 'string' && granted.includes(t.name)) : [];
  return { ...m, result: { ...m.result, tools } } as unknown as JSONRPCMessage;
}
