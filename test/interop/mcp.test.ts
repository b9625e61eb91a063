/**
 * End to end with clients Writ did not write: an MCP server built with the official
 * `@modelcontextprotocol/sdk` (McpServer, Streamable HTTP) behind `writProtection`, over HTTPS
 * that asks for client certificates, and the SDK's MCP client, which gets a task token from
 * Writ (RFC 8693 exchange over mTLS with its X.509-SVID) and calls tools with it.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response as ExpressResponse } from 'express';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Broker } from '../../src/broker';
import { grantedToolsOnly, protectedResourceMetadataHandler, protectedResourceMetadataUrl, tlsFetch, writClaimsOf, writProtection, type WritRequest } from '../../src/mcp';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { spiffeIdIs, statusOf } from '../support/mcp';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.example.test';
const ISSUER = 'https://writ.ex.test';
const SERVER_ID = 'spiffe://ex.test/mcp/github';
const AGENT_ID = 'spiffe://ex.test/agent/assistant';
const POLICIES = `
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };
`;

type Svid = ClientCert;
let fx: BrokerFixture<'agent' | 'mcpServer' | 'stranger'>;
let broker: Broker;
let bundlePem: string;
let agent: Svid;
let mcpServerSvid: Svid;
let stranger: Svid;
let mcpHttps: Server;
let app: ReturnType<typeof express>;
/** The MCP server's URI: the resource registered at Writ, the token's `aud`. */
let resource: string;
/** Tool calls that reached the tools' code, as `<tool> for <user> via <connector>`. */
const ran: string[] = [];

const admin = (path: string, method: string, body?: unknown) => fx.admin(path, method, body);

const idToken = () => fx.idp.idToken();

