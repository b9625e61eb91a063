/**
 * `writ/mcp` in front of an MCP SDK v2 server (`McpServer` from @modelcontextprotocol/server,
 * the stateless 2026-07-28 `createMcpHandler` served with `toNodeHandler` from
 * @modelcontextprotocol/node) on HTTPS that asks for client certificates, with task tokens from
 * a real broker, driven by the official v2 client (pinned to 2026-07-28, and in its default
 * legacy mode) and once by the v1 client. Also SDK v2's `requireBearerAuth` with
 * `writTokenVerifier` + `writBinding`.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { z } from 'zod';
import { McpServer, createMcpHandler, type ServerContext } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { requireBearerAuth } from '@modelcontextprotocol/express';
import { Client, InsufficientScopeError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as StreamableHTTPClientTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Broker } from '../../src/broker';
import {
  grantedToolsOnly,
  HEADER_MISMATCH,
  parseStepUpChallenge,
  protectedResourceMetadataHandler,
  protectedResourceMetadataUrl,
  tlsFetch,
  writBinding,
  writIdentityOf,
  writProtection,
  writTokenVerifier,
  type WritIdentity,
} from '../../src/mcp';
import { exchangeTaskToken, spiffeIdIs } from '../support/mcp';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.example.test';
const ISSUER = 'https://writ.v2.test';
const SERVER_ID = 'spiffe://v2.test/mcp/github';
const AGENT_ID = 'spiffe://v2.test/agent/assistant';
const MODERN = { pin: '2026-07-28' } as const;
const POLICIES = `
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };
`;
const githubTools = [
  { name: 'search', actions: ['read'], classification: 'internal' },
  { name: 'list_issues', actions: ['read'], classification: 'internal' },
  { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
];

let fx: BrokerFixture<'agent' | 'stranger' | 'mcpServer'>;
let broker: Broker;
let bundlePem: string;
let agent: ClientCert;
let stranger: ClientCert;
let mcpHttps: Server;
let resource: string;
let metadataUrl: string;
const ran: { tool: string; identity: WritIdentity | undefined; era: string }[] = [];

const taskToken = async (forResource = resource) =>
  exchangeTaskToken(fx, agent, { subjectToken: await fx.idp.idToken(), resource: forResource, details: [{ type: 'mcp_tool', tools: ['search', 'list_issues'], actions: ['read'] }] });

const fetchAs = (svid: ClientCert) => tlsFetch({ ca: bundlePem, cert: svid.cert, key: svid.key, checkServerIdentity: spiffeIdIs(SERVER_ID) });

/** The v2 client over mTLS as `svid`, recording every exchange. */
function v2Client(svid: ClientCert, token: string | undefined, opts: { mode?: typeof MODERN; path?: string } = {}) {
  const exchanges: { body: string; headers: Headers; response: Response; copy: Response }[] = [];
  const base = fetchAs(svid);
  const recording = async (url: string | URL, init?: RequestInit) => {
    const response = await base(url, init);
    // A copy of each answer for the test to read (the client consumes the original).
    exchanges.push({ body: typeof init?.body === 'string' ? init.body : '', headers: new Headers(init?.headers), response, copy: response.clone() });
    return response;
  };
  const transport = new StreamableHTTPClientTransport(new URL(opts.path ?? '/mcp', resource), {
    fetch: recording,
    onInsufficientScope: 'throw',
    ...(token !== undefined && { authProvider: { token: async () => token } }),
  });
  const client = new Client({ name: 'writ-v2-agent', version: '1.0.0' }, opts.mode ? { versionNegotiation: { mode: opts.mode } } : undefined);
  const lastRefusal = () => [...exchanges].reverse().find((e) => e.response.status >= 400)?.copy;
  const answerTo = (method: string) => [...exchanges].reverse().find((e) => e.body.includes(`"method":"${method}"`));
  return { client, exchanges, lastRefusal, answerTo, connect: () => client.connect(transport) };
}

