import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ListToolsRequestSchema, type JSONRPCMessage, type MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import type { AccessTokenClaims } from '../tokens/access-token';
import { grantedToolsOnly, listTtlMs, TOOL_NOT_GRANTED } from './granted-tools';
import { mcpAuthInfo, writIdentity } from './identity';

const claims: AccessTokenClaims = {
  iss: 'https://writ.example.test',
  sub: 'alice',
  aud: 'https://mcp.example.test/github',
  client_id: 'spiffe://ex.test/agent/assistant',
  act: { sub: 'spiffe://ex.test/agent/assistant' },
  cnf: { 'x5t#S256': 'A'.repeat(43) },
  authorization_details: [
    { type: 'mcp_tool', tools: ['search'], actions: ['read'] },
    { type: 'mcp_tool', tools: ['create_issue'], actions: ['write'] },
  ],
  task_id: 'task-1',
  iat: 1,
  exp: 2,
  jti: 'jti-1',
};
/** What `writProtection` hands the transport as `req.auth`. */
const authInfo = mcpAuthInfo('token', writIdentity(claims));

/** A transport whose `onmessage` is a plain field, as most SDK transports have. */
class FieldTransport implements Transport {
  readonly sent: JSONRPCMessage[] = [];
  onmessage?: Transport['onmessage'];
  onclose?: () => void;
  onerror?: (error: Error) => void;
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  async send(message: JSONRPCMessage): Promise<void> {
    this.sent.push(message);
  }
  /** A message from the client, with the request's auth as the Streamable HTTP transport passes it. */
  deliver(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    this.onmessage?.(message, extra);
  }
}

