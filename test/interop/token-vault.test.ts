/**
 * The token vault (issue 20), end to end with software Writ did not write: writ dev's OpenID
 * Provider signs the user in to Writ, and a SaaS authorization server (oidc-provider configured
 * as one, with refresh tokens, RFC 7009 revocation and RFC 7662 introspection) holds the user's
 * account and an API that accepts only its own tokens. The user's browser is a real HTTP client
 * following redirects with a cookie jar per host. The connector holds no SaaS credential: it
 * presents its task token and gets the SaaS's access token for the task, under policy.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, exportPKCS8, generateKeyPair, SignJWT } from 'jose';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { fetchIdToken } from '../../src/dev/id-token';
import { DevBrowser } from '../../src/dev/link';
import { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID } from '../../src/dev/op';
import { SAAS_VAULT_CLIENT_ID, SAAS_VAULT_JWT_CLIENT_ID } from '../../src/dev/saas';
import { attestWithJoinToken, type AttestedConnector } from '../support/attest';
import { testConfig } from '../support/config';
import { createTestStore, type TestStore } from '../support/database';
import { startDevOpProcess, type DevOpProcess } from '../support/dev-op-process';
import { startDevSaasProcess, type DevSaasProcess } from '../support/dev-saas-process';
import { httpsRequest } from '../support/https';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { z } from 'zod';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { AccountLinkRequired, linkRequiredResult, tlsFetch, writProtection, writVault, type WritProtection } from '../../src/mcp';
import { spiffeIdIs } from '../support/mcp';
import { InteractionRequiredError, TaskTokenClient, X509Source, AccessDeniedError } from '../../src/sdk';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { loadOrCreateSecretsKey, SecretSealer } from '../../src/ca/secrets';
import { systemRandom } from '../../src/core/random';
import { freePort } from '../support/oidc-op';

const RESOURCE = 'https://mcp.vault.test/issues';
const AGENT = 'spiffe://vault.test/agent/assistant';
const OTHER = 'spiffe://vault.test/agent/other';
const ADMIN = 'a-bootstrap-token-of-some-length';
const SECRET = randomBytes(24).toString('base64url');
const ISSUES = 'spiffe://vault.test/mcp/issues';
const NOTES_CONNECTOR = 'spiffe://vault.test/mcp/notes-connector';
const NOTES_RESOURCE = 'https://mcp.vault.test/notes-connector';
const POLICY = `
@id("eng-issues") permit (principal, action in [Writ::Action::"read", Writ::Action::"write"], resource) when { principal.groups.contains("eng") };
@id("notes-write") permit (principal, action == Writ::Action::"use_grant", resource is Writ::Provider)
  when { ["notes", "notes-jwt"].contains(resource.name) && principal.groups.contains("eng") && (context.connector == Writ::Connector::"${AGENT}" || context.connector == Writ::Connector::"${ISSUES}" || context.connector == Writ::Connector::"${NOTES_CONNECTOR}") && ["notes:write"].containsAll(context.scopes) };
`;

let op: DevOpProcess;
let saas: DevSaasProcess;
let store: TestStore;
let broker: Broker;
let issuer: string;
let ca: string;
let work: string;
let agent: AttestedConnector;
let other: AttestedConnector;
/** The broker's clock: the system's, moved ahead by this many milliseconds when a test needs time to pass. */
let clockAhead = 0;
const clock = { now: () => new Date(Date.now() + clockAhead) };

