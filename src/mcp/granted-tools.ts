/**
 * The MCP side of tool grants: `tools/list` answers only the tools the request's token grants,
 * and a `tools/call` of any other tool never reaches the server's handler. It works on JSON-RPC
 * messages, between an MCP SDK transport and the `McpServer` (or low-level `Server`) connected
 * to it, so it holds however the transport frames its answers (`application/json` or
 * `text/event-stream`), for replayed SSE events too, and in stateful sessions as in stateless.
 *
 * Which tools a request may see and call comes from the {@link WritIdentity} that
 * `writProtection` put on `req.auth` (the transport's `extra.authInfo`, SDK v1 and v2): its `tools`. A
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
import { systemClock, type Clock } from '../core/clock';
import { authInfoOf, writIdentityOf, type AuthInfoLike } from './identity';
import { toolNameOf } from './tools';

/** A JSON-RPC id. */
export type RequestId = string | number;

/** A JSON-RPC message as the SDK transports carry it (SDK v1 and v2 `JSONRPCMessage`). */
export type JsonRpcMessageLike = object;

/** What a transport passes with a message: the request's `AuthInfo` (SDK v1 and v2 `MessageExtraInfo`). */
export interface MessageExtraLike {
  authInfo?: AuthInfoLike | undefined;
}

/**
 * The part of an MCP SDK transport this module uses, declared here so that `@writ/mcp`
 * depends on no SDK version: SDK v1's `Transport` and SDK v2's (`@modelcontextprotocol/server`,
 * including `NodeStreamableHTTPServerTransport` and `PerRequestHTTPServerTransport`) are both
 * assignable to it (methods, so their parameters are checked bivariantly).
 */
export interface TransportLike {
  start(): Promise<void>;
  send(message: JsonRpcMessageLike, options?: unknown): Promise<void>;
  close(): Promise<void>;
  onmessage?(message: JsonRpcMessageLike, extra?: MessageExtraLike): void;
  onerror?(error: Error): void;
  onclose?(): void;
}

/** What has a `connect(transport)`: the SDK's `McpServer` and `Server` (v1 and v2). */
export interface McpServerLike {
  connect(transport: TransportLike): Promise<void>;
}

/** Options of {@link grantedToolsOnly}. */
export interface GrantedToolsOptions {
  /** The clock the token's remaining life is measured with (for `ttlMs`); the system clock by default. */
  readonly clock?: Clock;
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

type MessageHandler = (message: JsonRpcMessageLike, extra?: MessageExtraLike) => void;
type Transport = TransportLike;
type JSONRPCMessage = JsonRpcMessageLike;
/** A tools/list awaiting its answer: the tools its token grants, and when the token expires (ms since the epoch). */
interface PendingList {
  readonly tools: readonly string[];
  readonly expiresAtMs: number | undefined;
}
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
 *
 * Every filtered `tools/list` answer carries the MCP 2026-07-28 cache hints (SEP-2549)
 * `cacheScope: "private"` (the list is this token's: a shared cache must never serve it to
 * another user) and `ttlMs`: the server's own `ttlMs` when it set one, else 0 (do not reuse),
 * never more than the token's remaining life in milliseconds (`expiresAt`, measured with
 * `options.clock`), never negative. Clients of 2025 protocol versions ignore both members.
 *
 * Works with SDK v1 and v2 servers and transports, including v2's `createMcpHandler` (whose
 * per-request `McpServer` connects a per-request transport).
 */
export function grantedToolsOnly<T extends Transport | McpServerLike>(target: T, options: GrantedToolsOptions = {}): T {
  if ((target as unknown as Record<symbol, unknown>)[GUARDED]) return target;
  Object.defineProperty(target, GUARDED, { value: true });
  const clock = options.clock ?? systemClock;
  if (typeof (target as Transport).send === 'function') guardTransport(target as Transport, clock);
  else if (typeof (target as McpServerLike).connect === 'function') {
    const server = target as McpServerLike;
    const connect = server.connect.bind(server);
    server.connect = (transport: Transport) => connect(grantedToolsOnly(transport, options));
  } else throw new TypeError('grantedToolsOnly: expected an MCP SDK server (McpServer, Server) or transport');
  return target;
}

