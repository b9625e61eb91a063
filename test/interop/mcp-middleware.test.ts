/**
 * `writ/mcp` in front of a server built with the official `@modelcontextprotocol/sdk`
 * (McpServer, Streamable HTTP on Express, over HTTPS that asks for client certificates), driven
 * by the SDK's own client with task tokens from a real broker: which tools a token lists and
 * calls, the identities tool code reads, refusals per RFC 6750 naming the RFC 9728 metadata,
 * expiry, revocation within a second, and failing closed when Writ cannot be reached.
 *
 * The broker and the middleware share one clock that a test can move forward, and the
 * middleware reaches Writ (JWKS, introspection) through a TCP relay a test can cut.
 */
import { createServer, type Server } from 'node:https';
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import express, { type Request, type Response as ExpressResponse } from 'express';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Broker } from '../../src/broker';
import type { Clock } from '../../src/core/clock';
import {
  formatStepUpChallengeParams,
  grantedToolsOnly,
  protectedResourceMetadataHandler,
  protectedResourceMetadataUrl,
  tlsFetch,
  writIdentityOf,
  writProtection,
  type WritIdentity,
  type WritRequest,
} from '../../src/mcp';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { exchangeTaskToken, statusOf, spiffeIdIs } from '../support/mcp';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.example.test';
const ISSUER = 'https://writ.mw.test';
const SERVER_ID = 'spiffe://mw.test/mcp/github';
const AGENT_ID = 'spiffe://mw.test/agent/assistant';
const POLICIES = `
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };
`;

/** The tools registered at Writ (the MCP server also has one Writ does not know). */
const githubTools = [
  { name: 'search', actions: ['read'], classification: 'internal' },
  { name: 'list_issues', actions: ['read'], classification: 'internal' },
  { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
];

/** The clock of the broker and of the middleware: real time, plus what a test moved it by. */
let skewMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + skewMs) };

type Svid = ClientCert;
let fx: BrokerFixture<'agent' | 'stranger' | 'mcpServer'>;
let broker: Broker;
let bundlePem: string;
let agent: Svid;
let stranger: Svid;
let mcpHttps: Server;
/** The TCP relay between the middleware and Writ. */
let relay: { url: string; cut(): Promise<void> };
/** The MCP server's URI: the resource registered at Writ, the token's `aud`. */
let resource: string;
/** Whether the MCP transport answers with JSON instead of an SSE stream. */
let jsonResponse = false;
/** Tool calls that reached the tools' code, with the identity each saw. */
const ran: { tool: string; identity: WritIdentity | undefined }[] = [];

const admin = (path: string, method: string, body?: unknown) => fx.admin(path, method, body);

const idToken = () => fx.idp.idToken();

/** The agent's RFC 8693 exchange over mTLS: a task token asking for three tools, of which policy grants the two that read. */
const taskToken = async (forResource = resource) =>
  exchangeTaskToken(fx, agent, {
    subjectToken: await idToken(),
    resource: forResource,
    details: [
      { type: 'mcp_tool', tools: ['search', 'list_issues'], actions: ['read'] },
      { type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] },
    ],
  });

const fetchAs = (svid: Svid) => tlsFetch({ ca: bundlePem, cert: svid.cert, key: svid.key, checkServerIdentity: spiffeIdIs(SERVER_ID) });

/** The SDK's MCP client over HTTPS with `svid` as its client certificate and `token` as its bearer token; exchanges are recorded. */
function mcpClient(svid: Svid, token: string | undefined) {
  const exchanges: { body: string; response: Response }[] = [];
  const base = fetchAs(svid);
  const recording = async (url: string | URL, init?: RequestInit) => {
    const response = await base(url, init);
    exchanges.push({ body: typeof init?.body === 'string' ? init.body : '', response });
    return response;
  };
  const transport = new StreamableHTTPClientTransport(new URL(resource), {
    fetch: recording,
    ...(token !== undefined && { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
  });
  const client = new Client({ name: 'writ-mw-agent', version: '1.0.0' });
  const lastRefusal = () => [...exchanges].reverse().find((e) => e.response.status >= 400)?.response;
  const answerTo = (method: string) => [...exchanges].reverse().find((e) => e.body.includes(`"method":"${method}"`))?.response;
  return { client, exchanges, lastRefusal, answerTo, connect: () => client.connect(transport) };
}

/** A new McpServer for each request (the SDK's stateless pattern): three tools Writ knows, one it does not. */
function mcpServer(): McpServer {
  const server = new McpServer({ name: 'github', version: '1.0.0' });
  const tool = (name: string) => async (_args: unknown, extra: { authInfo?: { extra?: Record<string, unknown> } }) => {
    ran.push({ tool: name, identity: writIdentityOf(extra.authInfo) });
    return { content: [{ type: 'text' as const, text: `${name} ran` }] };
  };
  server.registerTool('search', { description: 'Search issues', inputSchema: { query: z.string() } }, tool('search'));
  server.registerTool('list_issues', { description: 'List issues', inputSchema: { state: z.string().optional() } }, tool('list_issues'));
  server.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: { name: z.string() } }, tool('delete_repo'));
  server.registerTool('rotate_secrets', { description: 'Not registered at Writ', inputSchema: { scope: z.string().optional() } }, tool('rotate_secrets'));
  return grantedToolsOnly(server);
}