const admin = async (path: string, method = 'GET', body?: unknown) => {
  const res = await httpsRequest(`${broker.apiUrl}${path}`, { ca, method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
};
const token = async (as: AttestedConnector, params: Record<string, string>) => {
  const res = await httpsRequest(`${broker.apiUrl}/oauth2/token`, { ca, method: 'POST', cert: as.cert, key: as.key, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', ...params }).toString() });
  return { status: res.status, json: JSON.parse(res.body) };
};
/** A task of `user`: the connector's token for the issues MCP server (its task token). */
const taskToken = async (user: string, as: AttestedConnector = agent) => {
  const res = await token(as, { subject_token: await fetchIdToken({ issuer: op.issuer, username: user }), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: RESOURCE, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]) });
  expect(res.status).toBe(200);
  return { token: res.json.access_token as string, taskId: res.json.task_id as string, expiresIn: res.json.expires_in as number };
};
/** The vault: the provider's access token for the task. */
const release = (taskTokenValue: string, scope = 'notes:write', as: AttestedConnector = agent) =>
  token(as, { subject_token: taskTokenValue, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'notes', scope });

/** The user opens the link the vault handed out, signs in to Writ and then to the SaaS; the provider's redirect back (not yet followed). */
async function linkThrough(url: string, user: string, browser = new DevBrowser(ca)): Promise<{ browser: DevBrowser; callback: string }> {
  await browser.follow(url, user, {}); // signs in to Writ, back on the link's page
  let res = await browser.visit(url, {});
  for (let hops = 0; hops < 20 && !(res.location ?? '').startsWith(`${issuer}/v1/vault/callback`); hops++) {
    if (res.status === 200 && /\/interaction\//.test(res.url)) res = await browser.visit(`${res.url}/login`, { username: user });
    else if (res.location !== undefined) res = await browser.visit(res.location);
    else throw new Error(`${res.url} answered ${res.status} without a redirect: ${res.body.slice(0, 300)}`);
  }
  return { browser, callback: res.location! };
}

/** A SET of the test transmitter (RFC 8417), signed with its key. */
let txKey: CryptoKey;
let clientKeyPem: string;
const TX = 'https://ssf.vault.test';
const deliverSet = async (events: Record<string, unknown>) => {
  const token = await new SignJWT({ events }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'tx-1' }).setIssuer(TX).setAudience(issuer).setIssuedAt().setJti(randomUUID()).sign(txKey);
  return httpsRequest(`${broker.apiUrl}/v1/signals`, { ca, method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: token });
};

/**
 * The agent's MCP client (the official SDK v2, speaking 2026-07-28 with URL elicitations) at an MCP
 * server that runs as `serverId`, with `user`'s task token for its `post_note`; `call(retry)` calls
 * it, a retry answering the link elicitation.
 */
async function postNoteClient(url: string, serverId: string, resource: string, user: string, bundle: string) {
  const task = await token(agent, { subject_token: await fetchIdToken({ issuer: op.issuer, username: user }), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['post_note'], actions: ['write'] }]) });
  expect([task.status, task.json.error_description]).toEqual([200, undefined]);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: tlsFetch({ ca: bundle, cert: agent.cert, key: agent.key, checkServerIdentity: spiffeIdIs(serverId) }),
    authProvider: { token: async () => task.json.access_token },
  });
  const client = new Client({ name: 'vault-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } }, inputRequired: { autoFulfill: false } } as never);
  await client.connect(transport);
  const call = (text: string, retry: boolean) => client.callTool({ name: 'post_note', arguments: { text }, ...(retry && { inputResponses: { 'writ-link': { action: 'accept' } } }) } as never, { allowInputRequired: true } as never) as Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  return { taskId: task.json.task_id as string, client, call };
}

beforeAll(async () => {
  const tx = await generateKeyPair('ES256');
  txKey = tx.privateKey as CryptoKey;
  // Writ's key for the SaaS's private_key_jwt client (RFC 7523): the SaaS knows its public half.
  const clientKey = await generateKeyPair('ES256', { extractable: true });
  clientKeyPem = await exportPKCS8(clientKey.privateKey);
  const clientJwk = { ...(await exportJWK(clientKey.publicKey)), kid: 'writ-vault-1', alg: 'ES256', use: 'sig' };
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  op = await startDevOpProcess({ users: { alice: ['eng'], bob: ['eng'] }, consoleRedirectUris: [`${issuer}/console/callback`] });
  // On another host name than the identity provider (localhost, not 127.0.0.1): a browser keeps each host's cookies apart.
  saas = await startDevSaasProcess({ users: ['alice', 'bob'], clientSecret: SECRET, redirectUris: [`${issuer}/v1/vault/callback`], host: 'localhost', jwtClientJwks: { keys: [clientJwk] } });
  store = await createTestStore();
  work = mkdtempSync(join(tmpdir(), 'writ-vault-'));
  writeFileSync(join(work, 'policy.cedar'), POLICY);
  writeFileSync(join(work, 'tx.json'), JSON.stringify({ keys: [{ ...(await exportJWK(tx.publicKey)), kid: 'tx-1', alg: 'ES256' }] }));
  broker = await startBroker(
    testConfig(store, {
      WRIT_TRUST_DOMAIN: 'vault.test',
      WRIT_PORT: String(port),
      WRIT_ISSUER: issuer,
      WRIT_ADMIN_TOKEN: ADMIN,
      WRIT_POLICY_FILE: join(work, 'policy.cedar'),
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
      WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
      WRIT_SIGNAL_TRANSMITTERS: JSON.stringify([{ issuer: TX, jwks_file: join(work, 'tx.json'), audience: issuer, algorithms: ['ES256'], subject_issuers: [op.issuer] }]),
    }),
    { clock },
  );
  ca = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
  expect((await admin('/v1/admin/resources', 'POST', { uri: RESOURCE, spiffe_id: 'spiffe://vault.test/mcp/issues', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }, { name: 'post_note', actions: ['write'], classification: 'internal' }] })).status).toBe(201);
  const created = await admin('/v1/admin/providers', 'POST', { id: 'notes', issuer: saas.issuer, client_id: SAAS_VAULT_CLIENT_ID, client_secret: SECRET, scopes: ['notes:read', 'notes:write'], resource: saas.api });
  expect(created.status).toBe(201);
  agent = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: AGENT, dir: work });
  other = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: OTHER, dir: work });
}, 60_000);

