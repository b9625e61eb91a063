#!/usr/bin/env node
/**
 * Writ in five minutes: `npm run demo`.
 *
 * Everything here is real: the built broker on its embedded database, an MCP server made with
 * the official SDK and protected by `@writ/mcp`, a connector that attests with a join token and
 * keeps its SVID with `@writ/sdk`, an agent acting for two users through the official MCP
 * client, the users' ID tokens from a local OpenID Provider (`oidc-provider`, as `writ dev`
 * runs it) that Writ trusts through OpenID Connect Discovery, and a SaaS (oidc-provider as its
 * authorization server, with an API) that the issues server calls for alice through Writ's token
 * vault. The demo prints each step; `test/demo/demo.test.ts` runs it and checks them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import express from 'express';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
// The package's own exports, as a connector or an MCP server author would import them.
import { McpServer as McpServerV2, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { Client as ClientV2, StreamableHTTPClientTransport as StreamableHTTPClientTransportV2 } from '@modelcontextprotocol/client';
import { AccessDeniedError, TaskTokenClient, X509Source, authorizeId, createHttpsServer, tlsServerOptions } from '@writ/sdk';
import { AccountLinkRequired, grantedToolsOnly, linkRequiredResult, protectedResourceMetadataHandler, tlsFetch, writIdentityOf, writProtection, writVault } from '@writ/mcp';

const require = createRequire(import.meta.url);
const { startBroker } = require('../dist/broker.js');
const { loadConfig } = require('../dist/config/index.js');
const { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID, freePort, startDevOp } = require('../dist/dev/op.js');
const { fetchIdToken } = require('../dist/dev/id-token.js');
const { newSigningKey } = require('../dist/dev/keys.js');
const { SAAS_SCOPES, SAAS_VAULT_CLIENT_ID, startDevSaas } = require('../dist/dev/saas.js');
const { linkAccount } = require('../dist/dev/link.js');

const TD = 'demo.writ';
const CONNECTOR = `spiffe://${TD}/agent/assistant`;
const ISSUES_SERVER = `spiffe://${TD}/mcp/issues`;
const INDEX_SERVER = `spiffe://${TD}/mcp/search-index`;
const POLICY = `// Engineers read internal tools; maintainers also write. Nothing allows delete, and no
// "delegate" permit lets the issues server pass a user's task on to another server.
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("maintainers-write-internal")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool)
when { principal.groups.contains("maintainers") && context.classification_level <= 1 };
`;

const out = (line = '') => process.stdout.write(`${line}\n`);
const step = (n, title) => out(`\n${n}. ${title}`);
const ok = (text) => out(`   ✔ ${text}`);
const no = (text) => out(`   ✘ ${text}`);

/** The OAuth error an MCP client call was refused with (RFC 6750 §3.1), in one line. */
const refusal = (err) => {
  const text = String(err?.message ?? err);
  const m = /"error":"([^"]+)","error_description":"((?:[^"\\]|\\.)*)"/.exec(text);
  return m ? `${m[1]}: ${m[2].replace(/\\"/g, '"')}` : text.split('\n')[0];
};

const work = mkdtempSync(join(tmpdir(), 'writ-demo-'));
const closers = [];

/** A JSON request to the broker with a bearer credential: the admin token, or an approver's ID token. */
function adminCall(broker, ca, token, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = request(`${broker.apiUrl}${path}`, { method, ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => {
        const json = text ? JSON.parse(text) : undefined;
        if (res.statusCode >= 400) reject(new Error(`${method} ${path}: ${res.statusCode} ${json?.detail ?? text}`));
        else resolve(json);
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function main() {
  out('Writ demo: a connector acting for two people, with a task token per task.');

  // --- The broker -----------------------------------------------------------------------
  // The people's identity provider: a real OpenID Provider on a loopback port, with two test users.
  const users = new Map([
    ['alice', { name: 'alice', groups: ['eng'] }],
    ['bob', { name: 'bob', groups: ['eng', 'maintainers'] }],
    ['carol', { name: 'carol', groups: ['security'] }],
  ]);
  const port = await freePort();
  const issuer = `https://localhost:${port}`;
  const devKeys = async () => ({ signing: [await newSigningKey()], cookies: [randomBytes(32).toString('base64url')] });
  // People sign in to Writ's own pages (the vault's link, approvals) with the provider's console client.
  const op = await startDevOp({ host: '127.0.0.1', port: 0, users, keys: await devKeys(), consoleRedirectUris: [`${issuer}/console/callback`] });
  closers.push(() => op.close());
  // A SaaS the issues server posts to for its users ("Acme Notes": oidc-provider as its authorization server, and its API).
  // Writ's vault is its OAuth client; on localhost, another host than the identity provider's, so a browser keeps their cookies apart.
  const saasSecret = randomBytes(24).toString('base64url');
  const saas = await startDevSaas({ host: 'localhost', port: 0, users, keys: await devKeys(), clientSecret: saasSecret, redirectUris: [`${issuer}/v1/vault/callback`] });
  closers.push(() => saas.close());
  writeFileSync(join(work, 'policy.cedar'), POLICY);
  const adminToken = randomBytes(24).toString('base64url');
  const config = loadConfig({
    WRIT_PORT: String(port),
    WRIT_OPS_PORT: '0',
    WRIT_TRUST_DOMAIN: TD,
    WRIT_DATA_DIR: join(work, 'data'),
    WRIT_CA_DIR: join(work, 'certs'),
    WRIT_ADMIN_TOKEN: adminToken,
    WRIT_LOG_LEVEL: process.env.DEMO_LOG_LEVEL ?? 'silent',
    WRIT_POLICY_FILE: join(work, 'policy.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
    // People (carol, approving) sign in to Writ with the provider's second client, never with a subject token's audience.
    WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
    WRIT_APPROVAL_GROUP: 'security',
  });
  const broker = await startBroker(config);
  closers.push(() => broker.shutdown());
  const ca = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
  const admin = (method, path, body) => adminCall(broker, ca, adminToken, method, path, body);
  step(1, `Broker up at ${broker.apiUrl} (embedded database, trust domain ${TD})`);
  ok('policy loaded: engineers read, maintainers write, nobody deletes, no delegation');
  ok(`identity provider: ${op.issuer} (oidc-provider), its keys found by OpenID Connect Discovery`);

  // --- Identities: the connector and the MCP server attest with join tokens ---------------
  const joinToken = async (spiffeId) => {
    const entry = await admin('POST', '/v1/admin/entries', { spiffe_id: spiffeId });
    return (await admin('POST', '/v1/admin/join-tokens', { entry_id: entry.id })).token;
  };
  const source = (spiffeId) =>
    joinToken(spiffeId).then((token) => X509Source.create({ server: broker.apiUrl, bundle: ca, attestation: { joinToken: token } }));
  const agentSource = await source(CONNECTOR);
  const serverSource = await source(ISSUES_SERVER);
  closers.push(() => agentSource.close(), () => serverSource.close());
  const svid = agentSource.getX509Svid();
  step(2, 'The connector attests with a one-time join token');
  ok(`SVID issued: ${svid.spiffeId}, serial ${svid.serialNumber.slice(0, 12)}…, valid until ${svid.notAfter.toISOString()}`);
  ok('its private key was made in the connector and never left it');

  // --- The MCP server: official SDK, protected by @writ/mcp --------------------------------
  const app = express();
  const https = createHttpsServer(tlsServerOptions(serverSource, authorizeId(CONNECTOR)), app);
  await new Promise((resolve) => https.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => https.close(resolve)));
  const resource = `https://127.0.0.1:${https.address().port}/issues`;
  const indexResource = 'https://search-index.demo.writ/mcp';
  await admin('POST', '/v1/admin/resources', {
    uri: resource,
    spiffe_id: ISSUES_SERVER,
    tools: [
      { name: 'list_issues', actions: ['read'], classification: 'internal' },
      { name: 'create_issue', actions: ['write'], classification: 'internal' },
      { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
      { name: 'search_related', actions: ['read'], classification: 'internal' },
    ],
  });
  await admin('POST', '/v1/admin/resources', { uri: indexResource, spiffe_id: INDEX_SERVER, tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] });

  const serverTokens = new TaskTokenClient(serverSource);
  const issues = [{ id: 1, title: 'Login page is slow' }];
  const mcpServer = () => {
    const server = new McpServer({ name: 'issues', version: '1.0.0' });
    server.registerTool('list_issues', { description: 'List open issues', inputSchema: {} }, async (_args, extra) => {
      const who = writIdentityOf(extra.authInfo);
      return { content: [{ type: 'text', text: `${issues.length} open issue(s), for ${who.user} via ${who.connector}` }] };
    });
    server.registerTool('create_issue', { description: 'Open an issue', inputSchema: { title: z.string() } }, async ({ title }, extra) => {
      issues.push({ id: issues.length + 1, title });
      return { content: [{ type: 'text', text: `opened #${issues.length} "${title}" for ${writIdentityOf(extra.authInfo).user}` }] };
    });
    server.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: {} }, async () => ({ content: [{ type: 'text', text: 'deleted' }] }));
    server.registerTool('search_related', { description: 'Ask the search index (a downstream MCP server)', inputSchema: { query: z.string() } }, async ({ query }, extra) => {
      // The issues server would pass the user's task on to the search index: a chained exchange.
      try {
        await serverTokens.chain({ token: extra.authInfo.token, resource: indexResource, tools: [{ name: 'search', actions: ['read'] }] });
        return { content: [{ type: 'text', text: `searched ${query}` }] };
      } catch (err) {
        if (err instanceof AccessDeniedError) return { isError: true, content: [{ type: 'text', text: `downstream refused: ${err.error}: ${err.error_description}` }] };
        throw err;
      }
    });
    return grantedToolsOnly(server);
  };
  const bundle = () => serverSource.getBundle().x509AuthoritiesPem;
  const protect = writProtection({
    resource,
    issuer: config.issuer,
    jwksUri: `${broker.apiUrl}/oauth2/jwks`,
    ca: bundle(),
    introspect: { url: `${broker.apiUrl}/oauth2/introspect`, cacheMs: 0, tls: { cert: serverSource.getX509Svid().certificatesPem, key: serverSource.getX509Svid().privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle() } },
    // What each tool does: a refused call's step-up challenge names the tool and these actions.
    toolActions: { list_issues: 'read', create_issue: 'write', delete_repo: 'delete', search_related: 'read' },
  });
  app.use(protectedResourceMetadataHandler({ resource, issuer: config.issuer }));
  app.post('/issues', express.json(), protect, async (req, res) => {
    const server = mcpServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => void server.close());
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  step(3, `MCP server "issues" up at ${resource}, protected by @writ/mcp (its own SVID: ${ISSUES_SERVER})`);
  ok('tools: list_issues (read), create_issue (write), delete_repo (delete), search_related (calls a downstream server)');

  // --- The agent acts for two people -------------------------------------------------------
  const agentTokens = new TaskTokenClient(agentSource);
  /** The user signs in at the provider (authorization code flow with PKCE); its ID token carries their groups. */
  const idToken = (sub) => fetchIdToken({ issuer: op.issuer, username: sub });
  const ask = [
    { name: 'list_issues', actions: ['read'] },
    { name: 'create_issue', actions: ['write'] },
    { name: 'delete_repo', actions: ['delete'] },
    { name: 'search_related', actions: ['read'] },
  ];
  /** `fetch` over mutual TLS with the agent's SVID, to the issues server only. */
  const agentFetch = () => {
    const material = agentSource.getX509Svid();
    return tlsFetch({
      ca: agentSource.getBundle().x509AuthoritiesPem,
      cert: material.certificatesPem,
      key: material.privateKey.export({ format: 'pem', type: 'pkcs8' }),
      checkServerIdentity: (_host, cert) => ((cert.subjectaltname ?? '').split(', ').includes(`URI:${ISSUES_SERVER}`) ? undefined : new Error('not the issues server')),
    });
  };
  const mcpClient = async (token) => {
    const client = new Client({ name: 'demo-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch: agentFetch(), requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    return client;
  };
  const call = async (client, name, args = {}) => {
    try {
      const result = await client.callTool({ name, arguments: args });
      return { ok: !result.isError, text: result.content?.[0]?.text ?? '' };
    } catch (err) {
      return { ok: false, text: refusal(err) };
    }
  };

  const tasks = {};
  for (const [n, user, groups] of [[4, 'alice', ['eng']], [5, 'bob', ['eng', 'maintainers']]]) {
    step(n, `The agent starts a task for ${user} (groups: ${groups.join(', ')}) and asks for all four tools`);
    const task = await agentTokens.exchange({ subjectToken: await idToken(user), resource, tools: ask });
    tasks[user] = task;
    const granted = task.granted.flatMap((d) => d.tools.map((t) => `${t}:${d.actions.join('+')}`));
    ok(`task token granted for ${granted.join(', ')} only (task ${task.taskId.slice(0, 8)}…, expires ${task.expiresAt.toISOString()})`);
    const client = await mcpClient(task.accessToken);
    const listed = (await client.listTools()).tools.map((t) => t.name);
    ok(`tools/list shows ${listed.join(', ')}`);
    const listedIssues = await call(client, 'list_issues');
    (listedIssues.ok ? ok : no)(`list_issues: ${listedIssues.text}`);
    const created = await call(client, 'create_issue', { title: `Reported by ${user}` });
    (created.ok ? ok : no)(`create_issue: ${created.ok ? created.text : `refused (${created.text})`}`);
    const deleted = await call(client, 'delete_repo');
    (deleted.ok ? ok : no)(`delete_repo: ${deleted.ok ? deleted.text : `refused (${deleted.text})`}`);
    await client.close();
  }

  step(6, 'Step-up: a task that began with list_issues alone calls create_issue');
  for (const [user, groups] of [['bob', ['eng', 'maintainers']], ['alice', ['eng']]]) {
    // taskFetch: the first request exchanges for the tools asked; a 403 insufficient_scope that
    // names a tool makes it exchange again within the same task, policy deciding again, and retry once.
    const stepUps = [];
    const fetch = agentTokens.taskFetch(
      { subjectToken: await idToken(user), resource, tools: [{ name: 'list_issues', actions: ['read'] }] },
      { fetch: agentFetch(), onStepUp: (e) => stepUps.push(e) },
    );
    const client = new Client({ name: 'demo-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch }));
    const first = await fetch.token();
    ok(`${user}: task ${first.taskId.slice(0, 8)}… begins with ${first.granted.flatMap((d) => d.tools).join(', ')}`);
    const created = await call(client, 'create_issue', { title: `Stepped up by ${user}` });
    for (const e of stepUps) {
      const asked = e.tools.map((t) => `${t.name}:${t.actions.join('+')}`).join(', ');
      if (e.granted) ok(`${user}: the server asked for ${asked}; policy granted it in the same task (${e.token.taskId === first.taskId ? 'same task' : 'another task!'})`);
      else no(`${user}: the server asked for ${asked}; policy refused${e.refused ? ` (${e.refused.error})` : ` it (granted only ${e.token.granted.flatMap((d) => d.tools).join(', ')})`}`);
    }
    (created.ok ? ok : no)(`${user}: create_issue: ${created.ok ? created.text : `refused (${created.text})`}`);
    await client.close();
    await fetch.end();
  }

  step(7, 'A chained call: the issues server passes alice\'s task on to the search index');
  {
    const client = await mcpClient(tasks.alice.accessToken);
    const chained = await call(client, 'search_related', { query: 'login' });
    (chained.ok ? ok : no)(`search_related: ${chained.ok ? chained.text : chained.text}`);
    await client.close();
  }

  step(8, 'Bob\'s task ends; the next call with its token is refused');
  const ended = await agentTokens.endTask(tasks.bob.taskId);
  ok(`task ended: ${ended.revoked} token(s) revoked`);
  const after = await mcpClient(tasks.bob.accessToken).then(
    async (client) => {
      const r = await call(client, 'list_issues');
      await client.close();
      return r;
    },
    (err) => ({ ok: false, text: refusal(err) }),
  );
  (after.ok ? ok : no)(`list_issues after the task ended: ${after.ok ? after.text : `refused (${after.text})`}`);

  step(9, 'Every call governed: task history across servers, and an approver for delete_repo');
  {
    // Two more MCP servers (SDK v2, stateless) on the same HTTPS server and SVID, and a policy change that applies from the next call.
    const origin = new URL(resource).origin;
    const records = `${origin}/records`;
    const mail = `${origin}/mail`;
    const repos = `${origin}/repos`;
    await admin('POST', '/v1/admin/resources', { uri: records, spiffe_id: ISSUES_SERVER, tools: [{ name: 'read_record', actions: ['read'], classification: 'restricted' }] });
    await admin('POST', '/v1/admin/resources', { uri: mail, spiffe_id: ISSUES_SERVER, tools: [{ name: 'send_email', actions: ['write'], classification: 'internal', egress: true }] });
    await admin('POST', '/v1/admin/resources', { uri: repos, spiffe_id: ISSUES_SERVER, tools: [{ name: 'delete_repo', actions: ['delete'], classification: 'restricted' }] });
    const { policies } = await admin('GET', '/v1/admin/policies');
    await admin('PUT', '/v1/admin/policies', {
      policies: `${policies}
@id("eng-records-and-mail")
permit (principal is Writ::User, action in [Writ::Action::"read", Writ::Action::"write"], resource is Writ::Tool) when { principal.groups.contains("eng") && (resource.name == "read_record" || resource.name == "send_email") };

@id("no-egress-after-restricted-read")
forbid (principal, action, resource) when { resource.egress && context.task.max_classification_read >= 3 };

@id("maintainers-delete-with-approval")
@approval("required")
permit (principal, action == Writ::Action::"delete", resource is Writ::Tool) when { principal.groups.contains("maintainers") };
`,
    });
    ok('policy changed: no egress after a restricted read; delete_repo for maintainers once an approver of "security" says yes');
    const tls = { cert: serverSource.getX509Svid().certificatesPem, key: serverSource.getX509Svid().privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle() };
    for (const [uri, tool, answer] of [[records, 'read_record', () => 'record 7: salary band E'], [mail, 'send_email', (a) => `sent to ${a.to}`], [repos, 'delete_repo', () => 'deleted the repository']]) {
      const guard = writProtection({ resource: uri, issuer: config.issuer, jwksUri: `${broker.apiUrl}/oauth2/jwks`, ca: bundle(), introspect: { url: `${broker.apiUrl}/oauth2/introspect`, cacheMs: 0, tls } });
      closers.push(() => guard.close());
      const node = toNodeHandler(createMcpHandler(() => {
        const server = new McpServerV2({ name: tool, version: '1.0.0' });
        server.registerTool(tool, { description: tool, inputSchema: z.object({ to: z.string().optional() }) }, async (args) => ({ content: [{ type: 'text', text: answer(args) }] }));
        return server;
      }));
      app.post(new URL(uri).pathname, express.json(), guard, (req, res) => void node(req, res, req.body));
    }
    const v2 = async (uri, token) => {
      const client = new ClientV2({ name: 'demo-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } }, inputRequired: { autoFulfill: false } });
      await client.connect(new StreamableHTTPClientTransportV2(new URL(uri), { fetch: agentFetch(), authProvider: { token: async () => token } }));
      return client;
    };
    const callV2 = async (client, name, args = {}, more = {}) => {
      try {
        const r = await client.callTool({ name, arguments: args, ...more }, { allowInputRequired: true });
        return r.resultType === 'input_required' ? { pending: r } : { ok: !r.isError, text: r.content?.[0]?.text ?? '' };
      } catch (err) {
        return { ok: false, text: `${err.code} ${err.message}` };
      }
    };

    const aliceId = await idToken('alice');
    const recordsTask = await agentTokens.exchange({ subjectToken: aliceId, resource: records, tools: [{ name: 'read_record', actions: ['read'] }] });
    const mailTask = await agentTokens.exchange({ subjectToken: aliceId, resource: mail, tools: [{ name: 'send_email', actions: ['write'] }], taskId: recordsTask.taskId });
    const toRecords = await v2(records, recordsTask.accessToken);
    const toMail = await v2(mail, mailTask.accessToken);
    const sent = await callV2(toMail, 'send_email', { to: 'bob@example.com' });
    (sent.ok ? ok : no)(`alice, mail server: send_email ${sent.ok ? sent.text : `refused (${sent.text})`}`);
    const read = await callV2(toRecords, 'read_record');
    (read.ok ? ok : no)(`alice, records server: read_record (restricted) ${read.ok ? `→ ${read.text}` : `refused (${read.text})`}`);
    const again = await callV2(toMail, 'send_email', { to: 'eve@example.com' });
    (again.ok ? ok : no)(`alice, mail server: send_email ${again.ok ? again.text : `refused (${again.text})`}`);
    const { events: refused } = await admin('GET', '/v1/admin/audit?type=access.evaluated&limit=20');
    const why = refused.find((e) => e.details.decision === false && e.details.tool === 'send_email');
    if (why) ok(`audit #${why.seq}: denied by ${why.details.policies.join(', ')}, after ${why.details.taskHistory.maxReadBy.tool} on ${why.details.taskHistory.maxReadBy.server}`);
    await toRecords.close();
    await toMail.close();

    const bobTask = await agentTokens.exchange({ subjectToken: await idToken('bob'), resource: repos, tools: [{ name: 'delete_repo', actions: ['delete'] }] });
    const toRepos = await v2(repos, bobTask.accessToken);
    const first = await callV2(toRepos, 'delete_repo');
    if (first.pending) {
      const url = first.pending.inputRequests['writ-approval'].params.url;
      ok(`bob, repos server: delete_repo waits for an approver (input_required, ${url.replace(/[0-9a-f-]{36}$/, (id) => `${id.slice(0, 8)}…`)})`);
      const approval = await adminCall(broker, ca, await fetchIdToken({ issuer: op.issuer, username: 'carol', clientId: DEV_CONSOLE_CLIENT_ID }), 'POST', `/v1/approvals/${url.split('/').pop()}/approve`, { reason: 'the repository is archived' });
      ok(`carol (security) approves it: ${approval.status}, until ${approval.approved_until}`);
      const retried = await callV2(toRepos, 'delete_repo', {}, { inputResponses: { 'writ-approval': { action: 'accept' } }, requestState: first.pending.requestState });
      (retried.ok ? ok : no)(`bob, repos server: delete_repo retried: ${retried.ok ? retried.text : `refused (${retried.text})`}`);
    } else (first.ok ? ok : no)(`bob, repos server: delete_repo ${first.ok ? 'ran without an approval!' : `refused (${first.text})`}`);
    await toRepos.close();
  }


  step(10, 'The issues server posts to a SaaS for alice through Writ\'s token vault, holding no SaaS credential');
  {
    const notesUri = `${new URL(resource).origin}/notes`;
    await admin('POST', '/v1/admin/resources', { uri: notesUri, spiffe_id: ISSUES_SERVER, tools: [{ name: 'post_note', actions: ['write'], classification: 'internal' }] });
    // Writ, not the connector, is the SaaS's OAuth client: its secret goes to Writ, sealed, never returned.
    await admin('POST', '/v1/admin/providers', { id: 'notes', issuer: saas.issuer, client_id: SAAS_VAULT_CLIENT_ID, client_secret: saasSecret, scopes: [...SAAS_SCOPES], resource: saas.api });
    ok(`provider "notes" registered: Acme Notes at ${saas.issuer} (oidc-provider), Writ's client secret sealed in Writ`);
    const { policies } = await admin('GET', '/v1/admin/policies');
    await admin('PUT', '/v1/admin/policies', {
      reason: 'engineers post notes through the issues server',
      policies: `${policies}
@id("eng-post-notes")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool) when { principal.groups.contains("eng") && resource.name == "post_note" };

@id("issues-server-writes-notes")
permit (principal, action == Writ::Action::"use_grant", resource is Writ::Provider)
when { resource.name == "notes" && principal.groups.contains("eng") && context.connector == Writ::Connector::"${ISSUES_SERVER}" && ["notes:write"].containsAll(context.scopes) };
`,
    });
    ok('policy: engineers may post_note; only the issues server may use an engineer\'s notes grant, for notes:write');
    // The tool asks the vault with the task token its call came with, over its own SVID.
    const svid = serverSource.getX509Svid();
    const vault = writVault({ url: `${broker.apiUrl}/oauth2/token`, tls: { cert: svid.certificatesPem, key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle() } });
    const guard = writProtection({ resource: notesUri, issuer: config.issuer, jwksUri: `${broker.apiUrl}/oauth2/jwks`, ca: bundle(), introspect: { url: `${broker.apiUrl}/oauth2/introspect`, cacheMs: 0, tls: { cert: svid.certificatesPem, key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle() } } });
    closers.push(() => guard.close());
    const node = toNodeHandler(createMcpHandler(() => {
      const server = new McpServerV2({ name: 'issues-notes', version: '1.0.0' });
      server.registerTool('post_note', { description: 'Post a note to the user\'s Acme Notes', inputSchema: z.object({ text: z.string() }) }, async ({ text }, ctx) => {
        try {
          const notes = await vault.token(ctx, { provider: 'notes', scope: 'notes:write' });
          const posted = await fetch(`${saas.api}/notes`, { method: 'POST', headers: { authorization: `Bearer ${notes.accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
          const note = await posted.json();
          return posted.ok ? { content: [{ type: 'text', text: `posted to Acme Notes as ${note.author} (a token for ${notes.scope}, ${notes.expiresIn} s)` }] } : { isError: true, content: [{ type: 'text', text: `Acme Notes answered ${posted.status}` }] };
        } catch (err) {
          if (err instanceof AccountLinkRequired) return linkRequiredResult(err);
          throw err;
        }
      });
      return server;
    }));
    app.post('/notes', express.json(), guard, (req, res) => void node(req, res, req.body));

    const task = await agentTokens.exchange({ subjectToken: await idToken('alice'), resource: notesUri, tools: [{ name: 'post_note', actions: ['write'] }] });
    const client = new ClientV2({ name: 'demo-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } }, inputRequired: { autoFulfill: false } });
    await client.connect(new StreamableHTTPClientTransportV2(new URL(notesUri), { fetch: agentFetch(), authProvider: { token: async () => task.accessToken } }));
    const post = (more = {}) => client.callTool({ name: 'post_note', arguments: { text: 'Login page is slow: see #1' }, ...more }, { allowInputRequired: true });
    const first = await post();
    const link = first.resultType === 'input_required' ? first.inputRequests['writ-link']?.params.url : undefined;
    if (link) {
      ok(`alice, post_note: Writ has no Acme Notes grant of hers yet: input_required, a link for her (${link.replace(/[A-Za-z0-9_-]{43}$/, '…')})`);
      // Her browser: she signs in to Writ at her identity provider, then at Acme Notes, which sends her back to Writ.
      await linkAccount({ link, username: 'alice', ca });
      const [grant] = (await admin('GET', '/v1/admin/grants?provider=notes')).grants;
      ok(`alice linked her account: Writ keeps the grant (${grant.scopes.join(' ')}) for ${grant.user.sub} at ${grant.user.iss}, its refresh token sealed`);
      const retried = await post({ inputResponses: { 'writ-link': { action: 'accept' } } });
      const text = retried.content?.[0]?.text ?? '';
      (retried.isError ? no : ok)(`alice, post_note retried: ${text}`);
    } else no(`alice, post_note: ${first.content?.[0]?.text ?? 'no link asked for'}`);
    const note = saas.notes.at(-1);
    if (note) ok(`Acme Notes recorded "${note.text}" by ${note.author}, from Writ's client ${note.clientId}; the issues server holds no Acme Notes credential`);
    await client.close();
    await agentTokens.endTask(task.taskId);
    let revoked;
    for (let i = 0; i < 100 && !revoked; i++) {
      revoked = (await admin('GET', `/v1/admin/audit?type=release.revoked&task_id=${task.taskId}`)).events[0];
      if (!revoked) await new Promise((r) => setTimeout(r, 50));
    }
    (revoked?.details.atProvider ? ok : no)(`task ended: the Acme Notes token released to it ${revoked?.details.atProvider ? 'revoked at Acme Notes (RFC 7009)' : 'not revoked'}`);
  }

  step(11, 'The audit trail names the person and the connector, and its hash chain verifies');
  const { events } = await admin('GET', '/v1/admin/audit?limit=200');
  const tokens = events.filter((e) => e.type === 'token.issued' || e.type === 'token.refused').reverse();
  const named = tokens.every((e) => e.subject_issuer === op.issuer);
  (named ? ok : no)(`each names the person as their identity provider does: subject and subject_issuer ${op.issuer}`);
  for (const e of tokens) ok(`#${e.seq} ${e.type.padEnd(13)} user ${e.subject} via ${e.actor}${e.type === 'token.refused' ? ` (${e.details.error})` : ''}`);
  const verified = await admin('GET', '/v1/admin/audit/verify');
  (verified.ok ? ok : no)(`hash chain ${verified.ok ? `intact over ${verified.events} events` : `broken at #${verified.broken_at}: ${verified.reason}`}`);
  out('\nDone. Everything above ran for real: broker, MCP server, connector, tokens and policy.');
}

main()
  .catch((err) => {
    process.stderr.write(`demo failed: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  });
