/**
 * Human approval for high-risk tool actions (issue 18, part 3), end to end with software Writ did
 * not write: an MCP server built with the official SDK v2 behind `writProtection`, and the SDK v2
 * client speaking 2026-07-28. A permit marked `@approval("required")` makes `delete_repo` wait:
 * the call answers `input_required` with a URL elicitation naming the approval; an approver of
 * the configured group approves through REST (with an ID token of the identity provider); the
 * retried call runs. Denied, expired and task-ended approvals end it; the requesting user cannot
 * approve their own request; a signed webhook (Standard Webhooks) announces request and decision.
 */
import { createHmac } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { z } from 'zod';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { tlsFetch, writProtection, type WritProtection } from '../../src/mcp';
import { exchangeTaskToken, spiffeIdIs } from '../support/mcp';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { httpsRequest } from '../support/https';
import { writ } from '../support/cli';
import { ApprovalNotGranted, TaskTokenClient, X509Source } from '../../src/sdk';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const IDP = 'https://idp.approvals.test';
const GITHUB = 'https://mcp.approvals.test/github';
const SERVER_ID = 'spiffe://approvals.test/mcp/github';
const AGENT_ID = 'spiffe://approvals.test/agent/assistant';
const CONSOLE = 'writ-console';
const SECRET = 'whsec_' + Buffer.from('a webhook secret of thirty-two bytes!').toString('base64');
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool) when { principal.groups.contains("eng") };

@id("delete-needs-approval")
@approval("required")
permit (principal, action == Writ::Action::"delete", resource is Writ::Tool) when { principal.groups.contains("eng") };
`;

let fx: BrokerFixture<'agent' | 'github'>;
let mcpHttps: Server;
let hooks: HttpServer;
let protect: WritProtection;
let mcpUrl: string;
let offset = 0;
const clock = { now: () => new Date(Date.now() + offset) };
const ran: string[] = [];
const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];

/** A person's sign-in token: issued by the provider for Writ's console client (WRIT_ADMIN_AUDIENCE), not for the subject tokens' audience. */
const approverToken = (sub: string, groups: string[]) => fx.idp.idToken({ groups }, { subject: sub, audience: CONSOLE });
const api = async (path: string, method = 'GET', bearer?: string, body?: unknown) => {
  const res = await httpsRequest(`${fx.broker.apiUrl}${path}`, { ca: fx.caPem, method, headers: { 'content-type': 'application/json', ...(bearer && { authorization: `Bearer ${bearer}` }) }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
};

async function session(user: string, groups: string[]) {
  const { token, taskId } = await exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await fx.idp.idToken({ groups }, { subject: user }), resource: GITHUB, details: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }] });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    fetch: tlsFetch({ ca: fx.bundlePem, cert: fx.connectors.agent.cert, key: fx.connectors.agent.key, checkServerIdentity: spiffeIdIs(SERVER_ID) }),
    authProvider: { token: async () => token },
  });
  const client = new Client({ name: 'approvals-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } }, inputRequired: { autoFulfill: false } } as never);
  await client.connect(transport);
  const call = (requestState?: string) =>
    client.callTool({ name: 'delete_repo', arguments: { name: 'r1' }, ...(requestState !== undefined && { inputResponses: { 'writ-approval': { action: 'accept' } }, requestState }) } as never, { allowInputRequired: true } as never) as Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  return { client, taskId, call };
}

/** The approval an input_required result points at. */
const approvalOf = (r: Record<string, any>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(r.resultType).toBe('input_required');
  const request = r.inputRequests['writ-approval'];
  expect(request).toMatchObject({ method: 'elicitation/create', params: { mode: 'url', url: expect.stringMatching(/\/v1\/approvals\/[0-9a-f-]{36}$/) } });
  expect(r.requestState).toMatch(/^writ-approval:/);
  return { id: request.params.url.split('/').pop() as string, state: r.requestState as string };
};

const webhook = async (type: string, id: string) => {
  for (let i = 0; i < 100; i++) {
    const hit = received.find((h) => { const b = JSON.parse(h.body); return b.type === type && b.data.id === id; });
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${type} webhook for ${id}`);
};

