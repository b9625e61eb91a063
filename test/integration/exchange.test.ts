import { randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import type { Broker } from '../../src/broker';
import { certificateThumbprint } from '../../src/tokens';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.example.test';
const GITHUB = 'https://mcp.example.test/github';
const JIRA = 'https://mcp.example.test/jira';
const POLICIES = `
@id("eng-read-low")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("eng-write-platform")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 && context.connector.owner == "platform" };

@id("github-may-call-jira")
permit (principal, action == Writ::Action::"delegate", resource in Writ::Server::"${JIRA}")
when { principal == Writ::Connector::"spiffe://ex.test/mcp/github" && context.chain_depth <= 2 };
`;

let fx: BrokerFixture<'agent' | 'github' | 'stranger' | 'jira'>;
let broker: Broker;
let caPem: string;
let adminToken: string;
let otherKey: CryptoKey;
type Svid = ClientCert;
let agent: Svid;
let github: Svid;
let stranger: Svid;
let jira: Svid;

const admin = (path: string, method: string, body?: unknown) => fx.admin(path, method, body);

/** A form POST to an OAuth endpoint, optionally with a client certificate. */
const form = (path: string, params: Record<string, string | string[]>, as?: Svid, bearer?: string) => fx.form(path, params, as, bearer);

const idToken = (claims: Record<string, unknown> = {}, key?: CryptoKey) => fx.idp.idToken(claims, { key });

const details = (...d: [string, string][]) => JSON.stringify(d.map(([tool, action]) => ({ type: 'mcp_tool', tools: [tool], actions: [action] })));

const exchange = async (as: Svid | undefined, extra: Record<string, string | string[]> = {}) =>
  form(
    '/oauth2/token',
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await idToken(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: GITHUB,
      authorization_details: details(['search', 'read'], ['create_issue', 'write'], ['delete_repo', 'delete']),
      ...extra,
    },
    as,
  );

beforeAll(async () => {
  otherKey = (await generateKeyPair('ES256')).privateKey as CryptoKey;
  fx = await startBrokerFixture({
    prefix: 'writ-exchange-',
    trustDomain: 'ex.test',
    idpIssuer: IDP,
    policies: POLICIES,
    resources: [
      {
        uri: GITHUB,
        spiffe_id: 'spiffe://ex.test/mcp/github',
        tools: [
          { name: 'search', actions: ['read'], classification: 'internal' },
          { name: 'create_issue', actions: ['write'], classification: 'internal' },
          { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
        ],
      },
      { uri: JIRA, spiffe_id: 'spiffe://ex.test/mcp/jira', tools: [{ name: 'comment', actions: ['read', 'write'], classification: 'internal' }] },
    ],
    connectors: {
      agent: { spiffeId: 'spiffe://ex.test/agent/assistant', owner: 'platform' },
      github: { spiffeId: 'spiffe://ex.test/mcp/github', owner: 'platform' },
      stranger: { spiffeId: 'spiffe://ex.test/agent/other', owner: 'marketing' },
      jira: { spiffeId: 'spiffe://ex.test/mcp/jira', owner: 'platform' },
    },
  });
  ({ broker, caPem, adminToken } = fx);
  ({ agent, github, stranger, jira } = fx.connectors);
});

afterAll(async () => {
  await fx?.close();
});

describe('RFC 8693 token exchange with request-time Cedar policy', () => {
  let token: string;
  let taskId: string;

  it('grants the allowed subset and mints an RFC 9068 token bound to the client certificate (RFC 8705)', async () => {
    const res = await exchange(agent);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json).toMatchObject({ issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 300 });
    expect(res.json.authorization_details).toEqual([
      { type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' },
      { type: 'mcp_tool', tools: ['create_issue'], actions: ['write'], data_classification: 'internal' },
    ]);
    token = res.json.access_token;
    taskId = res.json.task_id;
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256', kid: broker.jwtKey.kid });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'alice', aud: GITHUB, client_id: 'spiffe://ex.test/agent/assistant', act: { sub: 'spiffe://ex.test/agent/assistant' }, task_id: taskId, sid: 'session-1' });
    expect(claims.cnf).toEqual({ 'x5t#S256': certificateThumbprint(new X509Certificate(agent.cert).raw) });
    const lease = await broker.db.prisma.lease.findUnique({ where: { id: claims.jti! } });
    expect(lease).toMatchObject({ kind: 'access-token', subject: 'alice', subjectIssuer: IDP, sid: 'session-1', taskId });
    const audit = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'token.issued' }, orderBy: { seq: 'desc' } });
    // The person as their identity provider names them: subject and issuer.
    expect(audit).toMatchObject({ subject: 'alice', subjectIssuer: IDP, actor: 'spiffe://ex.test/agent/assistant' });
    expect(JSON.stringify(audit!.details)).toContain('eng-read-low');
  });

  it('denies with access_denied when policy allows nothing, e.g. a connector the platform team does not own writing', async () => {
    const res = await exchange(stranger, { authorization_details: details(['create_issue', 'write'], ['delete_repo', 'delete']) });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('access_denied');
    const refused = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'token.refused' }, orderBy: { seq: 'desc' } });
    expect(refused).toMatchObject({ subject: 'alice', subjectIssuer: IDP, actor: 'spiffe://ex.test/agent/other' });
  });

  it.each([
    ['no client certificate', undefined, {}, 401, 'invalid_client'],
    ['another grant type', 'agent', { grant_type: 'client_credentials' }, 400, 'unsupported_grant_type'],
    ['two resources', 'agent', { resource: [GITHUB, JIRA] }, 400, 'invalid_target'],
    ['an unregistered resource', 'agent', { resource: 'https://elsewhere.test/mcp' }, 400, 'invalid_target'],
    ['an unknown tool', 'agent', { authorization_details: details(['rm_rf', 'delete']) }, 400, 'invalid_authorization_details'],
    ['malformed authorization_details', 'agent', { authorization_details: '[{"type":"mcp_tool"' }, 400, 'invalid_authorization_details'],
    ['a duplicated parameter', 'agent', { subject_token_type: ['urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:jwt'] }, 400, 'invalid_request'],
  ])('refuses %s', async (_, who, extra, status, error) => {
    const res = await exchange(who ? agent : undefined, extra as Record<string, string>);
    expect(res.status).toBe(status);
    expect(res.json.error).toBe(error);
    expect(res.json.error_description).toEqual(expect.any(String));
  });

  it('refuses forged and alg-confused subject tokens with invalid_grant', async () => {
    const forged = await exchange(agent, { subject_token: await idToken({}, otherKey) });
    expect(forged.json.error).toBe('invalid_grant');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: IDP, sub: 'alice', aud: 'writ', exp: 9999999999 })).toString('base64url')}.`;
    expect((await exchange(agent, { subject_token: none })).json.error).toBe('invalid_grant');
    // Alg confusion: HS256 "signed" with the provider's public key as the shared secret.
    const publicJwk = JSON.parse(readFileSync(fx.idp.jwksFile, 'utf8')).keys[0];
    const confused = await new SignJWT({ groups: ['eng'] }).setProtectedHeader({ alg: 'HS256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('alice').setExpirationTime('5m').sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
    expect((await exchange(agent, { subject_token: confused })).json.error).toBe('invalid_grant');
  });

  it('refuses expired and foreign subject tokens, and a wrong requested_token_type', async () => {
    const expired = await new SignJWT({ groups: ['eng'] }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('alice').setIssuedAt(1_700_000_000).setExpirationTime(1_700_000_600).sign(fx.idp.key);
    expect((await exchange(agent, { subject_token: expired })).json.error).toBe('invalid_grant');
    const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer('https://evil.test').setAudience('writ').setSubject('alice').setExpirationTime('5m').sign(fx.idp.key);
    expect((await exchange(agent, { subject_token: foreign })).json.error).toBe('invalid_grant');
    expect((await exchange(agent, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' })).json.error).toBe('invalid_request');
  });

  it('puts tokens with the same task_id in one task, for the same user and connector only', async () => {
    const again = await exchange(agent, { task_id: taskId });
    expect(again.status).toBe(200);
    expect(again.json.task_id).toBe(taskId);
    const elsewhere = await exchange(stranger, { task_id: taskId, authorization_details: details(['search', 'read']) });
    expect(elsewhere.json.error).toBe('invalid_request');
  });

  it('takes a policy change into account on the very next request', async () => {
    const current = (await admin('/v1/admin/policies', 'GET')).json.policies as string;
    const withoutWrites = current.replace(/@id\("eng-write-platform"\)[\s\S]*?};/, '');
    expect((await admin('/v1/admin/policies', 'PUT', { policies: withoutWrites })).status).toBe(200);
    const res = await exchange(agent);
    expect(res.json.authorization_details).toEqual([{ type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' }]);
    await admin('/v1/admin/policies', 'PUT', { policies: current });
  });

  it('RFC 7662: the resource introspects its own tokens; others learn nothing', async () => {
    const mine = await form('/oauth2/introspect', { token }, github);
    expect(mine.json).toMatchObject({ active: true, sub: 'alice', aud: GITHUB, task_id: taskId });
    expect((await form('/oauth2/introspect', { token }, stranger)).json).toEqual({ active: false });
    expect((await form('/oauth2/introspect', { token: 'garbage' }, github)).json).toEqual({ active: false });
    expect((await form('/oauth2/introspect', { token })).status).toBe(401);
  });

  it('chains only as far as policy allows each hop, nesting act and never outliving the parent', async () => {
    const chained = await form(
      '/oauth2/token',
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        resource: JIRA,
        authorization_details: details(['comment', 'read'], ['comment', 'write']),
      },
      github,
    );
    expect(chained.status).toBe(200);
    expect(chained.json.task_id).toBe(taskId);
    const claims = decodeJwt(chained.json.access_token);
    expect(claims.act).toEqual({ sub: 'spiffe://ex.test/mcp/github', act: { sub: 'spiffe://ex.test/agent/assistant' } });
    expect(claims.exp!).toBeLessThanOrEqual(decodeJwt(token).exp!);
    // The agent holds the token but is not the resource it was issued for.
    const leaked = await form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: JIRA, authorization_details: details(['comment', 'read']) }, agent);
    expect(leaked.json.error).toBe('invalid_grant');
    // No delegate permit for github → github (a hop back to itself): refused.
    const noDelegate = await form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: GITHUB, authorization_details: details(['search', 'read']) }, github);
    expect(noDelegate.json.error).toBe('access_denied');
  });

  it('never lets a chained token grant more than its parent, nor a chain grow past the maximum depth', async () => {
    const chain = (subject: string, resource: string, d: string, as: Svid) =>
      form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource, authorization_details: d }, as);
    // A parent that may only read (policy now withholds writes): a child may not write, even where policy would allow it.
    const readOnly = await exchange(agent, { authorization_details: details(['search', 'read']) });
    const noWrite = await chain(readOnly.json.access_token, JIRA, details(['comment', 'write']), github);
    expect(noWrite.json.error).toBe('access_denied');
    // Declaring a higher classification than the parent had is dropped, not granted.
    const higher = await chain(readOnly.json.access_token, JIRA, JSON.stringify([{ type: 'mcp_tool', tools: ['comment'], actions: ['read'] }, { type: 'mcp_tool', tools: ['comment'], actions: ['read'], data_classification: 'restricted' }]), github);
    expect(higher.status).toBe(200);
    expect(higher.json.authorization_details).toEqual([{ type: 'mcp_tool', tools: ['comment'], actions: ['read'], data_classification: 'internal' }]);
    // Revoking the parent makes the child inactive too.
    expect((await form('/oauth2/introspect', { token: higher.json.access_token }, undefined, adminToken)).json.active).toBe(true);
    await form('/oauth2/revoke', { token: readOnly.json.access_token }, agent);
    expect((await form('/oauth2/introspect', { token: higher.json.access_token }, undefined, adminToken)).json).toEqual({ active: false });
  });

  it('refuses a third hop with the default maximum depth of 2', async () => {
    const policies = (await admin('/v1/admin/policies', 'GET')).json.policies as string;
    const anyHop = `${policies}\n@id("any-hop")\npermit (principal, action == Writ::Action::"delegate", resource);\n`;
    expect((await admin('/v1/admin/policies', 'PUT', { policies: anyHop })).status).toBe(200);
    const hop = (subject: string, resource: string, as: Svid) =>
      form('/oauth2/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource, authorization_details: details(resource === JIRA ? ['comment', 'read'] : ['search', 'read']) }, as);
    const root = await exchange(agent, { authorization_details: details(['search', 'read']) });
    const one = await hop(root.json.access_token, JIRA, github); // github presents its token to reach jira
    expect(one.status).toBe(200);
    const two = await hop(one.json.access_token, GITHUB, jira); // jira presents its token to reach github
    expect(two.status).toBe(200);
    expect(decodeJwt(two.json.access_token).act).toEqual({ sub: 'spiffe://ex.test/mcp/jira', act: { sub: 'spiffe://ex.test/mcp/github', act: { sub: 'spiffe://ex.test/agent/assistant' } } });
    const three = await hop(two.json.access_token, JIRA, github);
    expect(three.json.error).toBe('access_denied');
    expect(three.json.error_description).toMatch(/3 hops/);
    await admin('/v1/admin/policies', 'PUT', { policies });
  });

  it('takes only form-encoded parameters; introspection by an admin; revocation answers 200 for a garbage token', async () => {
    const json = await httpsRequest(`${broker.apiUrl}/oauth2/token`, { ca: caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', cert: agent.cert, key: agent.key });
    expect(JSON.parse(json.body).error).toBe('invalid_request');
    expect((await form('/oauth2/introspect', { token }, undefined, adminToken)).json.active).toBe(true);
    expect((await form('/oauth2/revoke', { token: 'not-a-token' }, agent)).status).toBe(200);
  });

  it('refuses a complete exchange sent as JSON (RFC 6749 §3.2, RFC 8693 §2.1: form encoding only), naming the content type, and issues nothing', async () => {
    const params = {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await idToken(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: GITHUB,
      authorization_details: details(['search', 'read']),
    };
    const before = await broker.db.prisma.lease.count({ where: { kind: 'access-token' } });
    for (const contentType of ['application/json', 'text/plain', 'application/x-www-form-urlencoded-but-not']) {
      const res = await httpsRequest(`${broker.apiUrl}/oauth2/token`, { ca: caPem, method: 'POST', headers: { 'content-type': contentType }, body: JSON.stringify(params), cert: agent.cert, key: agent.key });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining(contentType) });
    }
    expect(await broker.db.prisma.lease.count({ where: { kind: 'access-token' } })).toBe(before);
  });

  it('RFC 7009 revocation and task end make tokens inactive at once', async () => {
    expect((await form('/oauth2/revoke', { token }, stranger)).status).toBe(200); // not its token: nothing happens
    expect((await form('/oauth2/introspect', { token }, github)).json.active).toBe(true);
    expect((await form('/oauth2/revoke', { token }, agent)).status).toBe(200);
    expect((await form('/oauth2/introspect', { token }, github)).json).toEqual({ active: false });
    // Both events name the user as the lease does: the token itself carries only `sub`.
    const jti = decodeJwt(token).jti;
    for (const type of ['token.revoke_refused', 'token.revoked']) {
      const event = await broker.db.prisma.auditEvent.findFirst({ where: { type }, orderBy: { seq: 'desc' } });
      expect(event).toMatchObject({ subject: 'alice', subjectIssuer: IDP, details: expect.objectContaining({ jti }) });
    }

    const next = await exchange(agent);
    const ended = await httpsRequest(`${broker.apiUrl}/v1/tasks/${next.json.task_id}/end`, { ca: caPem, method: 'POST', cert: agent.cert, key: agent.key });
    expect(JSON.parse(ended.body).revoked).toBeGreaterThanOrEqual(1);
    expect((await form('/oauth2/introspect', { token: next.json.access_token }, github)).json).toEqual({ active: false });
  });

  it('a lease whose task ended after the exchange checked it is refused at commit, with no audit event (no live token in an ended task)', async () => {
    const issued = await exchange(agent);
    const taskId = issued.json.task_id as string;
    await httpsRequest(`${broker.apiUrl}/v1/tasks/${taskId}/end`, { ca: caPem, method: 'POST', cert: agent.cert, key: agent.key });
    // The exchange's own check has passed; the task ends; then its lease reaches the database.
    const late = randomUUID();
    const now = new Date();
    const other = randomUUID(); // in the same batch, for a task that is still open: committed
    const [refused, committed] = await Promise.allSettled([
      broker.leases.record(
        { id: late, kind: 'access-token', spiffeId: 'spiffe://ex.test/agent/assistant', subject: 'alice', taskId, issuedAt: now, expiresAt: new Date(now.getTime() + 60_000) },
        { audit: { type: 'token.issued', subject: 'alice', details: { jti: late } } },
      ),
      broker.leases.record(
        { id: other, kind: 'access-token', spiffeId: 'spiffe://ex.test/agent/assistant', subject: 'alice', taskId: randomUUID(), issuedAt: now, expiresAt: new Date(now.getTime() + 60_000) },
        { audit: { type: 'token.issued', subject: 'alice', details: { jti: other } } },
      ),
    ]);
    expect(refused).toMatchObject({ status: 'rejected', reason: { message: 'the task has ended' } });
    expect(committed.status).toBe('fulfilled');
    expect(await broker.db.prisma.lease.count({ where: { id: { in: [late, other] } } })).toBe(1);
    const events = await broker.db.prisma.auditEvent.findMany({ where: { type: 'token.issued' }, select: { details: true } });
    expect(events.map((e) => (e.details as { jti?: string }).jti)).not.toContain(late);
    expect(events.map((e) => (e.details as { jti?: string }).jti)).toContain(other);
    expect(await broker.audit.verify()).toBeUndefined();
  });

  it('RFC 8414 metadata names the endpoints and capabilities', async () => {
    const res = await httpsRequest(`${broker.apiUrl}/.well-known/oauth-authorization-server`, { ca: caPem });
    expect(JSON.parse(res.body)).toMatchObject({
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      tls_client_certificate_bound_access_tokens: true,
      authorization_details_types_supported: ['mcp_tool'],
    });
  });

  it('issues no token when the database refuses to commit the lease', async () => {
    const prisma = broker.db.prisma;
    await prisma.$executeRawUnsafe(`CREATE FUNCTION refuse_tokens() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$`);
    await prisma.$executeRawUnsafe(`CREATE TRIGGER refuse_tokens BEFORE INSERT ON lease FOR EACH ROW WHEN (NEW.kind = 'access-token') EXECUTE FUNCTION refuse_tokens()`);
    try {
      const before = await prisma.lease.count({ where: { kind: 'access-token' } });
      const res = await exchange(agent);
      expect(res.status).toBe(503);
      expect(res.json).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      expect(await prisma.lease.count({ where: { kind: 'access-token' } })).toBe(before);
    } finally {
      await prisma.$executeRawUnsafe('DROP TRIGGER refuse_tokens ON lease');
      await prisma.$executeRawUnsafe('DROP FUNCTION refuse_tokens()');
    }
  });

  it('audits refusals that never reach the exchange (a body that is not a form)', async () => {
    await httpsRequest(`${broker.apiUrl}/oauth2/introspect`, { ca: caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', cert: github.cert, key: github.key });
    const row = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'oauth.refused' }, orderBy: { seq: 'desc' } });
    expect(row!.details).toEqual({ endpoint: '/oauth2/introspect', error: 'invalid_request' });
  });

  it('issues no token when the database cannot commit the lease (503 temporarily_unavailable)', async () => {
    const fresh = (await exchange(agent)).json.access_token as string;
    expect((await form('/oauth2/introspect', { token: fresh }, undefined, adminToken)).json.active).toBe(true);
    await broker.db.close();
    const res = await exchange(agent);
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('temporarily_unavailable');
    expect(res.json.access_token).toBeUndefined();
    // Introspection fails closed too: a token that was active is not reported active without the database.
    expect((await form('/oauth2/introspect', { token: fresh }, undefined, adminToken)).json).toEqual({ active: false });
  });
});