/** A transport whose `onmessage` is an accessor forwarding to an inner one, as the SDK's Node Streamable HTTP transport has. */
class ForwardingTransport implements Transport {
  readonly inner = new FieldTransport();
  get sent() {
    return this.inner.sent;
  }
  get onmessage() {
    return this.inner.onmessage;
  }
  set onmessage(handler) {
    this.inner.onmessage = handler;
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  send(message: JSONRPCMessage): Promise<void> {
    return this.inner.send(message);
  }
  deliver(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    this.inner.deliver(message, extra);
  }
}

const ran: string[] = [];
function githubServer(): McpServer {
  const server = new McpServer({ name: 'github', version: '1.0.0' });
  for (const name of ['search', 'create_issue', 'delete_repo'])
    server.registerTool(name, { description: name }, async () => {
      ran.push(name);
      return { content: [{ type: 'text', text: `${name} ran` }] };
    });
  return server;
}

const list = (id: number) => ({ jsonrpc: '2.0' as const, id, method: 'tools/list', params: {} });
const call = (id: number, name: unknown) => ({ jsonrpc: '2.0' as const, id, method: 'tools/call', params: { name, arguments: {} } });

/** The answer the server sent to request `id`, waiting for the server's handlers. */
async function answerTo(transport: { sent: JSONRPCMessage[] }, id: number): Promise<Record<string, any>> {
  for (let i = 0; i < 50; i++) {
    const answer = transport.sent.find((m) => 'id' in m && m.id === id && !('method' in m));
    if (answer) return answer as Record<string, any>;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no answer to request ${id}`);
}
const toolNames = (answer: Record<string, any>) => (answer.result.tools as { name: string }[]).map((t) => t.name);

beforeEach(() => void (ran.length = 0));

describe('tools/list answers only the tools the token grants', () => {
  it.each([
    ['on the McpServer, before it connects', async (server: McpServer, transport: Transport) => grantedToolsOnly(server).connect(transport)],
    ['on the transport, before the server connects', async (server: McpServer, transport: Transport) => server.connect(grantedToolsOnly(transport))],
    [
      'on the transport, after the server connected',
      async (server: McpServer, transport: Transport) => {
        await server.connect(transport);
        grantedToolsOnly(transport);
      },
    ],
  ])('%s', async (_, wire) => {
    for (const transport of [new FieldTransport(), new ForwardingTransport()]) {
      await wire(githubServer(), transport);
      transport.deliver(list(1), { authInfo });
      expect(toolNames(await answerTo(transport, 1))).toEqual(['search', 'create_issue']);
    }
  });

  it('lists no tools for a request that did not pass writProtection (no identity in authInfo)', async () => {
    const transport = new FieldTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    transport.deliver(list(1));
    transport.deliver(list(2), { authInfo: { token: 't', clientId: 'c', scopes: [] } });
    expect(toolNames(await answerTo(transport, 1))).toEqual([]);
    expect(toolNames(await answerTo(transport, 2))).toEqual([]);
  });

  it('filters per request: each answer follows the token of its own request', async () => {
    const transport = new FieldTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    const searchOnly = mcpAuthInfo('other', writIdentity({ ...claims, authorization_details: [claims.authorization_details[0]!] }));
    transport.deliver(list(1), { authInfo });
    transport.deliver(list(2), { authInfo: searchOnly });
    expect(toolNames(await answerTo(transport, 1))).toEqual(['search', 'create_issue']);
    expect(toolNames(await answerTo(transport, 2))).toEqual(['search']);
  });

  it('filters the answer of a low-level Server, keeping its other members (nextCursor)', async () => {
    const server = new Server({ name: 'github', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: ['search', 'delete_repo'].map((name) => ({ name, inputSchema: { type: 'object' as const } })),
      nextCursor: 'page-2',
    }));
    const transport = new FieldTransport();
    await grantedToolsOnly(server).connect(transport);
    transport.deliver(list(1), { authInfo });
    const answer = await answerTo(transport, 1);
    expect(toolNames(answer)).toEqual(['search']);
    expect(answer.result.nextCursor).toBe('page-2');
  });

  it('changes nothing when applied twice', async () => {
    const transport = new FieldTransport();
    const server = grantedToolsOnly(grantedToolsOnly(githubServer()));
    await server.connect(grantedToolsOnly(transport));
    grantedToolsOnly(transport);
    transport.deliver(list(1), { authInfo });
    transport.deliver(call(2, 'delete_repo'), { authInfo });
    expect(toolNames(await answerTo(transport, 1))).toEqual(['search', 'create_issue']);
    await answerTo(transport, 2);
    expect(transport.sent.filter((m) => 'id' in m && m.id === 2)).toHaveLength(1);
  });
});

describe('a tools/list answer is never sent unfiltered', () => {
  const ping = (id: number) => ({ jsonrpc: '2.0' as const, id, method: 'ping' });
  const cancel = (requestId: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/cancelled', params: { requestId } });
  /** Every tool any answer to `id` listed, once the server's handlers ran. */
  async function listedTo(transport: FieldTransport, id: number): Promise<string[]> {
    await answerTo(transport, id);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    return transport.sent.flatMap((m) => ('id' in m && m.id === id && 'result' in m && Array.isArray((m.result as any).tools) ? toolNames(m as any) : []));
  }

  it.each([
    ['a ping reusing its id, then a cancellation (which aborts the ping)', [list(1), ping(1), cancel(1)]],
    ['a cancellation, then a ping reusing its id', [list(1), cancel(1), ping(1)]],
    ['a second tools/list with the same id, then a cancellation', [list(1), list(1), cancel(1)]],
  ])('when the request is followed by %s', async (_, messages) => {
    const transport = new FieldTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    for (const m of messages) transport.deliver(m as JSONRPCMessage, { authInfo });
    expect(await listedTo(transport, 1)).not.toContain('delete_repo');
  });

  it('refuses a request that reuses the id of a pending tools/list (JSON-RPC ids are unique while pending)', async () => {
    const transport = new FieldTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    const searchOnly = mcpAuthInfo('other', writIdentity({ ...claims, authorization_details: [claims.authorization_details[0]!] }));
    transport.deliver(list(1), { authInfo: searchOnly });
    transport.deliver(list(1), { authInfo });
    const answers = () => transport.sent.filter((m) => 'id' in m && m.id === 1);
    await answerTo(transport, 1);
    for (let i = 0; i < 20 && answers().length < 2; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(answers().map((m) => ('result' in m ? toolNames(m as any) : (m as any).error.code))).toEqual(expect.arrayContaining([-32600, ['search']]));
  });
});

describe('a tools/call of a tool the token does not grant never reaches the tool', () => {
  it('runs a granted tool', async () => {
    const transport = new FieldTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    transport.deliver(call(1, 'search'), { authInfo });
    expect((await answerTo(transport, 1)).result.content).toEqual([{ type: 'text', text: 'search ran' }]);
    expect(ran).toEqual(['search']);
  });

  it.each([
    ['a tool outside authorization_details', call(1, 'delete_repo'), { authInfo }, /delete_repo is not granted/],
    ['a call without a tool name', call(1, 42), { authInfo }, /without a tool name/],
    ['a call without an identity', call(1, 'search'), undefined, /search is not granted/],
  ])('answers %s with a JSON-RPC error', async (_, message, extra, reason) => {
    const transport = new ForwardingTransport();
    await grantedToolsOnly(githubServer()).connect(transport);
    transport.deliver(message, extra);
    const answer = await answerTo(transport, 1);
    expect(answer.error).toEqual({ code: TOOL_NOT_GRANTED, message: expect.stringMatching(reason) });
    expect(ran).toEqual([]);
  });
});

describe('SEP-2549 cache hints of filtered tools/list answers', () => {
  it('listTtlMs: the server ttlMs (else 0), capped at the token remaining life, never negative', () => {
    expect(listTtlMs(60_000, 1_000_000 + 30_000, 1_000_000)).toBe(30_000);
    expect(listTtlMs(10_000, 1_000_000 + 30_000, 1_000_000)).toBe(10_000);
    expect(listTtlMs(undefined, 1_000_000 + 30_000, 1_000_000)).toBe(0);
    expect(listTtlMs(60_000, 900_000, 1_000_000)).toBe(0);
    expect(listTtlMs(60_000, undefined, 1_000_000)).toBe(0);
    expect(listTtlMs(Number.NaN, 2e6, 1e6)).toBe(0);
    expect(listTtlMs(-5, 2e6, 1e6)).toBe(0);
  });
});
