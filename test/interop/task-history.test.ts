/**
 * Task history in policy, across MCP servers and chain hops (issue 18, part 1): two MCP servers
 * built with the official SDK behind `writProtection`, each with its own X.509-SVID, and the
 * SDK's client. Once the task has read a restricted record through the records server, its next
 * call of an egress tool on the mail server is refused — per call, and at the next exchange, and
 * on a chained hop — with the deciding policy and the earlier call named in the audit row.
 * The taint is ordered by the database: a permitted call is recorded before it runs.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response as ExpressResponse } from 'express';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { tlsFetch, writProtection, type WritProtection, type WritRequest } from '../../src/mcp';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { exchangeTaskToken, jwtClaims, spiffeIdIs } from '../support/mcp';

const IDP = 'https://idp.history.test';
const RECORDS = 'https://records.history.test/mcp';
const MAIL = 'https://mail.history.test/mcp';
const RECORDS_ID = 'spiffe://history.test/mcp/records';
const MAIL_ID = 'spiffe://history.test/mcp/mail';
const AGENT_ID = 'spiffe://history.test/agent/assistant';
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool) when { principal.groups.contains("eng") };

@id("eng-write")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool) when { principal.groups.contains("eng") };

@id("servers-delegate")
permit (principal, action == Writ::Action::"delegate", resource is Writ::Tool);

@id("no-egress-after-restricted-read")
forbid (principal, action, resource) when { resource.egress && context.task.max_classification_read >= 3 };
`;

let fx: BrokerFixture<'agent' | 'records' | 'mail'>;
const servers: Server[] = [];
const protections: WritProtection[] = [];
const urls: Record<string, string> = {};
const ran: string[] = [];

/** One MCP server (the SDK's stateless Streamable HTTP pattern) behind writProtection, configured with introspection only. */
async function startMcp(resource: string, svid: ClientCert, tools: (server: McpServer) => void): Promise<string> {
  const protect = writProtection({
    resource,
    issuer: fx.config.issuer,
    jwksUri: `${fx.broker.apiUrl}/oauth2/jwks`,
    ca: fx.bundlePem,
    introspect: { url: `${fx.broker.apiUrl}/oauth2/introspect`, tls: { cert: svid.cert, key: svid.key, ca: fx.bundlePem }, cacheMs: 0 },
    reporting: { flushIntervalMs: 20, resourceOf: (_tool, args) => (args as { id?: string } | undefined)?.id },
  });
  protections.push(protect);
  const app = express();
  app.post('/mcp', express.json(), protect, async (req: Request, res: ExpressResponse) => {
    const server = new McpServer({ name: resource, version: '1.0.0' });
    tools(server);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => void transport.close().then(() => server.close()));
    await server.connect(transport);
    await transport.handleRequest(req as WritRequest as Parameters<typeof transport.handleRequest>[0], res, req.body);
  });
  const https = createServer({ cert: svid.cert, key: svid.key, ca: fx.bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  servers.push(https);
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(https.address() as AddressInfo).port}/mcp`;
}

async function session(url: string, serverId: string, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: tlsFetch({ ca: fx.bundlePem, cert: fx.connectors.agent.cert, key: fx.connectors.agent.key, checkServerIdentity: spiffeIdIs(serverId) }),
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'history-agent', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: number; message?: string }) => ({ code: e.code, message: e.message }));
const text = (r: unknown) => (r as { content: { text: string }[] }).content[0]!.text;
const subjectToken = () => fx.idp.idToken();
const READ_AND_UPDATE = [{ type: 'mcp_tool', tools: ['read_record', 'search'], actions: ['read'] }, { type: 'mcp_tool', tools: ['update_record'], actions: ['write'] }];
const SEND = [{ type: 'mcp_tool', tools: ['send_email'], actions: ['write'] }];

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-history-',
    trustDomain: 'history.test',
    idpIssuer: IDP,
    policies: POLICIES,
    resources: [
      { uri: RECORDS, spiffe_id: RECORDS_ID, tools: [{ name: 'read_record', actions: ['read'], classification: 'restricted' }, { name: 'search', actions: ['read'], classification: 'internal' }, { name: 'update_record', actions: ['write'], classification: 'restricted' }] },
      { uri: MAIL, spiffe_id: MAIL_ID, tools: [{ name: 'send_email', actions: ['write'], classification: 'internal', egress: true }] },
    ],
    connectors: { agent: { spiffeId: AGENT_ID, owner: 'platform' }, records: { spiffeId: RECORDS_ID }, mail: { spiffeId: MAIL_ID } },
  });
  urls.records = await startMcp(RECORDS, fx.connectors.records, (s) => {
    s.registerTool('read_record', { inputSchema: { id: z.string() } }, async ({ id }) => (ran.push(`read_record ${id}`), { content: [{ type: 'text', text: `record ${id}: salary 1` }] }));
    s.registerTool('search', { inputSchema: { q: z.string() } }, async ({ q }) => (ran.push(`search ${q}`), { content: [{ type: 'text', text: `found ${q}` }] }));
    s.registerTool('update_record', { inputSchema: { id: z.string() } }, async ({ id }) => ({ content: [{ type: 'text', text: `updated ${id}` }], isError: true }));
  });
  urls.mail = await startMcp(MAIL, fx.connectors.mail, (s) => {
    s.registerTool('send_email', { inputSchema: { to: z.string() } }, async ({ to }) => (ran.push(`send_email ${to}`), { content: [{ type: 'text', text: `sent to ${to}` }] }));
  });
});

afterAll(async () => {
  await Promise.all(protections.map((p) => p.close()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await fx?.close();
});

describe('no egress after a restricted read, across servers and hops', () => {
  let taskId: string;
  let records: Client;
  let mail: Client;
  let recordsToken: string;

  beforeAll(async () => {
    const a = await exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await subjectToken(), resource: RECORDS, details: READ_AND_UPDATE });
    ({ taskId, token: recordsToken } = a);
    // The mail token is taken in the same task before anything was read: the exchange grants it.
    const b = await fx.form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await subjectToken(), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: MAIL, task_id: taskId, authorization_details: JSON.stringify(SEND) }, fx.connectors.agent);
    expect(b.status).toBe(200);
    // The policy set reads the task's history, so every granted tool is decided per call.
    expect(jwtClaims(a.token).per_call).toEqual(['read_record', 'search', 'update_record']);
    expect(jwtClaims(b.json.access_token).per_call).toEqual(['send_email']);
    records = await session(urls.records!, RECORDS_ID, a.token);
    mail = await session(urls.mail!, MAIL_ID, b.json.access_token);
  });
  afterAll(async () => {
    await records?.close();
    await mail?.close();
  });

  it('lets the egress tool run while the task has read nothing restricted', async () => {
    expect(text(await records.callTool({ name: 'search', arguments: { q: 'q1' } }))).toBe('found q1');
    expect(text(await mail.callTool({ name: 'send_email', arguments: { to: 'bob@example.com' } }))).toBe('sent to bob@example.com');
  });

  it('refuses the next egress call on the other server once a restricted record was read, naming the policy and the earlier call', async () => {
    expect(text(await records.callTool({ name: 'read_record', arguments: { id: 'r-7' } }))).toBe('record r-7: salary 1');
    const before = ran.length;
    expect(await errorOf(mail.callTool({ name: 'send_email', arguments: { to: 'eve@example.com' } }))).toEqual({ code: -32001, message: expect.stringContaining('send_email: the policy does not permit it') });
    expect(ran).toHaveLength(before); // the tool never ran
    const refused = await fx.broker.db.prisma.auditEvent.findFirst({ where: { type: 'access.evaluated', actor: MAIL_ID }, orderBy: { seq: 'desc' } });
    expect(refused!.details).toMatchObject({ decision: false, taskId, policies: ['no-egress-after-restricted-read'], taskHistory: { maxClassificationRead: 3, maxReadBy: { server: RECORDS, tool: 'read_record' } } });
  });

  it('refuses a new exchange for the egress tool in the same task, and a chained hop from the records server', async () => {
    const again = await fx.form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await subjectToken(), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: MAIL, task_id: taskId, authorization_details: JSON.stringify(SEND) }, fx.connectors.agent);
    expect([again.status, again.json.error]).toEqual([400, 'access_denied']); // RFC 6749 §5.2
    // The records server passes the user's token on to the mail server (RFC 8693 chaining): the parent's task, so its history.
    const hop = await fx.form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: recordsToken, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: MAIL, authorization_details: JSON.stringify(SEND) }, fx.connectors.records);
    expect([hop.status, hop.json.error]).toEqual([400, 'access_denied']);
    const rows = await fx.broker.db.prisma.auditEvent.findMany({ where: { type: 'token.refused' }, orderBy: { seq: 'desc' }, take: 2 });
    for (const row of rows) {
      const d = row.details as { decisions: { policies: string[] }[]; taskHistory: { maxReadBy: { tool: string; server: string } } };
      expect(d.decisions[0]!.policies).toEqual(['no-egress-after-restricted-read']);
      expect(d.taskHistory.maxReadBy).toMatchObject({ server: RECORDS, tool: 'read_record' });
    }
  });

  it('keeps one history row per call, with the outcome the server reported (a tool error counts as a call)', async () => {
    expect((await records.callTool({ name: 'update_record', arguments: { id: 'r-7' } })).isError).toBe(true);
    await Promise.all(protections.map((p) => p.flush()));
    const events = await fx.broker.db.prisma.taskEvent.findMany({ where: { taskId }, orderBy: { occurredAt: 'asc' } });
    expect(events.map((e) => [e.server, e.tool, e.outcome, e.resourceRef])).toEqual([
      [RECORDS, 'search', 'ok', null],
      [MAIL, 'send_email', 'ok', null],
      [RECORDS, 'read_record', 'ok', 'r-7'],
      [RECORDS, 'update_record', 'error', 'r-7'],
    ]);
    expect(events.every((e) => e.reporter === (e.server === RECORDS ? RECORDS_ID : MAIL_ID))).toBe(true);
    const reported = await fx.broker.db.prisma.auditEvent.count({ where: { type: 'task.calls_reported', subject: 'alice' } });
    expect(reported).toBeGreaterThan(0);
  });

  it('taints only that task: another task of the same user may still send', async () => {
    const other = await exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await subjectToken(), resource: MAIL, details: SEND });
    const client = await session(urls.mail!, MAIL_ID, other.token);
    try {
      expect(text(await client.callTool({ name: 'send_email', arguments: { to: 'carol@example.com' } }))).toBe('sent to carol@example.com');
    } finally {
      await client.close();
    }
  });
});

describe('POST /v1/task-events', () => {
  const post = (body: unknown, as: ClientCert) =>
    fetchJson(`${fx.broker.apiUrl}/v1/task-events`, as, body);
  const fetchJson = async (url: string, as: ClientCert, body: unknown) => {
    const res = await tlsFetch({ ca: fx.caPem, cert: as.cert, key: as.key })(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it('takes reports only from the resource server itself, for its registered tools and actions, naming the wrong field', async () => {
    const { taskId } = await exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await subjectToken(), resource: RECORDS, details: READ_AND_UPDATE });
    const event = { task_id: taskId, call_id: 'c-1', tool: 'search', outcome: 'ok', occurred_at: new Date().toISOString() };
    expect(await post({ events: [event] }, fx.connectors.records)).toEqual({ status: 200, json: { recorded: 1 } });
    expect((await post({ server: RECORDS, events: [event] }, fx.connectors.mail)).json.detail).toBe('server: only the resource server itself (its SVID) reports its calls');
    expect((await post({ events: [event] }, fx.connectors.agent)).json.detail).toBe('server: the caller is not a registered resource server');
    expect((await post({ events: [event, { ...event, call_id: 'c-2', tool: 'send_email' }] }, fx.connectors.records)).json.detail).toBe(`events[1].tool: send_email is not a registered tool of ${RECORDS}`);
    expect((await post({ events: [{ ...event, actions: ['delete'] }] }, fx.connectors.records)).json.detail).toBe('events[0].actions: search is registered for read, not delete');
    expect((await post({ events: [{ ...event, task_id: '00000000-0000-4000-8000-000000000000' }] }, fx.connectors.records)).json.detail).toBe('events[0].task_id: no such task');
    expect((await post({ events: [{ ...event, occurred_at: new Date(Date.now() + 3_600_000).toISOString() }] }, fx.connectors.records)).json.detail).toBe('events[0].occurred_at: a call cannot be reported before it happens');
    // A retried report updates its row: still one call.
    expect((await post({ events: [{ ...event, outcome: 'error' }] }, fx.connectors.records)).status).toBe(200);
    expect(await fx.broker.db.prisma.taskEvent.findMany({ where: { taskId }, select: { callId: true, outcome: true } })).toEqual([{ callId: 'c-1', outcome: 'error' }]);
  });
});