afterAll(async () => {
  await broker?.shutdown();
  await saas?.close();
  await op?.close();
  await store?.drop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the token vault', () => {
  let aliceLink: string;

  it('registers a provider with its secret sealed: never returned, refused without one, one id once', async () => {
    const listed = await admin('/v1/admin/providers');
    expect(listed.json.providers).toEqual([expect.objectContaining({ id: 'notes', issuer: saas.issuer, client_id: SAAS_VAULT_CLIENT_ID, client_auth: 'client_secret_basic', classification: 'confidential' })]);
    expect(JSON.stringify(listed.json)).not.toContain(SECRET);
    const row = await broker.db.prisma.downstreamProvider.findUniqueOrThrow({ where: { id: 'notes' } });
    expect(Buffer.from(row.secretCiphertext).includes(Buffer.from(SECRET))).toBe(false);
    expect((await admin('/v1/admin/providers', 'POST', { id: 'notes', issuer: saas.issuer, client_id: 'x', client_secret: 'y', scopes: ['a'] })).status).toBe(409);
    const bad = await admin('/v1/admin/providers', 'POST', { id: 'other', issuer: saas.issuer, client_id: 'x', scopes: ['a'] });
    expect([bad.status, bad.json.detail]).toEqual([400, expect.stringContaining('client_secret')]);
  });

  it('refuses a task without a grant with interaction_required and the link where the user links their account', async () => {
    const task = await taskToken('alice');
    const refused = await release(task.token);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: 'interaction_required', link_uri: expect.stringMatching(new RegExp(`^${issuer}/v1/vault/links/[A-Za-z0-9_-]{43}$`)), link_expires_in: expect.any(Number) });
    aliceLink = refused.json.link_uri;
  });

  it('lets nobody but the user the link names use it', async () => {
    const browser = new DevBrowser(ca);
    await browser.follow(aliceLink, 'bob', {}); // bob signs in to Writ…
    const opened = await browser.visit(aliceLink, {}); // …and tries alice's link
    expect([opened.status, JSON.parse(opened.body).type]).toEqual([403, 'urn:writ:problem:link-forbidden']);
  });

  let callback: string;
  it('links alice\'s account: sign-in at her identity provider, then at the SaaS; the refresh token is kept sealed', async () => {
    const browser = new DevBrowser(ca);
    const shown = await browser.visit(aliceLink);
    expect(shown.body).toContain('<strong>alice</strong>');
    await browser.follow(aliceLink, 'alice', {});
    // Signed in to Writ now: the button goes on to the SaaS, whose redirect comes back to Writ.
    let res = await browser.visit(aliceLink, {});
    expect(res.location).toMatch(new RegExp(`^${saas.issuer}/`));
    for (let hops = 0; hops < 20 && !(res.location ?? '').startsWith(`${issuer}/v1/vault/callback`); hops++) {
      if (res.status === 200 && /\/interaction\//.test(res.url)) res = await browser.visit(`${res.url}/login`, { username: 'alice' });
      else if (res.location !== undefined) res = await browser.visit(res.location);
      else throw new Error(`${res.url} answered ${res.status} without a redirect: ${res.body.slice(0, 300)}`);
    }
    callback = res.location!;
    expect(new URL(callback).searchParams.get('iss')).toBe(saas.issuer); // RFC 9207
    const linked = await browser.visit(callback);
    expect([linked.status, linked.body]).toEqual([200, expect.stringContaining('Account linked')]);
    const grants = (await admin('/v1/admin/grants?provider=notes')).json.grants;
    expect(grants).toEqual([expect.objectContaining({ provider: 'notes', user: { iss: op.issuer, sub: 'alice' }, scopes: ['notes:write'] })]); // what the task asked for
    const audited = (await admin('/v1/admin/audit?type=grant.linked')).json.events[0];
    expect(audited).toMatchObject({ subject: 'alice', actor: `user:${op.issuer}#alice`, details: { provider: 'notes' } });
    // The link is spent.
    expect((await browser.visit(aliceLink)).status).toBe(400);
  });

  it('refuses a sign-in at the SaaS that another browser started (a grant never lands under someone else\'s name)', async () => {
    // bob starts linking in his browser; the SaaS's authorization URL is then opened in alice's,
    // where she signs in at the SaaS: the redirect back carries bob's state, but not his browser's cookie.
    const bobs = await taskToken('bob');
    const refused = await release(bobs.token);
    const bobBrowser = new DevBrowser(ca);
    await bobBrowser.follow(refused.json.link_uri, 'bob', {});
    const toSaas = (await bobBrowser.visit(refused.json.link_uri, {})).location!;
    const aliceBrowser = new DevBrowser(ca);
    let res = await aliceBrowser.visit(toSaas);
    for (let hops = 0; hops < 20 && !(res.location ?? '').startsWith(`${issuer}/v1/vault/callback`); hops++) {
      if (res.status === 200 && /\/interaction\//.test(res.url)) res = await aliceBrowser.visit(`${res.url}/login`, { username: 'alice' });
      else res = await aliceBrowser.visit(res.location!);
    }
    const landed = await aliceBrowser.visit(res.location!);
    expect([landed.status, JSON.parse(landed.body).detail]).toEqual([400, 'this sign-in at the provider was started in another browser: open the link again here']);
    expect((await admin('/v1/admin/grants?provider=notes')).json.grants.map((g: { user: { sub: string } }) => g.user.sub)).toEqual(['alice']);
  });

  it('refuses the provider\'s redirect replayed (its state is used once)', async () => {
    const replayed = await new DevBrowser(ca).visit(callback);
    expect([replayed.status, JSON.parse(replayed.body).type]).toEqual([400, 'urn:writ:problem:link-invalid']);
  });

  it('releases the SaaS\'s access token to alice\'s task, never beyond it; the SaaS API takes it as alice\'s', async () => {
    const task = await taskToken('alice');
    const released = await release(task.token);
    expect(released.status).toBe(200);
    expect(Object.keys(released.json).sort()).toEqual(['access_token', 'expires_in', 'issued_token_type', 'scope', 'token_type']); // no refresh token, ever
    expect(released.json).toMatchObject({ issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', scope: 'notes:write' });
    expect(released.json.expires_in).toBeLessThanOrEqual(task.expiresIn);
    const posted = await fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'from the agent, for alice' }) });
    expect(posted.status).toBe(201);
    expect((await saas.notes()).at(-1)).toMatchObject({ author: 'alice', clientId: SAAS_VAULT_CLIENT_ID, text: 'from the agent, for alice' });
    // Only the scope released: reading needs notes:read.
    expect((await fetch(`${saas.issuer}/api/notes`, { headers: { authorization: `Bearer ${released.json.access_token}` } })).status).toBe(403);
    const audited = (await admin(`/v1/admin/audit?type=grant.released&task_id=${task.taskId}`)).json.events[0];
    expect(audited).toMatchObject({ subject: 'alice', actor: AGENT, details: { provider: 'notes', taskId: task.taskId, scopes: ['notes:write'], policies: ['notes-write'] } });
    // Each release is a fresh token from the refresh grant.
    const again = await release(task.token);
    expect(again.json.access_token).not.toBe(released.json.access_token);
  });

  it('refuses by policy: a scope policy does not give, and another connector of the same user', async () => {
    const task = await taskToken('alice');
    const read = await release(task.token, 'notes:read');
    expect([read.status, read.json.error]).toEqual([400, 'access_denied']);
    const otherTask = await taskToken('alice', other);
    const byOther = await release(otherTask.token, 'notes:write', other);
    expect([byOther.status, byOther.json.error]).toEqual([400, 'access_denied']);
    // A scope the provider does not grant at all is not a policy question.
    expect((await release(task.token, 'notes:admin')).json.error).toBe('invalid_scope');
  });

  it('never gives bob alice\'s grant, and a task token is of use only to its own connector with its own key', async () => {
    const bobs = await taskToken('bob');
    expect((await release(bobs.token)).json.error).toBe('interaction_required');
    const alices = await taskToken('alice');
    const leaked = await release(alices.token, 'notes:write', other);
    expect([leaked.status, leaked.json.error]).toEqual([400, 'invalid_grant']);
  });

  it('stops releasing once the task ends, and revokes at the SaaS what it released to it (a leaked token ends with the task)', async () => {
    const task = await taskToken('alice');
    const released = await release(task.token);
    expect(released.status).toBe(200);
    const post = () => fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'still?' }) });
    expect((await post()).status).toBe(201);
    const ended = await httpsRequest(`${broker.apiUrl}/v1/tasks/${task.taskId}/end`, { ca, method: 'POST', cert: agent.cert, key: agent.key });
    expect(ended.status).toBe(200);
    const after = await release(task.token);
    expect([after.status, after.json.error]).toEqual([400, 'invalid_grant']);
    // The vault revokes it at the SaaS right after the end commits (RFC 7009); the SaaS then refuses it.
    const revokedAt = async () => (await admin(`/v1/admin/audit?type=release.revoked&task_id=${task.taskId}`)).json.events[0];
    for (let i = 0; i < 100 && !(await revokedAt()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await revokedAt()).toMatchObject({ subject: 'alice', actor: 'writ', details: { provider: 'notes', taskId: task.taskId, atProvider: true } });
    expect((await post()).status).toBe(401);
  });

  it('revokes what it released when the task token itself is revoked (an operator, by jti)', async () => {
    const task = await taskToken('alice');
    const released = await release(task.token);
    const jti = JSON.parse(Buffer.from(task.token.split('.')[1]!, 'base64url').toString()).jti as string;
    expect((await admin('/v1/admin/revocations', 'POST', { jti, reason: 'leaked' })).status).toBe(200);
    const post = () => fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'still?' }) });
    let status = (await post()).status;
    for (let i = 0; i < 100 && status !== 401; i++) status = (await new Promise((r) => setTimeout(r, 50)), await post()).status;
    expect(status).toBe(401);
  });

  it('lets the user unlink their grant: Writ stops using it, and revokes it at the SaaS', async () => {
    const aliceToken = await fetchIdToken({ issuer: op.issuer, username: 'alice', clientId: DEV_CONSOLE_CLIENT_ID });
    const mine = await httpsRequest(`${broker.apiUrl}/v1/vault/grants`, { ca, headers: { authorization: `Bearer ${aliceToken}` } });
    const [grant] = JSON.parse(mine.body).grants;
    expect(grant).toMatchObject({ provider: 'notes', user: { sub: 'alice' } });
    // bob cannot unlink alice's grant: it is not one of his.
    const bobToken = await fetchIdToken({ issuer: op.issuer, username: 'bob', clientId: DEV_CONSOLE_CLIENT_ID });
    expect((await httpsRequest(`${broker.apiUrl}/v1/vault/grants/${grant.id}`, { ca, method: 'DELETE', headers: { authorization: `Bearer ${bobToken}` } })).status).toBe(404);
    expect((await httpsRequest(`${broker.apiUrl}/v1/vault/grants/${grant.id}?reason=done`, { ca, method: 'DELETE', headers: { authorization: `Bearer ${aliceToken}` } })).status).toBe(204);
    const task = await taskToken('alice');
    expect((await release(task.token)).json.error).toBe('interaction_required');
    for (let i = 0; i < 100 && (await broker.db.prisma.downstreamGrant.findUniqueOrThrow({ where: { id: grant.id } })).providerResult === null; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await broker.db.prisma.downstreamGrant.findUniqueOrThrow({ where: { id: grant.id } })).providerResult).toBe('revoked');
    expect((await admin(`/v1/admin/audit?type=grant.revoked&limit=1`)).json.events[0]).toMatchObject({ subject: 'alice', actor: `user:${op.issuer}#alice`, details: { grantId: grant.id, reason: 'done' } });
  });

  it('revokes the grant at the SaaS on a CAEP session-revoked when the provider says so (revoke_on), and what was released with it', async () => {
    expect((await admin('/v1/admin/providers/notes', 'PATCH', { revoke_on: ['session'] })).json.revoke_on).toEqual(['session']);
    const task = await taskToken('alice');
    const refused = await release(task.token);
    const { browser, callback } = await linkThrough(refused.json.link_uri, 'alice');
    expect((await browser.visit(callback)).status).toBe(200);
    const released = await release(task.token);
    expect(released.status).toBe(200);
    const grant = (await admin('/v1/admin/grants?provider=notes')).json.grants[0];
    const signal = await deliverSet({ 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': { subject: { format: 'iss_sub', iss: op.issuer, sub: 'alice' }, event_timestamp: Math.floor(Date.now() / 1000) } });
    expect(signal.status).toBe(202);
    expect((await admin('/v1/admin/grants?provider=notes')).json.grants).toEqual([]);
    expect((await admin(`/v1/admin/audit?type=grant.revoked&limit=1`)).json.events[0]).toMatchObject({ subject: 'alice', details: { grantId: grant.id, event: 'session' } });
    for (let i = 0; i < 100 && (await broker.db.prisma.downstreamGrant.findUniqueOrThrow({ where: { id: grant.id } })).providerResult === null; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await broker.db.prisma.downstreamGrant.findUniqueOrThrow({ where: { id: grant.id } })).providerResult).toBe('revoked');
    // The token released from it is over at the SaaS too.
    const post = () => fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'after the signal?' }) });
    let status = (await post()).status;
    for (let i = 0; i < 100 && status !== 401; i++) status = (await new Promise((r) => setTimeout(r, 50)), await post()).status;
    expect(status).toBe(401);
  });
});

