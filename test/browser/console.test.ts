/**
 * The console in a real browser (issue 19): Playwright driving Debian's Chromium against the
 * broker and writ dev's OpenID Provider. An operator signs in through the provider's own login
 * page, finds alice's live task, sees its blast radius, revokes it with a reason, and sees the
 * audit event naming them; the token is then inactive at introspection. An auditor sees the
 * same pages without a revoke button, and the API refuses the change anyway. Screenshots of each
 * page are saved under test-results/console/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startBroker, type Broker } from '../../src/broker';
import { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID } from '../../src/dev/op';
import { fetchIdToken } from '../../src/dev/id-token';
import { attestWithJoinToken } from '../support/attest';
import { testConfig } from '../support/config';
import { startDevOpProcess, type DevOpProcess } from '../support/dev-op-process';
import { freePort } from '../support/oidc-op';
import { createTestStore, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';

const SHOTS = join(__dirname, '../../test-results/console');
const RESOURCE = 'https://mcp.console.test/github';
const AGENT = 'spiffe://console.test/agent/assistant';

let op: DevOpProcess;
let store: TestStore;
let broker: Broker;
let browser: Browser;
let issuer: string;
let ca: string;
let work: string;
let aliceToken: string;
let agent: { cert: string; key: string };
const ADMIN = 'a-bootstrap-token-of-some-length';
/** How far the broker's clock runs ahead (the idle-timeout test moves it). */
let idleOffset = 0;

