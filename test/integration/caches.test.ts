import { decodeJwt } from 'jose';
import pino from 'pino';
import type { Broker } from '../../src/broker';
import { usingPostgres } from '../support/database';
import type { AttestedConnector } from '../support/attest';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { httpsRequest } from '../support/https';

/*
 * The read caches (entries, resources, policy set, subject revocation markers, leases) are
 * trusted only while a replica's LISTEN/NOTIFY view is current. These tests run two brokers
 * on one PostgreSQL database and one CA directory, warm a cache on replica B, change the
 * data through replica A, and require B to refuse within a second (and A at once).
 */

const IDP = 'https://idp.cache.test';
const GITHUB = 'https://mcp.cache.test/github';
const TD = 'cache.test';
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("eng-write")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };
`;
const TOOLS = [
  { name: 'search', actions: ['read'], classification: 'internal' },
  { name: 'create_issue', actions: ['write'], classification: 'internal' },
  { name: 'wiki_read', actions: ['read'], classification: 'internal' },
];
const PROPAGATION_MS = 1000;
const POLL_MS = 20;

const describePg = usingPostgres() ? describe : describe.skip;

type Svid = AttestedConnector;
type Reply = { status: number; json: any };

let fx: BrokerFixture<'agent' | 'github'>;
let a: Broker;
let b: Broker;
let caPem: string;
let adminToken: string;
let agent: Svid;
let github: Svid;
/** Observed propagation times (ms) from the change's acknowledgement on A to B's first refusal. */
const observed: Record<string, number> = {};

const toReply = (r: { status: number; json: any }): Reply => ({ status: r.status, json: r.json });

const admin = (on: Broker, path: string, method: string, body?: unknown) => fx.at(on).admin(path, method, body).then(toReply);

/** A form POST to an OAuth endpoint, with a client certificate or the admin bearer. */
const form = (on: Broker, path: string, params: Record<string, string>, as?: Svid, bearer?: string) => fx.at(on).form(path, params, as, bearer).then(toReply);

const idToken = (subject: string) => fx.idp.idToken({ sid: `session-${subject}` }, { subject });

const details = (...d: [string, string][]) => JSON.stringify(d.map(([tool, action]) => ({ type: 'mcp_tool', tools: [tool], actions: [action] })));

/** A token exchange on `on` for `subjectToken` (an ID token), asking for the given tools. */
const exchange = (on: Broker, as: Svid, subjectToken: string, tools: [string, string][] = [['search', 'read']]) =>
  form(on, '/oauth2/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    resource: GITHUB,
    authorization_details: details(...tools),
  }, as);

const introspect = (on: Broker, token: string) => form(on, '/oauth2/introspect', { token }, undefined, adminToken);

const renew = (on: Broker, as: Svid) =>
  httpsRequest(`${on.apiUrl}/v1/svid/renew`, { ca: caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr: as.csr }), cert: as.cert, key: as.key }).then((r) => ({ status: r.status, json: r.body ? JSON.parse(r.body) : undefined }));

/** Registers a connector through `on` and attests it with a join token; keeps its key and a CSR for renewals. */
const svidFor = (on: Broker, spiffeId: string): Promise<Svid> => fx.at(on).attest(spiffeId, 'platform');

/**
 * Polls `check` every 20 ms until it holds, for at most a second after `since` (when the
 * change was acknowledged); returns how long that took. Fails if it never holds.
 */
async function within(label: string, since: number, check: () => Promise<boolean>): Promise<number> {
  const deadline = since + PROPAGATION_MS;
  for (;;) {
    if (await check()) {
      const took = Date.now() - since;
      observed[label] = Math.max(observed[label] ?? 0, took);
      return took;
    }
    if (Date.now() >= deadline) throw new Error(`${label}: replica B still served the old answer ${Date.now() - since} ms after the change`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

describePg('read caches never serve stale answers across replicas (PostgreSQL, two brokers)', () => {
  beforeAll(async () => {
    fx = await startBrokerFixture({
      prefix: 'writ-caches-',
      trustDomain: TD,
      idpIssuer: IDP,
      policies: POLICIES,
      logger: pino({ level: 'silent' }),
      resources: [{ uri: GITHUB, spiffe_id: `spiffe://${TD}/mcp/github`, tools: TOOLS }],
      connectors: { agent: { spiffeId: `spiffe://${TD}/agent/assistant` }, github: { spiffeId: `spiffe://${TD}/mcp/github` } },
    });
    ({ broker: a, caPem, adminToken } = fx);
    // The second replica: same database, same CA directory; the admin credential exists already.
    b = await fx.startReplica();
    ({ agent, github } = fx.connectors);
  });

  afterAll(async () => {
    if (Object.keys(observed).length > 0) process.stdout.write(`cache propagation to replica B (ms): ${JSON.stringify(observed)}\n`);
    await fx?.close();
  });

  it('both replicas are current (listening), so their caches are in use', async () => {
    for (const broker of [a, b]) expect(await fetch(`${broker.opsUrl}/readyz`).then(async (r) => `${r.status} ${await r.text()}`)).toMatch(/^200/);
  });

  it('policy: a new policy set put through A denies on A at once and on B within a second', async () => {
    const subject = await idToken('dave');
    for (const on of [a, b]) expect((await exchange(on, agent, subject, [['create_issue', 'write']])).status).toBe(200); // both engines warm
    const current = (await admin(a, '/v1/admin/policies', 'GET')).json.policies as string;
    const withoutWrites = current.replace(/@id\("eng-write"\)[\s\S]*?};/, '');
    expect(withoutWrites).not.toContain('eng-write');
    expect((await admin(a, '/v1/admin/policies', 'PUT', { policies: withoutWrites })).status).toBe(200);
    const since = Date.now();
    const onA = await exchange(a, agent, subject, [['create_issue', 'write']]);
    expect(onA).toMatchObject({ status: 400, json: { error: 'access_denied' } });
    await within('policy', since, async () => (await exchange(b, agent, subject, [['create_issue', 'write']])).json.error === 'access_denied');

    // And back, the other way round: put through B, allowed on B at once and on A within a second.
    expect((await admin(b, '/v1/admin/policies', 'PUT', { policies: current })).status).toBe(200);
    const back = Date.now();
    expect((await exchange(b, agent, subject, [['create_issue', 'write']])).status).toBe(200);
    await within('policy (B→A)', back, async () => (await exchange(a, agent, subject, [['create_issue', 'write']])).status === 200);
  });

  it('resource: a tool removed through A is refused on A at once and on B within a second', async () => {
    const subject = await idToken('dave');
    for (const on of [a, b]) expect((await exchange(on, agent, subject, [['wiki_read', 'read']])).status).toBe(200);
    const patched = await admin(a, `/v1/admin/resources/${encodeURIComponent(GITHUB)}`, 'PATCH', { tools: TOOLS.filter((t) => t.name !== 'wiki_read') });
    expect(patched.status).toBe(200);
    const since = Date.now();
    expect(await exchange(a, agent, subject, [['wiki_read', 'read']])).toMatchObject({ status: 400, json: { error: 'invalid_authorization_details' } });
    await within('resource', since, async () => (await exchange(b, agent, subject, [['wiki_read', 'read']])).json.error === 'invalid_authorization_details');
    // The other tools are unaffected on both.
    for (const on of [a, b]) expect((await exchange(on, agent, subject)).status).toBe(200);
  });

  it('resource: a resource registered through A is known on B within a second, though B cached its absence', async () => {
    const uri = 'https://mcp.cache.test/late';
    const subject = await idToken('dave');
    const ask = (on: Broker) =>
      form(on, '/oauth2/token', {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        resource: uri,
        authorization_details: details(['search', 'read']),
      }, agent);
    for (const on of [a, b]) expect((await ask(on)).json.error).toBe('invalid_target');
    expect((await admin(a, '/v1/admin/resources', 'POST', { uri, spiffe_id: `spiffe://${TD}/mcp/late`, tools: [TOOLS[0]] })).status).toBe(201);
    const since = Date.now();
    expect((await ask(a)).status).toBe(200);
    await within('resource (created)', since, async () => (await ask(b)).status === 200);
  });

  it('registration entry: an entry disabled through A stops renewals and exchanges on A at once and on B within a second', async () => {
    const victim = await svidFor(a, `spiffe://${TD}/agent/victim`);
    const subject = await idToken('dave');
    for (const on of [a, b]) {
      expect((await renew(on, victim)).status).toBe(201); // warms the SVID lease and entry caches
      expect((await exchange(on, victim, subject)).status).toBe(200);
    }
    expect((await admin(a, `/v1/admin/entries/${victim.entryId}`, 'PATCH', { enabled: false })).status).toBe(200);
    const since = Date.now();
    expect(await renew(a, victim)).toMatchObject({ status: 403 });
    expect(await exchange(a, victim, subject)).toMatchObject({ status: 401, json: { error: 'invalid_client' } });
    await within('entry (renewal)', since, async () => (await renew(b, victim)).status === 403);
    await within('entry (exchange)', since, async () => (await exchange(b, victim, subject)).json.error === 'invalid_client');
    // Other connectors are unaffected.
    expect((await exchange(b, agent, subject)).status).toBe(200);
  });

  it('subject revocation: a user revoked through A cannot exchange the same ID token on A at once nor on B within a second', async () => {
    const subject = await idToken('alice');
    const onB = await exchange(b, agent, subject);
    expect(onB.status).toBe(200); // B has cached "no marker" for alice
    expect((await exchange(a, agent, subject)).status).toBe(200);
    const earlier = onB.json.access_token as string;
    expect((await introspect(b, earlier)).json.active).toBe(true); // B has cached the lease
    const revoked = await admin(a, '/v1/admin/revocations', 'POST', { user: { issuer: IDP, subject: 'alice' }, reason: 'cache test' });
    expect(revoked.status).toBe(200);
    expect(revoked.json.revoked).toBeGreaterThanOrEqual(2);
    const since = Date.now();
    expect(await exchange(a, agent, subject)).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    await within('subject marker', since, async () => (await exchange(b, agent, subject)).json.error === 'invalid_grant');
    await within('subject (introspection)', since, async () => (await introspect(b, earlier)).json.active === false);
    // Another user is unaffected.
    expect((await exchange(b, agent, await idToken('dave'))).status).toBe(200);
  });

  it('token revocation: a jti revoked through A is inactive on A at once and on B within a second', async () => {
    const issued = await exchange(a, agent, await idToken('erin'));
    expect(issued.status).toBe(200);
    const token = issued.json.access_token as string;
    for (const on of [b, a]) expect((await introspect(on, token)).json.active).toBe(true); // cached on both
    // The resource's own view too (its SVID's lease is cached on B as well).
    expect((await form(b, '/oauth2/introspect', { token }, github)).json.active).toBe(true);
    expect((await admin(a, '/v1/admin/revocations', 'POST', { jti: decodeJwt(token).jti, reason: 'cache test' })).json.revoked).toBe(1);
    const since = Date.now();
    expect((await introspect(a, token)).json).toEqual({ active: false });
    await within('token revocation', since, async () => (await introspect(b, token)).json.active === false);
    expect((await form(b, '/oauth2/introspect', { token }, github)).json).toEqual({ active: false });
  });

  it('token revocation by hand in SQL (not through Writ): inactive on both replicas within a second', async () => {
    const issued = await exchange(a, agent, await idToken('ivan'));
    const token = issued.json.access_token as string;
    for (const on of [a, b]) expect((await introspect(on, token)).json.active).toBe(true); // cached on both now
    await a.db.prisma.$executeRawUnsafe('UPDATE lease SET revoked_at = now(), revocation_reason = $2 WHERE id = $1::uuid', decodeJwt(token).jti, 'by hand');
    const since = Date.now();
    await within('token revocation (SQL→A)', since, async () => (await introspect(a, token)).json.active === false);
    await within('token revocation (SQL→B)', since, async () => (await introspect(b, token)).json.active === false);
  });

  it('token revocation (RFC 7009 through B): inactive on B at once and on A within a second', async () => {
    const issued = await exchange(b, agent, await idToken('erin'));
    const token = issued.json.access_token as string;
    for (const on of [a, b]) expect((await introspect(on, token)).json.active).toBe(true);
    expect((await form(b, '/oauth2/revoke', { token }, agent)).status).toBe(200);
    const since = Date.now();
    expect((await introspect(b, token)).json).toEqual({ active: false });
    await within('token revocation (B→A)', since, async () => (await introspect(a, token)).json.active === false);
  });

  it('a replica that revokes (RFC 7009 or task end) never answers from its own stale cache, however quickly it is asked', async () => {
    for (let i = 0; i < 30; i++) {
      const issued = await exchange(a, agent, await idToken(`hank-${i}`));
      const token = issued.json.access_token as string;
      const { jti, task_id: taskId } = decodeJwt(token) as { jti: string; task_id: string };
      const now = new Date();
      expect(await a.leases.tokenAlive(jti, now)).toBe(true); // cached now
      if (i % 2 === 0) await a.leases.revoke(jti, 'cache test', now);
      else await a.tasks.end(taskId, 'spiffe://cache.test/agent/assistant', 'cache test');
      expect(await a.leases.tokenAlive(jti, now)).toBe(false);
    }
  });

  it('audit: 100 concurrent exchanges across both replicas leave one intact chain, one token.issued event and one lease per token', async () => {
    const head = await a.db.prisma.auditEvent.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
    const subject = await idToken('gina');
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => exchange(i % 2 === 0 ? a : b, agent, subject, i % 3 === 0 ? [['create_issue', 'write']] : [['search', 'read']])));
    const ok = replies.filter((r) => r.status === 200);
    expect(replies.filter((r) => r.status !== 200).map((r) => r.json)).toEqual([]);
    const jtis = ok.map((r) => decodeJwt(r.json.access_token as string).jti!);
    expect(new Set(jtis).size).toBe(ok.length);

    expect(await a.audit.verify()).toBeUndefined();
    expect(await b.audit.verify()).toBeUndefined();
    for (const on of [a, b]) expect((await admin(on, '/v1/admin/audit/verify', 'GET')).json).toMatchObject({ ok: true });

    const issued = await a.db.prisma.auditEvent.findMany({ where: { type: 'token.issued', seq: { gt: head!.seq } }, select: { details: true } });
    expect(issued).toHaveLength(ok.length);
    expect(issued.map((e) => (e.details as { jti: string }).jti).sort()).toEqual([...jtis].sort());
    expect(await a.db.prisma.lease.count({ where: { id: { in: jtis }, kind: 'access-token' } })).toBe(ok.length);
    // In sequence order, each event names the one before it (appends from both replicas were serialized).
    const rows = await a.db.prisma.auditEvent.findMany({ where: { seq: { gt: head!.seq } }, orderBy: { seq: 'asc' }, select: { seq: true, prevHash: true, hash: true } });
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
  });

  it('fails closed: once A\'s database is closed, A does not answer from its caches (a cached live token is inactive); B still answers', async () => {
    const issued = await exchange(a, agent, await idToken('frank'));
    const token = issued.json.access_token as string;
    expect((await introspect(a, token)).json.active).toBe(true);
    expect((await introspect(a, token)).json.active).toBe(true); // served from A's cache now
    await a.db.close();
    expect((await introspect(a, token)).json).toEqual({ active: false });
    expect((await exchange(a, agent, await idToken('frank'))).status).toBe(503);
    expect((await introspect(b, token)).json.active).toBe(true);
  });
});
