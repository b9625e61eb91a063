/**
 * Writ as an OpenID AuthZEN 1.0 policy decision point (issue: governance of every call): a PEP
 * authenticated by its SVID asks, per call, whether a task's user may perform an action on a
 * tool now. The answer follows the same Cedar policy set as the exchange, at that moment: a
 * policy change, a task's end or the kill switch take effect on the very next call.
 */
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.authzen.test';
const GITHUB = 'https://mcp.authzen.test/github';
const AGENT = 'spiffe://authzen.test/agent/assistant';
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") };
`;

let fx: BrokerFixture<'agent' | 'github' | 'stranger'>;
let taskId: string;

const ask = (path: string, body: unknown, as: ClientCert | null = fx.connectors.github, headers: Record<string, string> = {}) =>
  httpsRequest(`${fx.broker.apiUrl}${path}`, {
    ca: fx.caPem,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...(as && { cert: as.cert, key: as.key }),
  }).then((r) => ({ ...r, json: JSON.parse(r.body) }));

/** The MCP binding's default mapping of a tools/call (subject = the token's user, context.agent = its connector). */
const call = (tool: string, extra: { action?: string; task?: string; subject?: string } = {}) => ({
  subject: { type: 'identity', id: extra.subject ?? 'alice', properties: { iss: IDP } },
  action: { name: 'tools/call', ...(extra.action && { properties: { action: extra.action } }) },
  resource: { type: 'tool', id: tool },
  context: { task_id: extra.task ?? taskId, agent: AGENT },
});

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-authzen-',
    trustDomain: 'authzen.test',
    idpIssuer: IDP,
    policies: POLICIES,
    resources: [{ uri: GITHUB, spiffe_id: 'spiffe://authzen.test/mcp/github', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }, { name: 'create_issue', actions: ['write'], classification: 'internal' }] }],
    connectors: { agent: { spiffeId: AGENT, owner: 'platform' }, github: { spiffeId: 'spiffe://authzen.test/mcp/github' }, stranger: { spiffeId: 'spiffe://authzen.test/agent/other' } },
  });
  const issued = await fx.form(
    '/oauth2/token',
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await fx.idp.idToken(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: GITHUB,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]),
    },
    fx.connectors.agent,
  );
  expect(issued.status).toBe(200);
  taskId = issued.json.task_id;
});

afterAll(async () => {
  await fx?.close();
});

describe('AuthZEN access evaluation', () => {
  it('publishes its metadata (§9)', async () => {
    const res = await httpsRequest(`${fx.broker.apiUrl}/.well-known/authzen-configuration`, { ca: fx.caPem });
    const doc = JSON.parse(res.body);
    expect(doc).toEqual({ policy_decision_point: fx.config.issuer, access_evaluation_endpoint: `${fx.config.issuer}/access/v1/evaluation`, access_evaluations_endpoint: `${fx.config.issuer}/access/v1/evaluations` });
  });

  it('permits what policy permits for the task\'s user, and denies the rest with 200 and the reason (§6.2, §10)', async () => {
    const yes = await ask('/access/v1/evaluation', call('search'), fx.connectors.github, { 'x-request-id': 'req-42' });
    expect([yes.status, yes.json, yes.headers['x-request-id']]).toEqual([200, { decision: true }, 'req-42']);
    const no = await ask('/access/v1/evaluation', call('create_issue'));
    expect([no.status, no.json]).toEqual([200, { decision: false, context: { reason: 'the policy does not permit it', policies: [] } }]);
    const audited = await fx.broker.db.prisma.auditEvent.findMany({ where: { type: 'access.evaluated' }, orderBy: { seq: 'asc' } });
    expect(audited.slice(-2).map((e) => [e.subject, e.subjectIssuer, e.actor, (e.details as { decision: boolean; connector: string }).decision, (e.details as { connector: string }).connector])).toEqual([
      ['alice', IDP, 'spiffe://authzen.test/mcp/github', true, AGENT],
      ['alice', IDP, 'spiffe://authzen.test/mcp/github', false, AGENT],
    ]);
  });

  it('denies the calls of a token the PEP names once it was revoked (context.jti), without introspection', async () => {
    const issued = await fx.form(
      '/oauth2/token',
      { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await fx.idp.idToken(), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource: GITHUB, task_id: taskId, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]) },
      fx.connectors.agent,
    );
    const jti = JSON.parse(Buffer.from(issued.json.access_token.split('.')[1], 'base64url').toString()).jti as string;
    const withJti = { ...call('search'), context: { ...call('search').context, jti } };
    expect((await ask('/access/v1/evaluation', withJti)).json).toEqual({ decision: true });
    expect((await fx.form('/oauth2/revoke', { token: issued.json.access_token }, fx.connectors.agent)).status).toBe(200);
    expect((await ask('/access/v1/evaluation', withJti)).json).toEqual({ decision: false, context: { reason: 'the access token was revoked or has expired' } });
    // Another task's token does not vouch for this one.
    expect((await ask('/access/v1/evaluation', { ...withJti, context: { ...withJti.context, jti: '00000000-0000-4000-8000-000000000000' } })).json.decision).toBe(false);
    expect((await ask('/access/v1/evaluation', { ...withJti, context: { ...withJti.context, jti: 'nope' } })).json.detail).toMatch(/^context\.jti: /);
    // The task's other token still decides as before.
    expect((await ask('/access/v1/evaluation', call('search'))).json).toEqual({ decision: true });
  });

  it('takes a policy change into account on the very next call', async () => {
    const current = (await fx.admin('/v1/admin/policies', 'GET')).json.policies as string;
    const withWrites = `${current}\n@id("eng-write")\npermit (principal, action == Writ::Action::"write", resource is Writ::Tool) when { principal.groups.contains("eng") };\n`;
    expect((await fx.admin('/v1/admin/policies', 'PUT', { policies: withWrites })).status).toBe(200);
    expect((await ask('/access/v1/evaluation', call('create_issue'))).json).toEqual({ decision: true });
    expect((await fx.admin('/v1/admin/policies', 'PUT', { policies: current })).status).toBe(200);
    expect((await ask('/access/v1/evaluation', call('create_issue'))).json.decision).toBe(false);
  });

  it('takes the user\'s identity provider from the task when the PEP names only sub (the MCP binding maps $token.sub), and refuses another', async () => {
    expect((await ask('/access/v1/evaluation', { ...call('search'), subject: { type: 'identity', id: 'alice' } })).json).toEqual({ decision: true });
    expect((await ask('/access/v1/evaluation', { ...call('search'), subject: { type: 'identity', id: 'alice', properties: { iss: 'https://other-idp.test' } } })).json.context.reason).toBe('no such task of this user');
  });

  it('decides with Writ\'s records, not the PEP\'s word: another user\'s task, a stranger PEP, a wrong agent are denied', async () => {
    expect((await ask('/access/v1/evaluation', call('search', { subject: 'mallory' }))).json).toEqual({ decision: false, context: { reason: 'no such task of this user' } });
    expect((await ask('/access/v1/evaluation', { ...call('search'), resource: { type: 'tool', id: 'search', properties: { server: GITHUB } } }, fx.connectors.stranger)).json).toEqual({ decision: false, context: { reason: 'the caller is neither the server nor the task\'s connector' } });
    expect((await ask('/access/v1/evaluation', { ...call('search'), context: { task_id: taskId, agent: 'spiffe://authzen.test/agent/other' } })).json.context.reason).toBe('context.agent is not the task\'s connector');
    // The task's connector may ask about its own task, naming the server.
    expect((await ask('/access/v1/evaluation', { ...call('search'), resource: { type: 'tool', id: 'search', properties: { server: GITHUB } } }, fx.connectors.agent)).json).toEqual({ decision: true });
  });

  it('refuses requests it cannot evaluate (400, the member named), and callers without an SVID (401)', async () => {
    const bad = await ask('/access/v1/evaluation', { ...call('search'), subject: { type: 'group', id: 'eng', properties: { iss: IDP } } });
    expect([bad.status, bad.json.detail]).toEqual([400, 'subject.type: Writ decides for users ("user" or "identity")']);
    const noTask = await ask('/access/v1/evaluation', { ...call('search'), context: {} });
    expect(noTask.json.detail).toMatch(/^context\.task_id: /);
    const missing = await ask('/access/v1/evaluation', { subject: call('search').subject, action: { name: 'tools/call' } });
    expect([missing.status, missing.json.type]).toEqual([400, 'urn:writ:problem:invalid-request']);
    expect((await ask('/access/v1/evaluation', call('search'), null)).status).toBe(401);
  });

  it('evaluates batches with each semantic (§7.1.2.1), an entry in error being a denial (§7.2.1)', async () => {
    const entries = [{ resource: { type: 'tool', id: 'search' } }, { resource: { type: 'tool', id: 'create_issue' } }, { resource: { type: 'tool', id: 'search' } }];
    const base = { subject: call('search').subject, action: { name: 'tools/call' }, context: call('search').context };
    const decisions = async (semantic?: string) => (await ask('/access/v1/evaluations', { ...base, evaluations: entries, ...(semantic && { options: { evaluations_semantic: semantic } }) })).json.evaluations.map((e: { decision: boolean }) => e.decision);
    expect(await decisions()).toEqual([true, false, true]);
    expect(await decisions('execute_all')).toEqual([true, false, true]);
    expect(await decisions('deny_on_first_deny')).toEqual([true, false]);
    expect(await decisions('permit_on_first_permit')).toEqual([true]);
    const withError = await ask('/access/v1/evaluations', { ...base, evaluations: [{ resource: { type: 'tool', id: 'search' } }, { resource: { type: 'bucket', id: 'x' } }] });
    expect(withError.json.evaluations).toEqual([{ decision: true }, { decision: false, context: { reason: 'resource.type: Writ decides on MCP tools ("tool")' } }]);
    // Without evaluations, the defaults are one evaluation.
    expect((await ask('/access/v1/evaluations', { ...base, resource: { type: 'tool', id: 'search' } })).json).toEqual({ evaluations: [{ decision: true }] });
  });

  it('denies once the connector\'s kill switch is thrown, and once the task has ended', async () => {
    expect((await fx.admin(`/v1/admin/connectors/${encodeURIComponent(AGENT)}/disable`, 'POST', { reason: 'incident' })).status).toBe(200);
    expect((await ask('/access/v1/evaluation', call('search'))).json).toEqual({ decision: false, context: { reason: 'the connector is disabled' } });
    expect((await fx.admin(`/v1/admin/connectors/${encodeURIComponent(AGENT)}/enable`, 'POST', { reason: 'cleaned' })).status).toBe(200);
    expect((await ask('/access/v1/evaluation', call('search'))).json.decision).toBe(true);
    await fx.broker.tasks.end(taskId, AGENT);
    expect((await ask('/access/v1/evaluation', call('search'))).json).toEqual({ decision: false, context: { reason: 'the task has ended' } });
  });
});