describe('the token vault from an MCP server (@writ/mcp writVault, the official SDK v2 server and client)', () => {
  let mcp: Server;
  let protect: WritProtection;
  let mcpUrl: string;
  let bundle: string;
  let issues: AttestedConnector;

  beforeAll(async () => {
    bundle = (await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca, headers: { accept: 'application/x-pem-file' } })).body;
    issues = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: ISSUES, dir: work });
    const tls = { cert: issues.cert, key: issues.key, ca: bundle };
    protect = writProtection({ resource: RESOURCE, issuer, jwksUri: `${broker.apiUrl}/oauth2/jwks`, ca: [ca, bundle], introspect: { url: `${broker.apiUrl}/oauth2/introspect`, tls: { ...tls, ca: [ca, bundle] }, cacheMs: 0 }, reporting: false });
    // The MCP server holds no SaaS credential: it asks the vault with the task token the call came with.
    const vault = writVault({ url: `${broker.apiUrl}/oauth2/token`, tls: { ...tls, ca: [ca, bundle] } });
    const node = toNodeHandler(
      createMcpHandler(() => {
        const server = new McpServer({ name: 'issues', version: '1.0.0' });
        server.registerTool('post_note', { description: 'Post a note to the user\'s Acme Notes', inputSchema: z.object({ text: z.string() }) }, async ({ text }, ctx) => {
          try {
            const notes = await vault.token(ctx, { provider: 'notes', scope: 'notes:write' });
            const posted = await fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${notes.accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
            return { content: [{ type: 'text' as const, text: `posted (${posted.status})` }] };
          } catch (err) {
            if (err instanceof AccountLinkRequired) return linkRequiredResult(err) as never;
            throw err;
          }
        });
        return server;
      }),
    );
    const app = express();
    app.post('/mcp', express.json(), protect, (req, res) => void node(req, res, req.body));
    mcp = createServer({ cert: issues.cert, key: issues.key, ca: bundle, requestCert: true, rejectUnauthorized: true }, app);
    await new Promise<void>((r) => mcp.listen(0, '127.0.0.1', r));
    mcpUrl = `https://127.0.0.1:${(mcp.address() as AddressInfo).port}/mcp`;
  });

  afterAll(async () => {
    await protect?.close();
    mcp?.closeAllConnections();
    await new Promise((r) => (mcp ? mcp.close(r) : r(undefined)));
  });

  it('answers input_required with the link when the user has not linked, and posts as the user once they have (bob: alice\'s sessions were just revoked)', async () => {
    const { taskId, client, call: post } = await postNoteClient(mcpUrl, ISSUES, RESOURCE, 'bob', bundle);
    try {
      const call = (retry: boolean) => post('from the issues server, for bob', retry);
      const first = await call(false);
      expect(first.resultType).toBe('input_required');
      const elicitation = first.inputRequests['writ-link'];
      expect(elicitation).toMatchObject({ method: 'elicitation/create', params: { mode: 'url', url: expect.stringMatching(new RegExp(`^${issuer}/v1/vault/links/`)) } });
      const { browser, callback } = await linkThrough(elicitation.params.url, 'bob');
      expect((await browser.visit(callback)).status).toBe(200);
      const done = await call(true);
      expect(done.content).toEqual([{ type: 'text', text: 'posted (201)' }]);
      expect((await saas.notes()).at(-1)).toMatchObject({ author: 'bob', clientId: SAAS_VAULT_CLIENT_ID, text: 'from the issues server, for bob' });
      const released = (await admin(`/v1/admin/audit?type=grant.released&task_id=${taskId}`)).json.events[0];
      expect(released).toMatchObject({ subject: 'bob', actor: ISSUES });
    } finally {
      await client.close();
    }
  });
});

