/**
 * What the console reads and changes, at the API (issue 19), on the embedded database and on
 * PostgreSQL: a lease's token claims, decisions and task events; the policy set's history with
 * each version's reason; role bindings made and removed with a reason; the audit trail by task;
 * people with a role at introspection (auditor) and revocation (operator) instead of the shared
 * admin token.
 */
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { exchangeTaskToken } from '../support/mcp';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.views.test';
const CONSOLE = 'writ-console';
const GITHUB = 'https://mcp.views.test/github';
const AGENT = 'spiffe://views.test/agent/assistant';
const POLICIES = '@id("eng-read")\npermit (principal, action == Writ::Action::"read", resource) when { principal.groups.contains("eng") };\n';

let fx: BrokerFixture<'agent'>;

/** A person's sign-in token for Writ (WRIT_ADMIN_AUDIENCE). */
const signIn = (sub: string, groups: string[]) => fx.idp.idToken({ groups }, { subject: sub, audience: CONSOLE });
const as = async (bearer: string, path: string, method = 'GET', body?: unknown) => {
  const res = await httpsRequest(`${fx.broker.apiUrl}${path}`, { ca: fx.caPem, method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
};
const aliceTask = async () =>
  exchangeTaskToken(fx, fx.connectors.agent, { subjectToken: await fx.idp.idToken({ groups: ['eng'] }, { subject: 'alice' }), resource: GITHUB, details: [{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }, { type: 'mcp_tool', tools: ['push'], actions: ['write'] }] });

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-views-',
    trustDomain: 'views.test',
    idpIssuer: IDP,
    policies: POLICIES,
    env: { WRIT_ADMIN_AUDIENCE: CONSOLE, WRIT_ADMIN_ROLES: JSON.stringify([{ role: 'auditor', issuer: IDP, group: 'audit' }, { role: 'operator', issuer: IDP, group: 'soc' }, { role: 'admin', issuer: IDP, subject: 'root' }]) },
    resources: [{ uri: GITHUB, spiffe_id: 'spiffe://views.test/mcp/github', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }, { name: 'push', actions: ['write'], classification: 'internal' }] }],
    connectors: { agent: { spiffeId: AGENT } },
  });
});

afterAll(async () => {
  await fx?.close();
});

describe('GET /v1/admin/leases/{jti}', () => {
  it('shows the claims the token was issued with, each tool\'s decision, and the events of the token and its task', async () => {
    const { token, taskId } = await aliceTask();
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    const operator = await signIn('olga', ['soc']);
    expect((await as(operator, '/v1/admin/revocations', 'POST', { task_id: taskId, reason: 'task over' })).status).toBe(200);
    const lease = await as(await signIn('ada', ['audit']), `/v1/admin/leases/${jti}`);
    expect(lease.status).toBe(200);
    expect(lease.json).toMatchObject({ jti, kind: 'access-token', subject: 'alice', subject_issuer: IDP, task_id: taskId, revocation_reason: 'task over', policy_version: 1 });
    // Exactly the token's payload (RFC 9068 §2.2), as the resource server received it.
    expect(lease.json.claims).toEqual(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()));
    expect(lease.json.decisions).toEqual([
      { tool: 'search', action: 'read', allowed: true, policies: ['eng-read'] },
      { tool: 'push', action: 'write', allowed: false, policies: [] },
    ]);
    expect(lease.json.events.map((e: { type: string }) => e.type)).toEqual(['revocation', 'token.issued']);
    expect(lease.json.events[0]).toMatchObject({ actor: `user:${IDP}#olga`, details: { taskId, reason: 'task over', revoked: 1 } });
  });

  it('answers 404 for a lease that does not exist and 400 naming the field for a malformed id', async () => {
    const auditor = await signIn('ada', ['audit']);
    const missing = await as(auditor, '/v1/admin/leases/00000000-0000-4000-8000-000000000000');
    expect([missing.status, missing.json.type]).toEqual([404, 'urn:writ:problem:lease-not-found']);
    const bad = await as(auditor, '/v1/admin/leases/not-a-uuid');
    expect(bad.status).toBe(400);
    expect(bad.json.detail).toContain('jti');
  });

  it('is refused to a person without a role', async () => {
    expect((await as(await signIn('mallory', ['eng']), '/v1/admin/leases/00000000-0000-4000-8000-000000000000')).status).toBe(403);
  });
});

describe('the audit trail by task', () => {
  it('lists a task\'s events only (GET /v1/admin/audit?task_id=)', async () => {
    const first = await aliceTask();
    const second = await aliceTask();
    const auditor = await signIn('ada', ['audit']);
    const events = (await as(auditor, `/v1/admin/audit?task_id=${first.taskId}`)).json.events as { details: { taskId: string } }[];
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.details.taskId === first.taskId)).toBe(true);
    expect(events.some((e) => e.details.taskId === second.taskId)).toBe(false);
    expect((await as(auditor, '/v1/admin/audit?task_id=nope')).status).toBe(400);
  });
});