const admin = async (path: string, method: string, body?: unknown) => {
  const res = await httpsRequest(`${broker.apiUrl}${path}`, { ca, method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
};

beforeAll(async () => {
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  op = await startDevOpProcess({ users: { alice: ['eng'], sam: ['secops'], alex: ['audit'], root: [], bob: ['eng'], vera: ['approvers'] }, consoleRedirectUris: [`${issuer}/console/callback`] });
  store = await createTestStore();
  work = mkdtempSync(join(tmpdir(), 'writ-browser-'));
  const policy = join(work, 'policy.cedar');
  writeFileSync(policy, '@id("eng-read") permit (principal, action == Writ::Action::"read", resource) when { principal.groups.contains("eng") };\n@id("delete-needs-approval") @approval("required") permit (principal, action == Writ::Action::"delete", resource) when { principal.groups.contains("eng") };\n');
  broker = await startBroker(
    testConfig(store, {
      WRIT_TRUST_DOMAIN: 'console.test',
      WRIT_PORT: String(port),
      WRIT_ISSUER: issuer,
      WRIT_ADMIN_TOKEN: ADMIN,
      WRIT_POLICY_FILE: policy,
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
      WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
      WRIT_ADMIN_ROLES: JSON.stringify([{ role: 'operator', issuer: op.issuer, group: 'secops' }, { role: 'auditor', issuer: op.issuer, group: 'audit' }, { role: 'admin', issuer: op.issuer, subject: 'root' }]),
    }),
    { clock: { now: () => new Date(Date.now() + idleOffset) } },
  );
  ca = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
  // alice's live task: the agent exchanges her ID token for a token to the GitHub MCP server.
  expect((await admin('/v1/admin/resources', 'POST', { uri: RESOURCE, spiffe_id: 'spiffe://console.test/mcp/github', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }, { name: 'delete_repo', actions: ['delete'], classification: 'restricted' }] })).status).toBe(201);
  agent = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: AGENT, dir: work, metadata: { owner: 'platform' } });
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await fetchIdToken({ issuer: op.issuer, username: 'alice' }), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: RESOURCE, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]) });
  const issued = await httpsRequest(`${broker.apiUrl}/oauth2/token`, { ca, method: 'POST', cert: agent.cert, key: agent.key, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
  expect(issued.status).toBe(200);
  aliceToken = JSON.parse(issued.body).access_token;
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await broker?.shutdown();
  await op?.close();
  await store?.drop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh browser profile signing `user` in through the provider's login page. */
async function signedIn(user: string): Promise<Page> {
  // The broker's certificate chains to its own CA, which this throwaway profile does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${issuer}/console/`);
  await page.click('#sign-in');
  await page.waitForURL(/\/interaction\//);
  await page.selectOption('select[name=username]', user);
  await page.click('button:has-text("Sign in")');
  await page.waitForURL(`${issuer}/console/`);
  await page.waitForSelector('#who:has-text("' + user + '")');
  return page;
}

it('an operator signs in, finds alice\'s live task, sees its blast radius, revokes it, and the audit row names them', async () => {
  const page = await signedIn('sam');
  await page.screenshot({ path: join(SHOTS, 'leases.png'), fullPage: true });
  expect(await page.textContent('#who')).toContain('sam (operator)');
  const row = page.locator('#leases tr', { hasText: 'alice' });
  await row.locator('button.revoke').click();
  await page.waitForSelector('#blast-radius');
  expect(await page.textContent('#blast-radius')).toBe(`This ends 1 token(s) of alice via ${AGENT}.`);
  await page.fill('input[name=reason]', 'suspicious activity');
  await page.screenshot({ path: join(SHOTS, 'revoke.png'), fullPage: true });
  await page.click('#confirm-revoke');
  await page.waitForSelector('#revoked');
  expect(await page.textContent('#revoked')).toMatch(new RegExp(`^Revoked 1 token\\(s\\)\\. Audit #\\d+: revocation by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#sam \\(suspicious activity\\)\\.$`));
  await page.screenshot({ path: join(SHOTS, 'revoked.png'), fullPage: true });
  // The token is over at once: introspection says so, asked by the operator with their own sign-in token (no shared admin token).
  const samToken = await fetchIdToken({ issuer: op.issuer, username: 'sam', clientId: DEV_CONSOLE_CLIENT_ID });
  const introspected = await httpsRequest(`${broker.apiUrl}/oauth2/introspect`, { ca, method: 'POST', headers: { authorization: `Bearer ${samToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${aliceToken}` });
  expect([introspected.status, JSON.parse(introspected.body).active]).toEqual([200, false]);
  // The lease's page: the claims the token was issued with, the decision behind them, and the task's events.
  await page.selectOption('select[name=status]', 'revoked');
  await page.click('#lease-filters button[type=submit]');
  await page.click('#leases tr:has-text("alice") a.lease-details');
  await page.waitForSelector('#lease-claims');
  const claims = JSON.parse((await page.textContent('#lease-claims'))!);
  expect(claims).toMatchObject({ iss: issuer, sub: 'alice', aud: RESOURCE, client_id: AGENT, act: { sub: AGENT }, authorization_details: [{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }] });
  expect(claims.cnf['x5t#S256']).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(await page.textContent('#lease-decisions')).toContain('searchreadpermiteng-read');
  const events = await page.textContent('#lease-events');
  expect(events).toContain('token.issued');
  expect(events).toContain('suspicious activity');
  expect(await page.textContent('#lease-facts')).toContain('revoked at');
  await page.screenshot({ path: join(SHOTS, 'lease.png'), fullPage: true });
  await page.click('a[href="#audit"]');
  await page.waitForSelector('#chain');
  expect(await page.textContent('#chain')).toMatch(/^Hash chain intact over \d+ events\.$/);
  expect(await page.textContent('#chain-head')).toMatch(/^[0-9a-f]{64}$/);
  // Filtered: the operator's own revocations, each naming them.
  await page.fill('#audit-filters input[name=type]', 'revocation');
  await page.fill('#audit-filters input[name=actor]', `user:${op.issuer}#sam`);
  await page.click('#audit-filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length === 1);
  expect(await page.textContent('#audit-table tbody')).toContain('suspicious activity');
  await page.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
  await page.context().close();
}, 60_000);

/** A pending approval for alice's delete_repo in a new task: the agent asks Writ's PDP (AuthZEN) as the task's connector. */
async function pendingApproval(): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await fetchIdToken({ issuer: op.issuer, username: 'alice' }), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: RESOURCE, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }]) });
  const issued = await httpsRequest(`${broker.apiUrl}/oauth2/token`, { ca, method: 'POST', cert: agent.cert, key: agent.key, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
  expect(issued.status).toBe(200);
  const asked = { subject: { type: 'identity', id: 'alice', properties: { iss: op.issuer } }, action: { name: 'tools/call', properties: { action: 'delete' } }, resource: { type: 'tool', id: 'delete_repo', properties: { server: RESOURCE } }, context: { task_id: JSON.parse(issued.body).task_id, agent: AGENT } };
  const answer = await httpsRequest(`${broker.apiUrl}/access/v1/evaluation`, { ca, method: 'POST', cert: agent.cert, key: agent.key, headers: { 'content-type': 'application/json' }, body: JSON.stringify(asked) });
  const body = JSON.parse(answer.body);
  expect(body).toMatchObject({ decision: false, context: { reason: 'approval_required', approval: { status: 'pending' } } });
  return body.context.approval.id;
}

it('an approver approves a pending request from the console with a reason; an operator, no approver, may only deny', async () => {
  const first = await pendingApproval();
  // vera is in the approvers' group and holds no admin role: she sees the approvals she may decide, nothing else.
  const vera = await signedIn('vera');
  await vera.waitForSelector(`button.approval-approve[data-approval="${first}"]`);
  expect(await vera.textContent('#no-role')).toContain('only the approvals you may decide');
  await vera.screenshot({ path: join(SHOTS, 'approvals.png'), fullPage: true });
  await vera.click(`button.approval-approve[data-approval="${first}"]`);
  await vera.fill('#approval-panel input[name=reason]', 'change ticket CHG-7');
  await vera.click('#confirm-approval');
  await vera.waitForSelector('#approval-done');
  expect(await vera.textContent('#approval-done')).toBe('approved by vera. Recorded with the reason "change ticket CHG-7".');
  expect((await admin(`/v1/admin/audit?type=approval.decided&actor=${encodeURIComponent(`user:${op.issuer}#vera`)}`, 'GET')).json.events[0].details).toMatchObject({ approvalId: first, decision: 'approved', reason: 'change ticket CHG-7' });
  await vera.context().close();
  const second = await pendingApproval();
  const sam = await signedIn('sam');
  await sam.click('a[href="#approvals"]');
  await sam.click(`button.approval-approve[data-approval="${second}"]`);
  await sam.fill('#approval-panel input[name=reason]', 'trust me');
  await sam.click('#confirm-approval');
  await sam.waitForSelector('[role=alert]');
  expect(await sam.textContent('[role=alert]')).toBe('only members of "approvers" decide this request');
  await sam.click('a[href="#leases"]');
  await sam.click('a[href="#approvals"]');
  await sam.click(`button.approval-deny[data-approval="${second}"]`);
  await sam.fill('#approval-panel input[name=reason]', 'incident under way');
  await sam.click('#confirm-approval');
  await sam.waitForSelector('#approval-done');
  expect(await sam.textContent('#approval-done')).toMatch(new RegExp(`^denied by sam\\. Audit #\\d+: approval\\.decided by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#sam \\(incident under way\\)\\.$`));
  expect((await admin(`/v1/approvals/${second}`, 'GET')).json).toMatchObject({ status: 'denied', decision_reason: 'incident under way' });
  await sam.context().close();
}, 60_000);

it('an auditor sees the pages without a revoke button, and the API refuses the change anyway', async () => {
  const page = await signedIn('alex');
  expect(await page.textContent('#who')).toContain('alex (auditor)');
  await page.selectOption('select[name=status]', 'revoked');
  await page.click('#lease-filters button[type=submit]');
  await page.waitForSelector('#leases tr:has-text("alice")');
  expect(await page.locator('button.revoke').count()).toBe(0);
  await page.screenshot({ path: join(SHOTS, 'auditor.png'), fullPage: true });
  const status = await page.evaluate(async () => {
    const session = await (await fetch('/console/api/session')).json();
    const res = await fetch('/v1/admin/revocations', { method: 'POST', headers: { 'content-type': 'application/json', 'x-writ-csrf': session.csrf }, body: JSON.stringify({ user: { issuer: session.issuer, subject: 'alice' }, reason: 'x' }) });
    return res.status;
  });
  expect(status).toBe(403);
  await page.context().close();
}, 60_000);

it('an admin edits the policy set: validated before it can be saved, then in force as a new version', async () => {
  const page = await signedIn('root');
  await page.click('a[href="#policies"]');
  await page.waitForSelector('#policy-version');
  expect(await page.textContent('#policy-version')).toMatch(/^Version 1, by policy_file at /);
  await page.fill('#policy-text', 'permit (principal, action, resource) when { principal.nonsense };');
  await page.click('#validate-policy');
  await page.waitForSelector('#policy-errors li');
  expect(await page.textContent('#policy-errors')).toContain('nonsense');
  expect(await page.isDisabled('#save-policy')).toBe(true);
  await page.screenshot({ path: join(SHOTS, 'policies-invalid.png'), fullPage: true });
  await page.fill('#policy-text', '@id("eng-read") permit (principal, action == Writ::Action::"read", resource) when { principal.groups.contains("eng") };\n@id("no-delete") forbid (principal, action == Writ::Action::"delete", resource);\n');
  await page.click('#validate-policy');
  await page.waitForSelector('#policy-valid');
  await page.click('#save-policy');
  await page.fill('#policy-panel input[name=reason]', 'no deletes anywhere');
  await page.click('#confirm-policy');
  await page.waitForSelector('#policy-saved');
  expect(await page.textContent('#policy-saved')).toMatch(new RegExp(`^Version 2 in force\\. Audit #\\d+: policy\\.updated by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#root \\(no deletes anywhere\\)\\.$`));
  expect((await admin('/v1/admin/policies', 'GET')).json.version).toBe(2);
  // The history: both versions, who made them and why; an old one's text on demand.
  await page.reload();
  await page.waitForSelector('#policy-history');
  expect(await page.textContent('#policy-history tbody tr:first-child')).toContain(`user:${op.issuer}#rootno deletes anywhere`);
  await page.click('button.show-version[data-version="1"]');
  await page.waitForSelector('#policy-version-text');
  expect(await page.textContent('#policy-version-text')).not.toContain('no-delete');
  await page.screenshot({ path: join(SHOTS, 'policies.png'), fullPage: true });
  await page.click('a[href="#approvals"]');
  await page.waitForSelector('#no-approvals');
  await page.context().close();
}, 60_000);

it('an operator sees a connector\'s entries and live SVIDs, and flips its kill switch, audited as them', async () => {
  const page = await signedIn('sam');
  await page.click('a[href="#connectors"]');
  await page.click(`a.connector-details:has-text("${AGENT}")`);
  await page.waitForSelector('#connector-entries');
  const { entries } = (await admin(`/v1/admin/entries?spiffe_id_prefix=${encodeURIComponent(AGENT)}`, 'GET')).json;
  expect(await page.textContent('#connector-entries')).toContain(`${entries[0].id}`);
  expect(await page.textContent('#connector-leases')).toContain('x509-svid');
  await page.screenshot({ path: join(SHOTS, 'connector.png'), fullPage: true });
  await page.click('a[href="#connectors"]');
  await page.click(`button.connector-disable[data-spiffe-id="${AGENT}"]`);
  await page.fill('#connector-panel input[name=reason]', 'compromised laptop');
  await page.screenshot({ path: join(SHOTS, 'connectors.png'), fullPage: true });
  await page.click('#confirm-connector');
  await page.waitForSelector('#connector-done');
  expect(await page.textContent('#connector-done')).toMatch(new RegExp(`connector\\.disabled by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#sam \\(compromised laptop\\)\\.$`));
  expect(await page.locator(`button.connector-enable[data-spiffe-id="${AGENT}"]`).count()).toBe(1);
  await page.context().close();
}, 60_000);

it('an admin binds a role with a reason; the bound person then holds it, and people without a role see only approvals', async () => {
  const page = await signedIn('root');
  await page.click('a[href="#roles"]');
  await page.waitForSelector('#role-bindings');
  await page.selectOption('#role-form select[name=role]', 'auditor');
  await page.fill('#role-form input[name=subject]', 'alice');
  await page.click('#role-form button[type=submit]');
  await page.fill('#role-panel input[name=reason]', 'quarterly access review');
  await page.click('#confirm-role');
  await page.waitForSelector('#role-done');
  expect(await page.textContent('#role-done')).toMatch(new RegExp(`role_binding\\.created by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#root \\(quarterly access review\\)\\.$`));
  expect(await page.textContent('#role-bindings')).toContain('user alice');
  await page.screenshot({ path: join(SHOTS, 'roles.png'), fullPage: true });
  // The token vault's providers and grants, for admins (none registered here).
  await page.click('a[href="#vault"]');
  await page.waitForSelector('#providers');
  expect(await page.textContent('h1')).toBe('Token vault');
  await page.context().close();
  // alice holds auditor now (read from the bindings on every request): she sees the leases page.
  const alice = await signedIn('alice');
  expect(await alice.textContent('#who')).toContain('alice (auditor)');
  await alice.context().close();
  // A person with no role sees the approvals they may decide and nothing else.
  const bob = await signedIn('bob');
  expect(await bob.textContent('#no-role')).toContain('holds no admin role');
  expect(await bob.locator('#nav a').count()).toBe(2);
  // …and their own linked accounts at the token vault's providers (none yet).
  await bob.click('a[href="#vault"]');
  await bob.waitForSelector('#no-grants');
  expect(await bob.textContent('h1')).toBe('Your linked accounts');
  await bob.screenshot({ path: join(SHOTS, 'vault-user.png'), fullPage: true });
  await bob.context().close();
}, 60_000);

it('ends a console session left idle, and the page asks to sign in again', async () => {
  const page = await signedIn('alex');
  await page.waitForSelector('#leases');
  // Idle past WRIT_CONSOLE_IDLE_TIMEOUT: the broker's clock moves on, the session is gone.
  idleOffset = 31 * 60_000;
  try {
    await page.click('a[href="#audit"]');
    await page.waitForSelector('#signed-out');
    expect(await page.textContent('#signed-out')).toContain('Your session has ended');
    await page.screenshot({ path: join(SHOTS, 'signed-out.png'), fullPage: true });
  } finally {
    idleOffset = 0;
  }
  await page.context().close();
}, 60_000);