describe('the token vault from the SDK (TaskTokenClient.providerToken)', () => {
  it('exposes the link when the user must link, policy refusals as their classes, and the SaaS token once linked', async () => {
    const join = await admin('/v1/admin/join-tokens', 'POST', { entry_id: agent.entryId, ttl: 600 });
    const source = await X509Source.create({ server: broker.apiUrl, bundle: ca, attestation: { joinToken: join.json.token } });
    try {
      const tokens = new TaskTokenClient(source);
      const task = await tokens.exchange({ subjectToken: await fetchIdToken({ issuer: op.issuer, username: 'bob' }), resource: RESOURCE, tools: [{ name: 'search', actions: ['read'] }] });
      // bob linked for notes:write from the MCP server: notes:read is beyond what policy gives.
      await expect(tokens.providerToken(task, { provider: 'notes', scope: 'notes:read' })).rejects.toBeInstanceOf(AccessDeniedError);
      const released = await tokens.providerToken(task, { provider: 'notes', scope: ['notes:write'] });
      expect(released).toMatchObject({ provider: 'notes', scope: 'notes:write', tokenType: 'Bearer' });
      expect(released.expiresAt.getTime()).toBeLessThanOrEqual(task.expiresAt.getTime() + 1000);
      await tokens.endTask(task.taskId);
      // A user with no grant: the link, typed.
      const grants = (await admin('/v1/admin/grants?provider=notes')).json.grants as { id: string }[];
      for (const g of grants) expect((await admin(`/v1/admin/grants/${g.id}?reason=test`, 'DELETE')).status).toBe(204);
      const again = await tokens.exchange({ subjectToken: await fetchIdToken({ issuer: op.issuer, username: 'bob' }), resource: RESOURCE, tools: [{ name: 'search', actions: ['read'] }] });
      const refused = await tokens.providerToken(again, { provider: 'notes', scope: 'notes:write' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(InteractionRequiredError);
      expect((refused as InteractionRequiredError).linkUri).toMatch(new RegExp(`^${issuer}/v1/vault/links/`));
    } finally {
      await source.close();
    }
  });
});

describe('a connector process holds no SaaS credential at any time', () => {
  let child: ChildProcess;
  let dir: string;
  let bundle: string;
  let port: number;

  beforeAll(async () => {
    expect((await admin('/v1/admin/resources', 'POST', { uri: NOTES_RESOURCE, spiffe_id: NOTES_CONNECTOR, tools: [{ name: 'post_note', actions: ['write'], classification: 'internal' }] })).status).toBe(201);
    const svid = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: NOTES_CONNECTOR, dir: work });
    bundle = (await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca, headers: { accept: 'application/x-pem-file' } })).body;
    dir = join(work, 'notes-connector');
    mkdirSync(dir);
    writeFileSync(join(dir, 'svid.pem'), svid.cert);
    writeFileSync(join(dir, 'svid.key'), svid.key, { mode: 0o600 });
    writeFileSync(join(dir, 'bundle.pem'), `${ca}${bundle}`);
    child = spawn(process.execPath, ['--heapsnapshot-signal=SIGUSR2', join(__dirname, '../support/vault-mcp-server.mjs')], {
      cwd: dir,
      env: { PATH: process.env.PATH, SVID_CERT: join(dir, 'svid.pem'), SVID_KEY: join(dir, 'svid.key'), WRIT_BUNDLE: join(dir, 'bundle.pem'), RESOURCE: NOTES_RESOURCE, WRIT_ISSUER: issuer, WRIT_API: broker.apiUrl, SAAS_API: `${saas.issuer}/api` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    port = await new Promise<number>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').once('data', (line: string) => resolve(JSON.parse(line).port));
      child.once('exit', (code) => reject(new Error(`the connector exited (${code}): ${stderr}`)));
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) await new Promise((r) => (child.once('exit', r), child.kill('SIGTERM')));
  });

  it('links, posts as the user through the vault, and its environment, files and heap hold neither the client secret nor the refresh token', async () => {
    const { client, call: post } = await postNoteClient(`https://127.0.0.1:${port}/mcp`, NOTES_CONNECTOR, NOTES_RESOURCE, 'bob', bundle);
    try {
      const call = (retry: boolean) => post('from a connector that holds no secret', retry);
      const first = await call(false);
      const { browser, callback } = await linkThrough(first.inputRequests['writ-link'].params.url, 'bob');
      expect((await browser.visit(callback)).status).toBe(200);
      expect((await call(true)).content).toEqual([{ type: 'text', text: 'posted (201)' }]);
    } finally {
      await client.close();
    }
    // What the vault holds: the client secret (in this test) and bob's refresh token, unsealed here with the secrets key.
    const grant = await broker.db.prisma.downstreamGrant.findFirstOrThrow({ where: { subject: 'bob', revokedAt: null } });
    const sealer = new SecretSealer([loadOrCreateSecretsKey(join(store.dir, 'certs'), systemRandom)], systemRandom);
    const refreshToken = sealer.open(`grant:${grant.id}:refresh_token`, { kekId: grant.tokenKekId, nonce: grant.tokenNonce, ciphertext: grant.tokenCiphertext }).toString('utf8');
    expect(refreshToken.length).toBeGreaterThan(20);
    const secrets = [SECRET, refreshToken];
    // At rest, only sealed: no row of any table holds either, as text or as bytes.
    const tables = await broker.db.prisma.$queryRaw<{ t: string }[]>`SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`;
    expect(tables.map((t) => t.t)).toEqual(expect.arrayContaining(['downstream_grant', 'grant_release', 'audit_event']));
    for (const { t } of tables) {
      for (const { r } of await broker.db.prisma.$queryRawUnsafe<{ r: string }[]>(`SELECT x::text AS r FROM "${t}" x`)) {
        for (const secret of secrets) expect([t, r.includes(secret) || r.includes(Buffer.from(secret).toString('hex'))]).toEqual([t, false]);
      }
    }
    // Its environment, and every file it was given or wrote.
    const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8');
    for (const secret of secrets) expect(environ.includes(secret)).toBe(false);
    // Its memory: a heap snapshot of the running process (V8's, on SIGUSR2).
    child.kill('SIGUSR2');
    let snapshot: string | undefined;
    for (let i = 0; i < 200 && snapshot === undefined; i++) {
      const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot'));
      const path = file && join(dir, file);
      if (path && statSync(path).size > 0) {
        const text = readFileSync(path, 'utf8');
        if (text.trimEnd().endsWith('}')) snapshot = text;
      }
      if (snapshot === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    expect(snapshot).toBeDefined();
    expect(snapshot!.length).toBeGreaterThan(1_000_000);
    // The snapshot holds what the process held: its own SVID key, for one (a check that it can see secrets at all).
    expect(snapshot!.includes(readFileSync(join(dir, 'svid.key'), 'utf8').split('\n')[1]!)).toBe(true);
    for (const secret of secrets) expect(snapshot!.includes(secret)).toBe(false);
    for (const f of readdirSync(dir).filter((f) => !f.endsWith('.heapsnapshot'))) for (const secret of secrets) expect(readFileSync(join(dir, f), 'utf8').includes(secret)).toBe(false);
  }, 60_000);
});

describe('a provider whose client authenticates with a private key (RFC 7523 private_key_jwt)', () => {
  it('links and releases with the key sealed in the vault, never a secret on the wire', async () => {
    const created = await admin('/v1/admin/providers', 'POST', { id: 'notes-jwt', issuer: saas.issuer, client_id: SAAS_VAULT_JWT_CLIENT_ID, client_auth: 'private_key_jwt', private_key: clientKeyPem, scopes: ['notes:write'], resource: saas.api });
    expect([created.status, created.json.client_auth]).toEqual([201, 'private_key_jwt']);
    expect(JSON.stringify(created.json)).not.toContain('PRIVATE KEY');
    const task = await taskToken('bob');
    const jwtRelease = () => token(agent, { subject_token: task.token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'notes-jwt', scope: 'notes:write' });
    const refused = await jwtRelease();
    expect(refused.json.error).toBe('interaction_required');
    const { browser, callback } = await linkThrough(refused.json.link_uri, 'bob');
    expect((await browser.visit(callback)).status).toBe(200);
    const released = await jwtRelease();
    expect(released.status).toBe(200);
    const posted = await fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'signed in with a key' }) });
    expect(posted.status).toBe(201);
    expect((await saas.notes()).at(-1)).toMatchObject({ author: 'bob', clientId: SAAS_VAULT_JWT_CLIENT_ID });
  });
});