describe('the policy set\'s history', () => {
  it('records each version\'s author and reason, lists them newest first, and shows an old version\'s text', async () => {
    const root = await signIn('root', []);
    const text = `${POLICIES}@id("no-push")\nforbid (principal, action == Writ::Action::"write", resource);\n`;
    const put = await as(root, '/v1/admin/policies', 'PUT', { policies: text, reason: 'freeze pushes during the release' });
    expect(put.status).toBe(200);
    const history = await as(await signIn('ada', ['audit']), '/v1/admin/policies/versions');
    expect(history.json.versions.slice(0, 2)).toEqual([
      { version: put.json.version, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), created_at: put.json.created_at, created_by: `user:${IDP}#root`, reason: 'freeze pushes during the release' },
      { version: 1, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), created_at: expect.any(String), created_by: 'policy_file', reason: null },
    ]);
    expect((await as(root, '/v1/admin/policies/versions/1')).json.policies).toBe(POLICIES);
    expect((await as(root, `/v1/admin/policies/versions/${put.json.version}`)).json).toMatchObject({ policies: text, reason: 'freeze pushes during the release' });
    expect((await as(root, '/v1/admin/policies/versions/999')).status).toBe(404);
    const audited = await as(root, `/v1/admin/audit?type=policy.updated&actor=${encodeURIComponent(`user:${IDP}#root`)}&limit=1`);
    expect(audited.json.events[0].details).toEqual({ version: put.json.version, reason: 'freeze pushes during the release' });
    // Validation still comes first, and an auditor cannot save.
    expect((await as(root, '/v1/admin/policies', 'PUT', { policies: 'permit (principal, action, resource) when { principal.nonsense };', reason: 'x' })).status).toBe(400);
    expect((await as(await signIn('ada', ['audit']), '/v1/admin/policies', 'PUT', { policies: text, reason: 'x' })).status).toBe(403);
  });
});

describe('role bindings with a reason', () => {
  it('audits why a binding was made and removed', async () => {
    const root = await signIn('root', []);
    const made = await as(root, '/v1/admin/role-bindings', 'POST', { role: 'auditor', issuer: IDP, subject: 'dana', reason: 'joins the audit team' });
    expect(made.status).toBe(201);
    expect((await as(await signIn('dana', []), '/v1/admin/leases?task_id=00000000-0000-4000-8000-000000000000')).status).toBe(200);
    expect((await as(root, `/v1/admin/role-bindings/${made.json.id}?reason=${encodeURIComponent('left the team')}`, 'DELETE')).status).toBe(204);
    expect((await as(await signIn('dana', []), '/v1/admin/leases?task_id=00000000-0000-4000-8000-000000000000')).status).toBe(403);
    const events = (await as(root, `/v1/admin/audit?type=role_binding.*&limit=2`)).json.events;
    expect(events.map((e: { type: string; details: { reason: string } }) => [e.type, e.details.reason])).toEqual([['role_binding.deleted', 'left the team'], ['role_binding.created', 'joins the audit team']]);
    expect((await as(root, '/v1/admin/role-bindings', 'POST', { role: 'auditor', issuer: IDP, subject: 'dana', reason: '' })).status).toBe(400);
  });
});

describe('people at introspection and revocation (RFC 7662, RFC 7009)', () => {
  it('lets an auditor introspect any token and an operator revoke one, audited as them; others are refused', async () => {
    const { token } = await aliceTask();
    const introspect = (bearer: string) => fx.form('/oauth2/introspect', { token }, undefined, bearer);
    const auditor = await signIn('ada', ['audit']);
    const seen = await introspect(auditor);
    expect([seen.status, seen.json.active, seen.json.sub]).toEqual([200, true, 'alice']);
    // A person without a role is refused as a client, not answered "inactive".
    const nobody = await introspect(await signIn('mallory', ['eng']));
    expect([nobody.status, nobody.json.error]).toEqual([401, 'invalid_client']);
    const byAuditor = await fx.form('/oauth2/revoke', { token }, undefined, auditor);
    expect([byAuditor.status, byAuditor.json.error, byAuditor.json.error_description]).toEqual([401, 'invalid_client', `user:${IDP}#ada does not hold the operator role`]);
    expect((await introspect(auditor)).json.active).toBe(true);
    const byOperator = await fx.form('/oauth2/revoke', { token }, undefined, await signIn('olga', ['soc']));
    expect(byOperator.status).toBe(200);
    expect((await introspect(auditor)).json.active).toBe(false);
    const revoked = (await as(auditor, '/v1/admin/audit?type=token.revoked&limit=1')).json.events[0];
    expect(revoked).toMatchObject({ subject: 'alice', actor: `user:${IDP}#olga` });
  });
});