/** Resolves when `promise` rejects (with what it rejected with); fails when it does not. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

function mcpServer(era: string): McpServer {
  const server = new McpServer({ name: 'github', version: '1.0.0' }, { cacheHints: { 'tools/list': { ttlMs: 3_600_000_000, cacheScope: 'public' } } } as never);
  const tool = (name: string) => async (_args: unknown, ctx: ServerContext) => {
    ran.push({ tool: name, identity: writIdentityOf(ctx.http?.authInfo), era });
    return { content: [{ type: 'text' as const, text: `${name} ran for ${writIdentityOf(ctx)?.user}` }] };
  };
  server.registerTool('search', { description: 'Search issues', inputSchema: z.object({ query: z.string() }) }, tool('search'));
  server.registerTool('list_issues', { description: 'List issues', inputSchema: z.object({ state: z.string().optional() }) }, tool('list_issues'));
  server.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: z.object({ name: z.string() }) }, tool('delete_repo'));
  return grantedToolsOnly(server);
}

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-mcp-v2-',
    trustDomain: 'v2.test',
    idpIssuer: IDP,
    policies: POLICIES,
    env: { WRIT_ISSUER: ISSUER },
    connectors: { agent: { spiffeId: AGENT_ID }, stranger: { spiffeId: 'spiffe://v2.test/agent/other' }, mcpServer: { spiffeId: SERVER_ID } },
  });
  ({ broker, bundlePem } = fx);
  ({ agent, stranger } = fx.connectors);
  const svid = fx.connectors.mcpServer;
  const app = express();
  mcpHttps = createServer({ cert: svid.cert, key: svid.key, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  await new Promise<void>((resolve) => mcpHttps.listen(0, '127.0.0.1', resolve));
  resource = `https://127.0.0.1:${(mcpHttps.address() as AddressInfo).port}/mcp`;
  metadataUrl = protectedResourceMetadataUrl(resource);
  expect((await fx.admin('/v1/admin/resources', 'POST', { uri: resource, spiffe_id: SERVER_ID, tools: githubTools })).status).toBe(201);

  const tokenOptions = {
    resource,
    issuer: ISSUER,
    jwksUri: `${broker.apiUrl}/oauth2/jwks`,
    ca: bundlePem,
    introspect: { url: `${broker.apiUrl}/oauth2/introspect`, tls: { cert: svid.cert, key: svid.key, ca: bundlePem }, cacheMs: 0 },
  };
  const protect = writProtection({ ...tokenOptions, toolActions: { delete_repo: 'delete' }, toolScopes: { delete_repo: 'repo:delete' } });
  const node = toNodeHandler(createMcpHandler(({ era }) => mcpServer(era)));
  app.use(protectedResourceMetadataHandler({ resource, issuer: ISSUER }));
  app.post('/mcp', express.json(), protect, (req, res) => void node(req, res, req.body));
  // SDK v2's own bearer middleware with Writ's verifier, then the binding check.
  app.post('/mcp-verifier', express.json(), requireBearerAuth({ verifier: writTokenVerifier(tokenOptions), resourceMetadataUrl: metadataUrl }), writBinding(), (req, res) => void node(req, res, req.body));
});

afterAll(async () => {
  if (mcpHttps) {
    mcpHttps.closeAllConnections();
    await new Promise((resolve) => mcpHttps.close(resolve));
  }
  await fx?.close();
});

const search = { name: 'search', arguments: { query: 'flaky test' } };

describe.each([
  ['modern (pinned 2026-07-28)', MODERN, 'modern'],
  ['legacy (the v2 client default)', undefined, 'legacy'],
])('SDK v2 client, %s, behind writProtection', (_, mode, era) => {
  let token: string;
  let taskId: string;
  let exp: number;
  let session: ReturnType<typeof v2Client>;
  beforeAll(async () => {
    ({ token, taskId, exp } = await taskToken());
    session = v2Client(agent, token, mode ? { mode } : {});
    await session.connect();
  });
  afterAll(() => session?.client.close());

  it('negotiates the expected era', () => {
    expect(session.client.getProtocolEra()).toBe(era);
  });

  it('a granted call runs; the tool reads the identity through ctx.http.authInfo with writIdentityOf', async () => {
    const result = await session.client.callTool(search);
    expect(result.content).toEqual([{ type: 'text', text: 'search ran for alice' }]);
    expect(ran.at(-1)).toEqual({ tool: 'search', era, identity: expect.objectContaining({ user: 'alice', connector: AGENT_ID, taskId, tools: ['search', 'list_issues'] }) });
    if (era === 'modern') expect(session.answerTo('tools/call')!.headers.get('mcp-name')).toBe('search');
  });

  it('tools/list lists the granted tools only, cacheScope private, ttlMs bounded by the token life', async () => {
    const before = Date.now();
    const list = (await session.client.listTools(undefined, { cacheMode: 'bypass' } as never)) as { tools: { name: string }[]; ttlMs?: number; cacheScope?: string };
    expect(list.tools.map((t) => t.name)).toEqual(['search', 'list_issues']);
    const raw = await session.answerTo('tools/list')!.copy.text();
    const answer = JSON.parse(raw.startsWith('{') ? raw : raw.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
    expect(answer.result.cacheScope).toBe('private'); // the server said public: a per-token list never is
    if (era === 'modern') {
      // The server's own ttlMs (1000 h) is capped at the token's remaining life.
      expect(answer.result.ttlMs).toBeGreaterThan(0);
      expect(answer.result.ttlMs).toBeLessThanOrEqual(exp * 1000 - before);
    } else expect(answer.result.ttlMs).toBe(0); // 2025-era answers carry no server hint: not to be reused
    expect(list.cacheScope ?? 'private').toBe('private');
  });

  it('a tool the token does not grant: 403 insufficient_scope naming the scope and authorization_details to ask for', async () => {
    const before = ran.length;
    const err = await rejection(session.client.callTool({ name: 'delete_repo', arguments: { name: 'writ' } }));
    expect(err).toBeInstanceOf(InsufficientScopeError);
    expect((err as InsufficientScopeError).requiredScope).toBe('repo:delete');
    const refusal = session.lastRefusal()!;
    expect(refusal.status).toBe(403);
    const challenge = refusal.headers.get('www-authenticate')!;
    expect(challenge).toMatch(/^Bearer realm="[^"]+", error="insufficient_scope", error_description="[^"]+", scope="repo:delete", authorization_details="[A-Za-z0-9_-]+", resource_metadata="[^"]+"$/);
    expect(parseStepUpChallenge(challenge)).toEqual({
      tool: 'delete_repo',
      scope: 'repo:delete',
      authorizationDetails: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }],
      resourceMetadata: metadataUrl,
      errorDescription: expect.any(String),
    });
    expect(await refusal.json()).toMatchObject({ error: 'insufficient_scope', authorization_details: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }] });
    expect(ran).toHaveLength(before);
  });
});

describe('refusals before the MCP server, SDK v2 client', () => {
  it('no token: 401 with a challenge without error code, naming resource_metadata', async () => {
    const anonymous = v2Client(agent, undefined, { mode: MODERN });
    await rejection(anonymous.connect());
    const refusal = anonymous.lastRefusal()!;
    expect(refusal.status).toBe(401);
    expect(refusal.headers.get('www-authenticate')).toBe(`Bearer realm="${resource}", resource_metadata="${metadataUrl}"`);
  });

  it('a bad token: 401 invalid_token', async () => {
    const bad = v2Client(agent, 'not.a.jwt', { mode: MODERN });
    await rejection(bad.connect());
    expect(bad.lastRefusal()!.status).toBe(401);
    expect(bad.lastRefusal()!.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+", resource_metadata="[^"]+"$/);
  });

  it('a token for another resource (aud): 401 invalid_token', async () => {
    expect((await fx.admin('/v1/admin/resources', 'POST', { uri: 'https://mcp.v2.test/jira', spiffe_id: 'spiffe://v2.test/mcp/jira', tools: githubTools })).status).toBe(201);
    const other = v2Client(agent, (await taskToken('https://mcp.v2.test/jira')).token, { mode: MODERN });
    await rejection(other.connect());
    expect(other.lastRefusal()!.status).toBe(401);
    expect(other.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="access token: [^"]*audience/);
  });

  it('after the task is ended: 401 invalid_token (introspection, cacheMs 0)', async () => {
    const { token, taskId } = await taskToken();
    const session = v2Client(agent, token, { mode: MODERN });
    await session.connect();
    await session.client.callTool(search);
    const ended = await httpsRequest(`${broker.apiUrl}/v1/tasks/${taskId}/end`, { ca: bundlePem, method: 'POST', cert: agent.cert, key: agent.key });
    expect(ended.status).toBeLessThan(300);
    await rejection(session.client.callTool(search));
    expect(session.lastRefusal()!.status).toBe(401);
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*no longer active/);
    await session.client.close();
  });

  it('Mcp-Name disagreeing with the body (raw request): 400 with JSON-RPC error -32020, before the tool check', async () => {
    const { token } = await taskToken();
    const before = ran.length;
    const body = { jsonrpc: '2.0', id: 41, method: 'tools/call', params: { name: 'delete_repo', arguments: { name: 'writ' } } };
    const res = await fetchAs(agent)(resource, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'search' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 41, error: { code: HEADER_MISMATCH, message: expect.any(String), data: { mismatch: { header: 'search', body: 'delete_repo' } } } });
    expect(HEADER_MISMATCH).toBe(-32020);
    expect(ran).toHaveLength(before);
  });
});

describe('the SDK v1 client (1.32.2) against the v2 server', () => {
  it('connects on 2025-11-25, lists the granted tools and calls one', async () => {
    const { token } = await taskToken();
    const transport = new StreamableHTTPClientTransportV1(new URL(resource), { fetch: fetchAs(agent), requestInit: { headers: { authorization: `Bearer ${token}` } } });
    const client = new ClientV1({ name: 'writ-v1-agent', version: '1.0.0' });
    await client.connect(transport);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['search', 'list_issues']);
    expect((await client.callTool(search)).content).toEqual([{ type: 'text', text: 'search ran for alice' }]);
    await client.close();
  });
});

describe('requireBearerAuth (SDK v2) + writTokenVerifier + writBinding', () => {
  it('serves a bound token, with the identity in ctx.http.authInfo', async () => {
    const { token, taskId } = await taskToken();
    const session = v2Client(agent, token, { mode: MODERN, path: '/mcp-verifier' });
    await session.connect();
    expect((await session.client.callTool(search)).content).toEqual([{ type: 'text', text: 'search ran for alice' }]);
    expect(ran.at(-1)!.identity).toMatchObject({ user: 'alice', taskId });
    expect((await session.client.listTools()).tools.map((t) => t.name)).toEqual(['search', 'list_issues']);
    await session.client.close();
  });

  it('refuses 401 invalid_token the same token presented over another client certificate', async () => {
    const { token } = await taskToken();
    const before = ran.length;
    const session = v2Client(stranger, token, { mode: MODERN, path: '/mcp-verifier' });
    await rejection(session.connect().then(() => session.client.callTool(search)));
    expect(session.lastRefusal()!.status).toBe(401);
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="[^"]*another client certificate/);
    expect(ran).toHaveLength(before);
  });

  it('refuses a bad token 401 through requireBearerAuth (the verifier error is an SDK OAuthError)', async () => {
    const session = v2Client(agent, 'not.a.jwt', { mode: MODERN, path: '/mcp-verifier' });
    await rejection(session.connect());
    expect(session.lastRefusal()!.status).toBe(401);
    expect(session.lastRefusal()!.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });
});