describe('a released token ends with its task token', () => {
  it('is revoked at the SaaS once the task token expires, the task still open', async () => {
    const task = await taskToken('alice');
    let released = await release(task.token);
    if (released.json.error === 'interaction_required') {
      const { browser, callback } = await linkThrough(released.json.link_uri, 'alice');
      expect((await browser.visit(callback)).status).toBe(200);
      released = await release(task.token);
    }
    expect(released.status).toBe(200);
    const post = () => fetch(`${saas.issuer}/api/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'before the task token expired' }) });
    expect((await post()).status).toBe(201);
    const revokedAt = async () => (await admin(`/v1/admin/audit?type=release.revoked&task_id=${task.taskId}`)).json.events[0];
    expect(await revokedAt()).toBeUndefined();
    try {
      // The broker's time passes the task token's expiry; the SaaS's own clock would keep its token for minutes more.
      clockAhead = (task.expiresIn + 1) * 1000;
      for (let i = 0; i < 200 && !(await revokedAt()); i++) await new Promise((r) => setTimeout(r, 50)); // the vault's sweep, every 5 s
      expect(await revokedAt()).toMatchObject({ subject: 'alice', actor: 'writ', details: { provider: 'notes', taskId: task.taskId, atProvider: true } });
      expect((await post()).status).toBe(401);
      expect((await broker.db.prisma.task.findUniqueOrThrow({ where: { id: task.taskId } })).endedAt).toBeNull();
    } finally {
      clockAhead = 0;
    }
  }, 30_000);
});