beforeAll(async () => {
  hooks = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(received.length === 1 ? 503 : 204).end(); // the first delivery fails: it is retried
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  fx = await startBrokerFixture({
    prefix: 'writ-approvals-',
    trustDomain: 'approvals.test',
    idpIssuer: IDP,
    policies: POLICIES,
    clock,
    env: { WRIT_ADMIN_AUDIENCE: CONSOLE, WRIT_ADMIN_ROLES: JSON.stringify([{ role: 'operator', issuer: IDP, group: 'soc' }]), WRIT_APPROVAL_GROUP: 'security', WRIT_APPROVAL_TTL: '60', WRIT_APPROVAL_WEBHOOK_URL: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hooks`, WRIT_APPROVAL_WEBHOOK_SECRET: SECRET },
    resources: [{ uri: GITHUB, spiffe_id: SERVER_ID, tools: [{ name: 'delete_repo', actions: ['delete'], classification: 'restricted' }] }],
    connectors: { agent: { spiffeId: AGENT_ID }, github: { spiffeId: SERVER_ID } },
  });
  protect = writProtection({
    resource: GITHUB,
    issuer: fx.config.issuer,
    jwksUri: `${fx.broker.apiUrl}/oauth2/jwks`,
    ca: fx.bundlePem,
    introspect: { url: `${fx.broker.apiUrl}/oauth2/introspect`, tls: { cert: fx.connectors.github.cert, key: fx.connectors.github.key, ca: fx.bundlePem }, cacheMs: 0 },
    approvalWaitMs: 5000,
  });
  const node = toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServer({ name: 'github', version: '1.0.0' });
      server.registerTool('delete_repo', { description: 'Delete a repository', inputSchema: z.object({ name: z.string() }) }, async ({ name }) => (ran.push(name), { content: [{ type: 'text' as const, text: `deleted ${name}` }] }));
      return server;
    }),
  );
  const app = express();
  app.post('/mcp', express.json(), protect, (req, res) => void node(req, res, req.body));
  mcpHttps = createServer({ cert: fx.connectors.github.cert, key: fx.connectors.github.key, ca: fx.bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  await new Promise<void>((r) => mcpHttps.listen(0, '127.0.0.1', r));
  mcpUrl = `https://127.0.0.1:${(mcpHttps.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  await protect?.close();
  mcpHttps?.closeAllConnections();
  await new Promise((r) => (mcpHttps ? mcpHttps.close(r) : r(undefined)));
  await new Promise((r) => (hooks ? hooks.close(r) : r(undefined)));
  await fx?.close();
});

describe('a tool action that needs an approver', () => {
  it('waits (input_required with a URL elicitation), is approved by an approver, and the retried call runs', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const { id, state } = approvalOf(await alice.call());
      expect(ran).toEqual([]);
      const carol = await approverToken('carol', ['security']);
      const pending = await api('/v1/approvals?status=pending', 'GET', carol);
      expect(pending.json.approvals.map((a: { id: string }) => a.id)).toContain(id);
      expect((await api(`/v1/approvals/${id}`, 'GET', carol)).json).toMatchObject({ id, status: 'pending', task_id: alice.taskId, user: { sub: 'alice', iss: IDP }, connector: AGENT_ID, server: GITHUB, tool: 'delete_repo', action: 'delete', classification: 'restricted', policies: ['delete-needs-approval'] });
      // A subject token (the audience connectors hold) is no sign-in: a connector cannot approve with a user's ID token.
      expect((await api(`/v1/approvals/${id}/approve`, 'POST', await fx.idp.idToken({ groups: ['security'] }, { subject: 'carol' }), {})).status).toBe(401);
      // Not an approver: refused, and the request is not listed for them.
      expect((await api(`/v1/approvals/${id}/approve`, 'POST', await approverToken('mallory', ['eng']), {})).status).toBe(403);
      expect((await api('/v1/approvals?status=pending', 'GET', await approverToken('mallory', ['eng']))).json.approvals).toEqual([]);
      expect((await api(`/v1/approvals/${id}/approve`, 'POST', undefined, {})).status).toBe(401);
      // The retried call is held while pending; the approver approves meanwhile, and it runs.
      const approved = new Promise((r) => setTimeout(r, 600)).then(() => api(`/v1/approvals/${id}/approve`, 'POST', carol, { reason: 'cleanup ticket 42' }));
      const result = await alice.call(state);
      expect((await approved).json).toMatchObject({ status: 'approved', decided_by: { sub: 'carol', iss: IDP }, approved_until: expect.any(String) });
      expect(result.content).toEqual([{ type: 'text', text: 'deleted r1' }]);
      expect(ran).toEqual(['r1']);
      const audit = await fx.broker.db.prisma.auditEvent.findFirst({ where: { type: 'approval.decided' }, orderBy: { seq: 'desc' } });
      expect([audit!.subject, audit!.actor, (audit!.details as { decision: string }).decision]).toEqual(['alice', `user:${IDP}#carol`, 'approved']);
      // Deciding twice is a conflict.
      expect((await api(`/v1/approvals/${id}/deny`, 'POST', carol, {})).status).toBe(409);
    } finally {
      await alice.client.close();
    }
  });

  it('announces request and decision with a Standard Webhooks signature, retrying a failed delivery', async () => {
    const [requested] = await fx.broker.db.prisma.approval.findMany({ orderBy: { requestedAt: 'asc' }, take: 1 });
    for (const type of ['approval.requested', 'approval.decided']) {
      const hit = await webhook(type, requested!.id);
      const [id, ts, sig] = [hit.headers['webhook-id'], hit.headers['webhook-timestamp'], hit.headers['webhook-signature']] as string[];
      const expected = createHmac('sha256', Buffer.from(SECRET.slice('whsec_'.length), 'base64')).update(`${id}.${ts}.${hit.body}`).digest('base64');
      expect(sig).toBe(`v1,${expected}`);
      expect(JSON.parse(hit.body).data).toMatchObject({ id: requested!.id, tool: 'delete_repo', url: `${fx.config.issuer}/v1/approvals/${requested!.id}` });
    }
    // The first delivery was answered 503: the same webhook (same webhook-id) is sent again after a backoff of 5 s.
    const first = received[0]!;
    for (let i = 0; i < 150 && received.filter((h) => h.headers['webhook-id'] === first.headers['webhook-id']).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(received.filter((h) => h.headers['webhook-id'] === first.headers['webhook-id']).map((h) => h.body)).toEqual([first.body, first.body]);
    const row = await fx.broker.db.prisma.webhookDelivery.findUnique({ where: { id: first.headers['webhook-id'] as string } });
    expect([row!.attempts, row!.deliveredAt !== null]).toEqual([2, true]);
  });

  it('refuses the call once an approver denied it', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const { id, state } = approvalOf(await alice.call());
      expect((await api(`/v1/approvals/${id}/deny`, 'POST', await approverToken('carol', ['security']), { reason: 'no ticket' })).json.status).toBe('denied');
      await expect(alice.call(state)).rejects.toMatchObject({ code: -32001, message: expect.stringContaining('an approver denied it') });
    } finally {
      await alice.client.close();
    }
  });

  it('lets an operator deny a request it is no approver of, but never approve it (issue 19)', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const { id, state } = approvalOf(await alice.call());
      const operator = await approverToken('olga', ['soc']);
      const approve = await api(`/v1/approvals/${id}/approve`, 'POST', operator, { reason: 'looks fine' });
      expect([approve.status, approve.json.detail]).toEqual([403, 'only members of "security" decide this request']);
      const deny = await api(`/v1/approvals/${id}/deny`, 'POST', operator, { reason: 'incident under way' });
      expect([deny.status, deny.json.status, deny.json.decided_by.sub]).toEqual([200, 'denied', 'olga']);
      const audited = await api(`/v1/admin/audit?type=approval.decided&task_id=${alice.taskId}`, 'GET', operator);
      expect(audited.json.events[0]).toMatchObject({ actor: `user:${IDP}#olga`, details: { decision: 'denied', as: 'operator', reason: 'incident under way' } });
      await expect(alice.call(state)).rejects.toMatchObject({ code: -32001, message: expect.stringContaining('an approver denied it') });
    } finally {
      await alice.client.close();
    }
  });

  it('never lets the requesting user approve their own request', async () => {
    const bob = await session('bob', ['eng', 'security']);
    try {
      const { id } = approvalOf(await bob.call());
      const own = await api(`/v1/approvals/${id}/approve`, 'POST', await approverToken('bob', ['eng', 'security']), {});
      expect([own.status, own.json.detail]).toEqual([403, 'the requesting user cannot approve their own request']);
    } finally {
      await bob.client.close();
    }
  });

  it('is decided with the CLI as the README shows: writ approvals list, show, approve', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const { id, state } = approvalOf(await alice.call());
      const tokenFile = join(fx.work, 'carol.jwt');
      writeFileSync(tokenFile, await approverToken('carol', ['security']), { mode: 0o600 });
      const env = { WRIT_SERVER: fx.broker.apiUrl, WRIT_CA: join(fx.config.caDir, 'ca.crt') };
      const list = await writ(['approvals', 'list', '--id-token', tokenFile, '-o', 'json'], env);
      expect(list.json().approvals.map((a: { id: string }) => a.id)).toContain(id);
      expect((await writ(['approvals', 'list', '--id-token', tokenFile], env)).stdout.split('\n')[0]).toMatch(/^ID +STATUS +USER +TOOL +CLASS +EXPIRES$/);
      expect((await writ(['approvals', 'show', id, '--id-token', tokenFile], env)).stdout).toMatch(/^asks +delete_repo delete \(restricted\) on https:\/\/mcp\.approvals\.test\/github$/m);
      const approved = await writ(['approvals', 'approve', id, '--id-token', tokenFile, '--reason', 'ticket 7', '--valid-for', '2m', '-o', 'json'], env);
      expect(approved.json()).toMatchObject({ id, status: 'approved', decided_by: { sub: 'carol' } });
      expect((await alice.call(state)).content).toEqual([{ type: 'text', text: 'deleted r1' }]);
      const again = await writ(['approvals', 'deny', id, '--id-token', tokenFile], env);
      expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/409/)]);
      const noToken = await writ(['approvals', 'approve', id], env);
      expect(noToken.code).toBe(2);
    } finally {
      await alice.client.close();
    }
  });

  it('lets a connector wait for the approver with the SDK (TaskTokenClient.waitForApproval), then the retried call runs', async () => {
    const entry = (await fx.admin(`/v1/admin/entries?spiffe_id_prefix=${encodeURIComponent(AGENT_ID)}`, 'GET')).json.entries.find((e: { spiffe_id: string }) => e.spiffe_id === AGENT_ID);
    const join = await fx.admin('/v1/admin/join-tokens', 'POST', { entry_id: entry.id, ttl: 600 });
    const source = await X509Source.create({ server: fx.broker.apiUrl, bundle: fx.caPem, attestation: { joinToken: join.json.token } });
    const alice = await session('alice', ['eng']);
    try {
      const tokens = new TaskTokenClient(source);
      const first = approvalOf(await alice.call());
      const carol = await approverToken('carol', ['security']);
      let polls = 0;
      setTimeout(() => void api(`/v1/approvals/${first.id}/approve`, 'POST', carol, {}), 1500);
      const approved = await tokens.waitForApproval(`${fx.config.issuer}/v1/approvals/${first.id}`, { onPending: () => polls++ });
      expect([approved.status, polls >= 1, approved.approvedUntil instanceof Date]).toEqual(['approved', true, true]);
      expect((await alice.call(first.state)).content).toEqual([{ type: 'text', text: 'deleted r1' }]);
      // A denied one ends the wait with ApprovalNotGranted.
      const other = await session('alice', ['eng']);
      try {
        const second = approvalOf(await other.call());
        await api(`/v1/approvals/${second.id}/deny`, 'POST', carol, { reason: 'not today' });
        await expect(tokens.waitForApproval(second.id)).rejects.toEqual(expect.objectContaining({ name: 'ApprovalNotGranted', approval: expect.objectContaining({ status: 'denied', reason: 'not today' }) }));
        expect(ApprovalNotGranted).toBeDefined();
      } finally {
        await other.client.close();
      }
    } finally {
      await alice.client.close();
      source.close();
    }
  });

  it('ends an approval with its task', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const { id } = approvalOf(await alice.call());
      expect((await api(`/v1/approvals/${id}/approve`, 'POST', await approverToken('carol', ['security']), {})).json.status).toBe('approved');
      expect((await httpsRequest(`${fx.broker.apiUrl}/v1/tasks/${alice.taskId}/end`, { ca: fx.caPem, method: 'POST', cert: fx.connectors.agent.cert, key: fx.connectors.agent.key })).status).toBe(200);
      expect((await api(`/v1/approvals/${id}`, 'GET', fx.adminToken)).json.status).toBe('revoked');
    } finally {
      await alice.client.close();
    }
  });
  it('ends an approval when a token of its task is revoked (RFC 7009, by its connector)', async () => {
    const { token, taskId } = await exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await fx.idp.idToken({ groups: ['eng'] }), resource: GITHUB, details: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }] });
    const alice = await session('alice', ['eng']);
    try {
      // A request opened in that task through the PDP, as the MCP server asks.
      const evaluation = await httpsRequest(`${fx.broker.apiUrl}/access/v1/evaluation`, { ca: fx.caPem, method: 'POST', cert: fx.connectors.github.cert, key: fx.connectors.github.key, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ subject: { type: 'identity', id: 'alice' }, action: { name: 'tools/call' }, resource: { type: 'tool', id: 'delete_repo' }, context: { task_id: taskId } }) });
      const id = JSON.parse(evaluation.body).context.approval.id as string;
      expect((await api(`/v1/approvals/${id}/approve`, 'POST', await approverToken('carol', ['security']), {})).json.status).toBe('approved');
      expect((await fx.form('/oauth2/revoke', { token }, fx.connectors.agent)).status).toBe(200);
      expect((await api(`/v1/approvals/${id}`, 'GET', fx.adminToken)).json).toMatchObject({ status: 'revoked', decision_reason: 'a token of the task was revoked' });
    } finally {
      await alice.client.close();
    }
  });

  it('expires a request no one decided, and asks again', async () => {
    const alice = await session('alice', ['eng']);
    try {
      const first = approvalOf(await alice.call());
      offset += 61_000; // WRIT_APPROVAL_TTL is 60 s (last: the broker's clock stays ahead)
      const carol = await approverToken('carol', ['security']);
      expect((await api(`/v1/approvals/${first.id}`, 'GET', carol)).json.status).toBe('expired');
      expect((await api(`/v1/approvals/${first.id}/approve`, 'POST', carol, {})).status).toBe(409);
      const second = approvalOf(await alice.call());
      expect(second.id).not.toBe(first.id);
    } finally {
      await alice.client.close();
    }
  });

});