/** The agent's RFC 8693 exchange over mTLS: a task token for the MCP server, asking for both tools. */
async function taskToken(as: Svid, forResource = resource): Promise<{ token: string; taskId: string; granted: unknown }> {
  const form = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: await idToken(),
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    resource: forResource,
    authorization_details: JSON.stringify([
      { type: 'mcp_tool', tools: ['search'], actions: ['read'] },
      { type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] },
    ]),
  });
  const res = await httpsRequest(`${broker.apiUrl}/oauth2/token`, {
    ca: bundlePem,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    cert: as.cert,
    key: as.key,
  });
  const json = JSON.parse(res.body);
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.body}`);
  return { token: json.access_token, taskId: json.task_id, granted: json.authorization_details };
}

/** The SDK's MCP client over HTTPS with `svid` as its client certificate and `token` as its bearer token; responses are recorded. */
function mcpClient(svid: Svid, token: string | undefined, url = resource) {
  const responses: Response[] = [];
  const base = tlsFetch({ ca: bundlePem, cert: svid.cert, key: svid.key, checkServerIdentity: spiffeIdIs(SERVER_ID) });
  const recording = async (url: string | URL, init?: RequestInit) => {
    const response = await base(url, init);
    responses.push(response);
    return response;
  };
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: recording,
    ...(token !== undefined && { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
  });
  const client = new Client({ name: 'writ-e2e-agent', version: '1.0.0' });
  const lastRefusal = () => [...responses].reverse().find((r) => r.status >= 400);
  return { client, transport, responses, lastRefusal, connect: () => client.connect(transport) };
}

/** A new McpServer with two tools for each request (the SDK's stateless Streamable HTTP pattern), listing only the granted ones. */
function mcpServer(): McpServer {
  const server = new McpServer({ name: 'github', version: '1.0.0' });
  server.registerTool('search', { description: 'Search issues', inputSchema: { query: z.string() } }, async ({ query }, extra) => {
    const claims = writClaimsOf(extra.authInfo);
    ran.push(`search for ${claims?.sub} via ${claims?.act.sub}`);
    return { content: [{ type: 'text', text: `3 issues match ${JSON.stringify(query)}` }] };
  });
  server.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: { name: z.string() } }, async ({ name }, extra) => {
    ran.push(`delete_repo for ${writClaimsOf(extra.authInfo)?.sub}`);
    return { content: [{ type: 'text', text: `deleted ${name}` }] };
  });
  return grantedToolsOnly(server);
}

async function handleMcp(req: Request, res: ExpressResponse) {
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req as WritRequest as Parameters<typeof transport.handleRequest>[0], res, req.body);
}

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-mcp-',
    trustDomain: 'ex.test',
    idpIssuer: IDP,
    policies: POLICIES,
    env: { WRIT_ISSUER: ISSUER },
    connectors: {
      agent: { spiffeId: AGENT_ID, owner: 'platform' },
      mcpServer: { spiffeId: SERVER_ID, owner: 'platform' },
      stranger: { spiffeId: 'spiffe://ex.test/agent/other', owner: 'platform' },
    },
  });
  ({ broker, bundlePem } = fx);
  ({ agent, mcpServer: mcpServerSvid, stranger } = fx.connectors);

  // The MCP server: HTTPS with its own X.509-SVID, asking every client for an SVID from the bundle.
  app = express();
  mcpHttps = createServer({ cert: mcpServerSvid.cert, key: mcpServerSvid.key, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  await new Promise<void>((resolve) => mcpHttps.listen(0, '127.0.0.1', resolve));
  resource = `https://127.0.0.1:${(mcpHttps.address() as AddressInfo).port}/mcp`;

  // Its URI is known only now: register it at Writ before any token is asked for.
  const registered = await admin('/v1/admin/resources', 'POST', {
    uri: resource,
    spiffe_id: SERVER_ID,
    tools: [
      { name: 'search', actions: ['read'], classification: 'internal' },
      { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
    ],
  });
  expect(registered.status).toBe(201);

  const protect = writProtection({
    resource,
    issuer: ISSUER,
    jwksUri: `${broker.apiUrl}/oauth2/jwks`,
    ca: bundlePem,
    // cacheMs 0: Writ is asked on every request, so revocation takes effect on the next call (by default within a second).
    introspect: { url: `${broker.apiUrl}/oauth2/introspect`, tls: { cert: mcpServerSvid.cert, key: mcpServerSvid.key, ca: bundlePem }, cacheMs: 0 },
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
  await fx?.close();
});


describe('an MCP server built with the official SDK accepts only Writ tokens for itself', () => {
  let token: string;
  let taskId: string;
  let session: ReturnType<typeof mcpClient>;

  beforeAll(async () => {
    ({ token, taskId } = await taskToken(agent));
    session = mcpClient(agent, token);
    await session.connect();
  });
  afterAll(async () => {
    await session?.client.close();
  });

  it('RFC 8693 + RFC 9396: policy granted the agent search and not delete_repo', async () => {
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ iss: ISSUER, aud: resource, sub: 'alice', act: { sub: AGENT_ID }, task_id: taskId });
    expect(claims.authorization_details).toEqual([{ type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' }]);
  });

  it('MCP initialize and tools/list work with the token over mTLS; the list names only the granted tool', async () => {
    expect(session.client.getServerVersion()).toMatchObject({ name: 'github' });
    const { tools } = await session.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['search']);
  });

  it('a tools/call of a granted tool reaches the tool, which sees the user and the connector', async () => {
    const result = await session.client.callTool({ name: 'search', arguments: { query: 'flaky test' } });
    expect(result.content).toEqual([{ type: 'text', text: '3 issues match "flaky test"' }]);
    expect(ran).toContain(`search for alice via ${AGENT_ID}`);
  });

  it('RFC 6750 §3.1: a tools/call outside authorization_details gets 403 insufficient_scope and never runs', async () => {
    expect(await statusOf(session.client.callTool({ name: 'delete_repo', arguments: { name: 'writ' } }))).toBe(403);
    const refusal = session.lastRefusal()!;
    expect(refusal.status).toBe(403);
    expect(refusal.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="insufficient_scope", error_description="[^"]*delete_repo/);
    expect(ran.some((r) => r.startsWith('delete_repo'))).toBe(false);
  });

  it('RFC 6750 §3: a request without a token gets 401 and a bare Bearer challenge naming the RFC 9728 metadata', async () => {
    const anonymous = mcpClient(agent, undefined);
    expect(await statusOf(anonymous.connect())).toBe(401);
    expect(anonymous.lastRefusal()!.headers.get('www-authenticate')).toBe(`Bearer realm="${resource}", resource_metadata="${protectedResourceMetadataUrl(resource)}"`);
    const metadata = await tlsFetch({ ca: bundlePem, cert: agent.cert, key: agent.key, checkServerIdentity: spiffeIdIs(SERVER_ID) })(protectedResourceMetadataUrl(resource));
    expect(await metadata.json()).toMatchObject({ resource, authorization_servers: [ISSUER], tls_client_certificate_bound_access_tokens: true });
  });

  it('RFC 8705 §3: the token presented over a TLS connection with another client certificate is refused (cnf mismatch)', async () => {
    const thief = mcpClient(stranger, token);
    expect(await statusOf(thief.connect())).toBe(401);
    expect(thief.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*another client certificate/);
  });

  it('RFC 9068 §4: a token Writ issued for another resource is refused (aud)', async () => {
    const other = await admin('/v1/admin/resources', 'POST', {
      uri: 'https://mcp.example.test/jira',
      spiffe_id: 'spiffe://ex.test/mcp/jira',
      tools: [
        { name: 'search', actions: ['read'], classification: 'internal' },
        { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
      ],
    });
    expect(other.status).toBe(201);
    const forJira = await taskToken(agent, 'https://mcp.example.test/jira');
    const misdirected = mcpClient(agent, forJira.token);
    expect(await statusOf(misdirected.connect())).toBe(401);
    expect(misdirected.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*audience/);
  });

  it('RFC 7662: after POST /v1/tasks/{id}/end the next call is refused with 401 invalid_token (introspection, cacheMs 0)', async () => {
    const ended = await httpsRequest(`${broker.apiUrl}/v1/tasks/${taskId}/end`, { ca: bundlePem, method: 'POST', cert: agent.cert, key: agent.key });
    expect(ended.status).toBe(200);
    expect(JSON.parse(ended.body).revoked).toBeGreaterThanOrEqual(1);
    const before = ran.length;
    expect(await statusOf(session.client.callTool({ name: 'search', arguments: { query: 'again' } }))).toBe(401);
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*no longer active/);
    expect(ran).toHaveLength(before);
  });
});

