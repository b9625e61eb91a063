#!/usr/bin/env node
/**
 * Writ in five minutes: `npm run demo`.
 *
 * Everything here is real: the built broker on its embedded database, an MCP server made with
 * the official SDK and protected by `@writ/mcp`, a connector that attests with a join token and
 * keeps its SVID with `@writ/sdk`, an agent acting for two users through the official MCP
 * client, and the users' ID tokens from a local OpenID Provider (`oidc-provider`, as `writ dev`
 * runs it) that Writ trusts through OpenID Connect Discovery. The demo prints each step; `test/demo/demo.test.ts` runs it and checks them.
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
import { AccessDeniedError, TaskTokenClient, X509Source, authorizeId, createHttpsServer, tlsServerOptions } from '@writ/sdk';
import { grantedToolsOnly, protectedResourceMetadataHandler, tlsFetch, writIdentityOf, writProtection } from '@writ/mcp';

const require = createRequire(import.meta.url);
const { startBroker } = require('../dist/broker.js');
const { loadConfig } = require('../dist/config/index.js');
const { DEV_CLIENT_ID, startDevOp } = require('../dist/dev/op.js');
const { fetchIdToken } = require('../dist/dev/id-token.js');
const { newSigningKey } = require('../dist/dev/keys.js');

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

/** A JSON request to the broker as its admin. */
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
  ]);
  const op = await startDevOp({ host: '127.0.0.1', port: 0, users, keys: { signing: [await newSigningKey()], cookies: [randomBytes(32).toString('base64url')] } });
  closers.push(() => op.close());
  writeFileSync(join(work, 'policy.cedar'), POLICY);
  const adminToken = randomBytes(24).toString('base64url');
  const config = loadConfig({
    WRIT_PORT: '0',
    WRIT_OPS_PORT: '0',
    WRIT_TRUST_DOMAIN: TD,
    WRIT_DATA_DIR: join(work, 'data'),
    WRIT_CA_DIR: join(work, 'certs'),
    WRIT_ADMIN_TOKEN: adminToken,
    WRIT_LOG_LEVEL: process.env.DEMO_LOG_LEVEL ?? 'silent',
    WRIT_POLICY_FILE: join(work, 'policy.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
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

  step(9, 'The audit trail names the person and the connector, and its hash chain verifies');
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