function guardTransport(transport: Transport, clock: Clock): void {
  /** tools/list request id → the tools its token grants, and its expiry. */
  const lists = new Map<RequestId, PendingList>();
  const send = transport.send.bind(transport);
  const refuse = (id: RequestId, code: number, message: string): void =>
    void send({ jsonrpc: '2.0', id, error: { code, message } }).catch((err: unknown) => transport.onerror?.(err instanceof Error ? err : new Error(String(err))));

  transport.send = (message: JSONRPCMessage, options?: unknown) => send(onlyGrantedTools(message, lists, clock.now().getTime()), options);

  /** The handlers this transport's guard wraps. */
  const guards = new WeakSet<MessageHandler>();
  const isGuarded = (handler: unknown) => typeof handler === 'function' && guards.has(handler as MessageHandler);
  const guard = (handler: MessageHandler): MessageHandler => {
    const guarded = ((message: JSONRPCMessage, extra?: MessageExtraLike) => {
      // A request reusing a pending tools/list's id would take its answer, or its cancellation (the SDK keys both by id).
      if (isRequest(message) && lists.has(message.id)) return refuse(message.id, INVALID_REQUEST, 'the id of a pending tools/list request was used again');
      if (isRequest(message) && (message.method === 'tools/list' || message.method === 'tools/call')) {
        const tools = writIdentityOf(extra?.authInfo)?.tools ?? [];
        if (message.method === 'tools/list') {
          if (lists.size >= PENDING_LISTS) return refuse(message.id, -32603, `more than ${PENDING_LISTS} tools/list requests are pending`);
          const expiresAt = (authInfoOf(extra?.authInfo) as { expiresAt?: unknown } | undefined)?.expiresAt;
          lists.set(message.id, { tools, expiresAtMs: typeof expiresAt === 'number' && Number.isFinite(expiresAt) ? expiresAt * 1000 : undefined });
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
function onlyGrantedTools(message: JSONRPCMessage, lists: Map<RequestId, PendingList>, nowMs: number): JSONRPCMessage {
  const m: unknown = message;
  if (!isRecord(m) || 'method' in m || (typeof m.id !== 'string' && typeof m.id !== 'number')) return message;
  const pending = lists.get(m.id);
  const granted = pending?.tools ?? [];
  if (!lists.delete(m.id) && !(isRecord(m.result) && 'tools' in m.result)) return message;
  if (!isRecord(m.result)) return message; // an error answer lists nothing
  const tools: unknown[] = Array.isArray(m.result.tools) ? m.result.tools.filter((t: unknown) => isRecord(t) && typeof t.name === 'string' && granted.includes(t.name)) : [];
  return { ...m, result: { ...m.result, tools, cacheScope: 'private', ttlMs: listTtlMs(m.result.ttlMs, pending?.expiresAtMs, nowMs) } } as unknown as JSONRPCMessage;
}

/**
 * SEP-2549 `ttlMs` of a filtered list: the server's own (a finite number ≥ 0) or else 0,
 * capped at the token's remaining life (0 when unknown or past), a whole number of milliseconds.
 */
export function listTtlMs(serverTtlMs: unknown, expiresAtMs: number | undefined, nowMs: number): number {
  const own = typeof serverTtlMs === 'number' && Number.isFinite(serverTtlMs) && serverTtlMs > 0 ? Math.floor(serverTtlMs) : 0;
  const remaining = expiresAtMs === undefined ? 0 : Math.max(0, Math.floor(expiresAtMs - nowMs));
  return Math.min(own, remaining);
}