describe('a decision per tools/call from Writ\'s AuthZEN PDP (writProtection decisions)', () => {
  let checked: string;
  let taskId: string;
  let session: ReturnType<typeof mcpClient>;
  const jsonRpcErrorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: number; message?: string }) => ({ code: e.code, message: e.message }));

  beforeAll(async () => {
    // A second resource on the same server, protected with per-call decisions.
    checked = resource.replace(/\/mcp$/, '/mcp-checked');
    expect((await admin('/v1/admin/resources', 'POST', { uri: checked, spiffe_id: SERVER_ID, tools: [{ name: 'search', actions: ['read'], classification: 'internal' }, { name: 'delete_repo', actions: ['delete'], classification: 'restricted' }] })).status).toBe(201);
    const tls = { cert: mcpServerSvid.cert, key: mcpServerSvid.key, ca: bundlePem };
    const base = { resource: checked, issuer: ISSUER, jwksUri: `${broker.apiUrl}/oauth2/jwks`, ca: bundlePem };
    app.post('/mcp-checked', express.json(), writProtection({ ...base, decisions: { url: `${broker.apiUrl}/access/v1/evaluation`, tls } }), handleMcp);
    // The same resource with a PDP that cannot be reached (nothing listens on port 1).
    app.post('/mcp-no-pdp', express.json(), writProtection({ ...base, decisions: { url: 'https://127.0.0.1:1/access/v1/evaluation', tls, timeoutMs: 2000 } }), handleMcp);
    const issued = await taskToken(agent, checked);
    taskId = issued.taskId;
    session = mcpClient(agent, issued.token, checked);
    await session.connect();
  });
  afterAll(async () => {
    await session?.client.close();
  });

  it('lets a granted call through while policy permits it, and refuses the very next one once it does not (JSON-RPC -32001)', async () => {
    const before = ran.length;
    expect((await session.client.callTool({ name: 'search', arguments: { query: 'a' } })).content).toEqual([{ type: 'text', text: '3 issues match "a"' }]);
    const current = (await admin('/v1/admin/policies', 'GET')).json.policies as string;
    expect((await admin('/v1/admin/policies', 'PUT', { policies: '@id("nothing")\nforbid (principal, action, resource);\n' })).status).toBe(200);
    try {
      expect(await jsonRpcErrorOf(session.client.callTool({ name: 'search', arguments: { query: 'b' } }))).toEqual({ code: -32001, message: expect.stringContaining('search: the policy does not permit it') });
    } finally {
      expect((await admin('/v1/admin/policies', 'PUT', { policies: current })).status).toBe(200);
    }
    expect(ran).toHaveLength(before + 1); // the refused call never ran
    expect((await session.client.callTool({ name: 'search', arguments: { query: 'c' } })).content).toEqual([{ type: 'text', text: '3 issues match "c"' }]);
  });

  it('fails closed when the PDP cannot be reached (JSON-RPC -32603), and the tool does not run', async () => {
    const issued = await taskToken(agent, checked);
    const unreachable = mcpClient(agent, issued.token, checked.replace(/\/mcp-checked$/, '/mcp-no-pdp'));
    await unreachable.connect();
    try {
      const before = ran.length;
      expect(await jsonRpcErrorOf(unreachable.client.callTool({ name: 'search', arguments: { query: 'x' } }))).toEqual({ code: -32603, message: expect.stringContaining('no decision could be had for search') });
      expect(ran).toHaveLength(before);
    } finally {
      await unreachable.client.close();
    }
  });

  it('refuses the next call once the task has ended, without introspection', async () => {
    expect((await httpsRequest(`${broker.apiUrl}/v1/tasks/${taskId}/end`, { ca: bundlePem, method: 'POST', cert: agent.cert, key: agent.key })).status).toBe(200);
    expect(await jsonRpcErrorOf(session.client.callTool({ name: 'search', arguments: { query: 'd' } }))).toEqual({ code: -32001, message: expect.stringContaining('search: the task has ended') });
  });
});