async function handleMcp(req: Request, res: ExpressResponse) {
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: jsonResponse });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req as WritRequest as Parameters<typeof transport.handleRequest>[0], res, req.body);
}

/** A TCP relay to `target` that a test can cut: then no connection gets through. */
async function tcpRelay(target: URL): Promise<{ url: string; cut(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createTcpServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    track(client);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, target.hostname, resolve));
  return {
    url: `https://${target.hostname}:${(server.address() as AddressInfo).port}`,
    cut: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-mcp-mw-',
    trustDomain: 'mw.test',
    idpIssuer: IDP,
    policies: POLICIES,
    env: { WRIT_ISSUER: ISSUER },
    clock,
    connectors: {
      agent: { spiffeId: AGENT_ID },
      stranger: { spiffeId: 'spiffe://mw.test/agent/other' },
      mcpServer: { spiffeId: SERVER_ID },
    },
  });
  ({ broker, bundlePem } = fx);
  const { mcpServer: mcpServerSvid } = fx.connectors;
  ({ agent, stranger } = fx.connectors);
  relay = await tcpRelay(new URL(broker.apiUrl));

  const app = express();
  mcpHttps = createServer({ cert: mcpServerSvid.cert, key: mcpServerSvid.key, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  await new Promise<void>((resolve) => mcpHttps.listen(0, '127.0.0.1', resolve));
  resource = `https://127.0.0.1:${(mcpHttps.address() as AddressInfo).port}/mcp`;

  const registered = await admin('/v1/admin/resources', 'POST', {
    uri: resource,
    spiffe_id: SERVER_ID,
    tools: githubTools,
  });
  expect(registered.status).toBe(201);

  // Everything the README's short example has: metadata, middleware (defaults: 1 s introspection cache), grantedToolsOnly.
  const protect = writProtection({
    resource,
    issuer: ISSUER,
    jwksUri: `${relay.url}/oauth2/jwks`,
    ca: bundlePem,
    clock,
    introspect: { url: `${relay.url}/oauth2/introspect`, tls: { cert: mcpServerSvid.cert, key: mcpServerSvid.key, ca: bundlePem } },
  });
  app.use(protectedResourceMetadataHandler({ resource, issuer: ISSUER }));
  app.post('/mcp', express.json(), protect, handleMcp);
  app.get('/mcp', protect, handleMcp);
  app.delete('/mcp', protect, handleMcp);
});

afterAll(async () => {
  if (mcpHttps) {
    mcpHttps.closeAllConnections();
    await new Promise((resolve) => mcpHttps.close(resolve));
  }
  await relay?.cut().catch(() => undefined);
  await fx?.close();
});

const search = { name: 'search', arguments: { query: 'flaky test' } };

describe('RFC 9396: a token lists and calls only the tools it grants (official MCP client and server)', () => {
  let token: string;
  let taskId: string;
  let session: ReturnType<typeof mcpClient>;

  beforeAll(async () => {
    ({ token, taskId } = await taskToken());
    session = mcpClient(agent, token);
    await session.connect();
  });
  afterAll(async () => {
    jsonResponse = false;
    await session?.client.close();
  });

  it('a granted tools/call runs, and the tool reads the user, connector chain, task and tools from extra.authInfo', async () => {
    const result = await session.client.callTool(search);
    expect(result.content).toEqual([{ type: 'text', text: 'search ran' }]);
    expect(ran.at(-1)).toEqual({
      tool: 'search',
      identity: expect.objectContaining({ user: 'alice', connector: AGENT_ID, connectors: [AGENT_ID], taskId, tools: ['search', 'list_issues'], sessionId: 'session-1' }),
    });
  });

  it('tools/list answers only the granted tools, in an SSE-framed answer (text/event-stream)', async () => {
    const { tools } = await session.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['search', 'list_issues']);
    expect(session.answerTo('tools/list')!.headers.get('content-type')).toMatch(/^text\/event-stream/);
  });

  it('tools/list answers only the granted tools, in a JSON answer (enableJsonResponse)', async () => {
    jsonResponse = true;
    const json = mcpClient(agent, token);
    await json.connect();
    const { tools } = await json.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['search', 'list_issues']);
    expect(json.answerTo('tools/list')!.headers.get('content-type')).toMatch(/^application\/json/);
    await json.client.close();
  });

  it.each([
    ['a tool policy refused (delete_repo)', { name: 'delete_repo', arguments: { name: 'writ' } }],
    ['a tool Writ does not know (rotate_secrets)', { name: 'rotate_secrets', arguments: {} }],
  ])('RFC 6750 §3.1: a tools/call of %s gets 403 insufficient_scope and never runs', async (_, call) => {
    const before = ran.length;
    expect(await statusOf(session.client.callTool(call))).toBe(403);
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toBe(
      `Bearer realm="${resource}", error="insufficient_scope", error_description="the token's authorization_details do not grant the tool '${call.name}' (RFC 9396)", ${formatStepUpChallengeParams({ tool: call.name }).join(', ')}, resource_metadata="${protectedResourceMetadataUrl(resource)}"`,
    );
    expect(ran).toHaveLength(before);
  });
});

