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
const ADMIN = 'a-bootstrap-token-of-some-length';

const admin = async (path: string, method: string, body?: unknown) => {
  const res = await httpsRequest(`${broker.apiUrl}${path}`, { ca, method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
};

beforeAll(async () => {
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  op = await startDevOpProcess({ users: { alice: ['eng'], sam: ['secops'], alex: ['audit'], root: [] }, consoleRedirectUris: [`${issuer}/console/callback`] });
  store = await createTestStore();
  work = mkdtempSync(join(tmpdir(), 'writ-browser-'));
  const policy = join(work, 'policy.cedar');
  writeFileSync(policy, '@id("eng-read") permit (principal, action == Writ::Action::"read", resource) when { principal.groups.contains("eng") };\n');
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
  );
  ca = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
  // alice's live task: the agent exchanges her ID token for a token to the GitHub MCP server.
  expect((await admin('/v1/admin/resources', 'POST', { uri: RESOURCE, spiffe_id: 'spiffe://console.test/mcp/github', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] })).status).toBe(201);
  const agent = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: AGENT, dir: work, metadata: { owner: 'platform' } });
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
  // The token is over at once: introspection says so.
  const introspected = await httpsRequest(`${broker.apiUrl}/oauth2/introspect`, { ca, method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${aliceToken}` });
  expect(JSON.parse(introspected.body).active).toBe(false);
  await page.click('a[href="#audit"]');
  await page.waitForSelector('#chain');
  expect(await page.textContent('#chain')).toMatch(/^Hash chain intact over \d+ events\.$/);
  await page.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
  await page.context().close();
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
  await page.waitForSelector('#policy-saved');
  expect(await page.textContent('#policy-saved')).toMatch(new RegExp(`^Version 2 in force\\. Audit #\\d+: policy\\.updated by user:${op.issuer.replace(/[.:/]/g, '\\$&')}#root\\.$`));
  expect((await admin('/v1/admin/policies', 'GET')).json.version).toBe(2);
  await page.click('a[href="#approvals"]');
  await page.waitForSelector('#no-approvals');
  await page.context().close();
}, 60_000);

it('an operator flips a connector\'s kill switch from the connectors page, audited as them', async () => {
  const page = await signedIn('sam');
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