describe('RFC 6750 §3: tokens that are refused with 401 invalid_token', () => {
  const refusal = async (svid: Svid, token: string) => {
    const client = mcpClient(svid, token);
    const status = await statusOf(client.connect());
    return { status, challenge: client.lastRefusal()!.headers.get('www-authenticate')! };
  };

  it('RFC 9068 §4: a token Writ issued for another resource (aud)', async () => {
    const other = await admin('/v1/admin/resources', 'POST', { uri: 'https://mcp.mw.test/jira', spiffe_id: 'spiffe://mw.test/mcp/jira', tools: githubTools });
    expect(other.status).toBe(201);
    const { status, challenge } = await refusal(agent, (await taskToken('https://mcp.mw.test/jira')).token);
    expect(status).toBe(401);
    expect(challenge).toMatch(/^Bearer realm="[^"]+", error="invalid_token", error_description="access token: [^"]*audience[^"]*", resource_metadata="[^"]+"$/);
  });

  it('RFC 8705 §3: a token presented over a connection with another client certificate (unbound)', async () => {
    const { status, challenge } = await refusal(stranger, (await taskToken()).token);
    expect(status).toBe(401);
    expect(challenge).toMatch(/error="invalid_token", error_description="[^"]*another client certificate/);
  });

  it('RFC 7009: a token revoked with POST /oauth2/revoke, once the last "active" answer is a second old', async () => {
    const { token } = await taskToken();
    const session = mcpClient(agent, token);
    await session.connect();
    await session.client.callTool(search); // Writ said "active": the answer may be reused for up to a second
    const revoked = await httpsRequest(`${broker.apiUrl}/oauth2/revoke`, {
      ca: bundlePem,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      cert: agent.cert,
      key: agent.key,
    });
    expect(revoked.status).toBe(200);
    // The middleware's clock (which the broker shares) passes the second; the next call asks Writ again and is refused.
    skewMs += 1000;
    try {
      expect(await statusOf(session.client.callTool(search))).toBe(401);
    } finally {
      skewMs = 0;
    }
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*no longer active/);
    await session.client.close();
  });

  it('RFC 9068 §4: an expired token (exp), once the clock has passed it', async () => {
    const { token, exp } = await taskToken();
    const session = mcpClient(agent, token);
    await session.connect();
    skewMs = exp * 1000 - Date.now() + 1000;
    try {
      expect(await statusOf(session.client.callTool(search))).toBe(401);
      expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="access token: [^"]*expired/);
    } finally {
      skewMs = 0;
    }
    await session.client.close();
  });
});

describe('RFC 9728 protected resource metadata, as the MCP authorization specification discovers it', () => {
  const document = () => ({
    resource,
    authorization_servers: [ISSUER],
    bearer_methods_supported: ['header'],
    tls_client_certificate_bound_access_tokens: true,
    authorization_details_types_supported: ['mcp_tool'],
    dpop_signing_alg_values_supported: ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'],
    dpop_bound_access_tokens_required: false,
  });

  it('a request without a token gets 401 with a challenge naming the metadata URL (§5.1), which serves the document', async () => {
    const anonymous = mcpClient(agent, undefined);
    expect(await statusOf(anonymous.connect())).toBe(401);
    const metadataUrl = protectedResourceMetadataUrl(resource);
    expect(metadataUrl).toBe(`${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`);
    expect(anonymous.lastRefusal()!.headers.get('www-authenticate')).toBe(`Bearer realm="${resource}", resource_metadata="${metadataUrl}"`);
    const metadata = await fetchAs(agent)(metadataUrl);
    expect(metadata.status).toBe(200);
    expect(metadata.headers.get('content-type')).toBe('application/json');
    expect(await metadata.json()).toEqual(document());
  });

  it('the same document is at /.well-known/oauth-protected-resource', async () => {
    const metadata = await fetchAs(agent)(`${new URL(resource).origin}/.well-known/oauth-protected-resource`);
    expect(await metadata.json()).toEqual(document());
  });
});

describe('fail closed: when Writ cannot be reached, nothing is let through', () => {
  it('refuses with 503 a token whose last answer is over a second old, and a token never asked about; no tool runs', async () => {
    const known = await taskToken();
    const fresh = await taskToken();
    const session = mcpClient(agent, known.token);
    await session.connect();
    await session.client.callTool(search);
    const before = ran.length;

    await relay.cut();
    skewMs += 1000; // the middleware's clock ages the last answer past the second it may be reused for
    try {
      expect(await statusOf(session.client.callTool(search))).toBe(503);
      expect(session.lastRefusal()!.headers.get('retry-after')).toBe('5');
      const other = mcpClient(agent, fresh.token);
      expect(await statusOf(other.connect())).toBe(503);
      expect(ran).toHaveLength(before);
    } finally {
      skewMs = 0;
    }
    await session.client.close();
  });
});
