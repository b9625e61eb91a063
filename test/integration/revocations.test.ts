import { randomUUID, X509Certificate } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { Client } from 'pg';
import pino from 'pino';
import type { Config } from '../../src/config';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';

const work = mkdtempSync(join(tmpdir(), 'writ-revoke-'));
let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;
let config: Config;

const call = (path: string, method = 'GET', body?: unknown, as?: { cert: string; key: string }) =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: caPem,
    method,
    headers: { ...(as ? {} : { authorization: `Bearer ${adminToken}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    ...(as && { cert: as.cert, key: as.key }),
  }).then((r) => ({ ...r, json: r.body ? JSON.parse(r.body) : undefined }));

const IDP = 'https://idp.test';
/** An access-token lease as the exchange writes it. */
async function token(fields: { subject: string; sid?: string; connector: string; task?: string; audience?: string; parent?: string }) {
  const id = randomUUID();
  await broker.db.prisma.lease.create({
    data: {
      id, kind: 'access-token', spiffeId: fields.connector, subject: fields.subject, subjectIssuer: IDP, sid: fields.sid ?? null,
      taskId: fields.task ?? randomUUID(), audience: [fields.audience ?? 'https://mcp.test/a'], parentId: fields.parent ?? null,
      issuedAt: new Date(), expiresAt: new Date(Date.now() + 300_000),
    },
  });
  return id;
}
const live = async (ids: string[]) => broker.db.prisma.lease.count({ where: { id: { in: ids }, revokedAt: null } });

beforeAll(async () => {
  store = await createTestStore();
  config = testConfig(store, { WRIT_TRUST_DOMAIN: 'rv.test' });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

describe('revocation by any handle (admin)', () => {
  it('shows the blast radius on a dry run and revokes nothing', async () => {
    const a = await token({ subject: 'dry', connector: 'spiffe://rv.test/agent/dry' });
    const b = await token({ subject: 'dry', connector: 'spiffe://rv.test/agent/dry', audience: 'https://mcp.test/b' });
    const res = await call('/v1/admin/revocations', 'POST', { user: { issuer: IDP, subject: 'dry' }, reason: 'investigating', dry_run: true });
    expect(res.json).toMatchObject({ dry_run: true, leases: 2, byConnector: { 'spiffe://rv.test/agent/dry': 2 }, byAudience: { 'https://mcp.test/a': 1, 'https://mcp.test/b': 1 } });
    expect(res.json.sample.map((l: { jti: string }) => l.jti).sort()).toEqual([a, b].sort());
    expect(await live([a, b])).toBe(2);
  });

  it.each([
    ['jti', (ids: Record<string, string>) => ({ jti: ids.one })],
    ['task_id', (ids: Record<string, string>) => ({ task_id: ids.task })],
    ['user', () => ({ user: { issuer: IDP, subject: 'bob' } })],
    ['session', () => ({ session: { issuer: IDP, sid: 's-bob' } })],
    ['connector prefix', () => ({ connector: 'spiffe://rv.test/agent/bob/' })],
    ['audience', () => ({ audience: 'https://mcp.test/bob' })],
    ['user and connector', () => ({ user: { issuer: IDP, subject: 'bob' }, connector: 'spiffe://rv.test/agent/bob/x' })],
  ])('revokes by %s, chained tokens included, durably before it answers', async (_, selectorOf) => {
    const task = randomUUID();
    const one = await token({ subject: 'bob', sid: 's-bob', connector: 'spiffe://rv.test/agent/bob/x', task, audience: 'https://mcp.test/bob' });
    const child = await token({ subject: 'bob', sid: 's-bob', connector: 'spiffe://rv.test/mcp/downstream', task, audience: 'https://mcp.test/down', parent: one });
    const bystander = await token({ subject: 'carol', connector: 'spiffe://rv.test/agent/carol' });
    const res = await call('/v1/admin/revocations', 'POST', { ...selectorOf({ one, task }), reason: 'incident 42' });
    expect(res.status).toBe(200);
    expect(res.json.revoked).toBeGreaterThanOrEqual(2);
    expect(await live([one, child])).toBe(0);
    expect(await live([bystander])).toBe(1);
    const row = await broker.db.prisma.lease.findUnique({ where: { id: one } });
    expect(row!.revocationReason).toBe('incident 42');
  });

  it('refuses a request with no selector, two selectors, or no reason, and changes nothing', async () => {
    for (const body of [{ reason: 'x' }, { jti: randomUUID(), task_id: randomUUID(), reason: 'x' }, { jti: randomUUID() }]) {
      const res = await call('/v1/admin/revocations', 'POST', body);
      expect(res.status).toBe(400);
    }
    const anonymous = await httpsRequest(`${broker.apiUrl}/v1/admin/revocations`, { ca: caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jti: randomUUID(), reason: 'x' }) });
    expect(anonymous.status).toBe(401);
  });

  it('refuses a partial lease filter and a kill switch for a prefix or an unknown connector', async () => {
    expect((await call('/v1/admin/leases?subject=bob')).status).toBe(400);
    expect((await call(`/v1/admin/leases?jti=${randomUUID()}&connector=spiffe://rv.test/x`)).status).toBe(400);
    expect((await call(`/v1/admin/connectors/${encodeURIComponent('spiffe://rv.test/agent/')}/disable`, 'POST', {})).status).toBe(400);
    expect((await call(`/v1/admin/connectors/${encodeURIComponent('spiffe://rv.test/nobody')}/disable`, 'POST', {})).status).toBe(404);
  });

  it('lists leases by filter and status, newest first, by cursor', async () => {
    for (let i = 0; i < 3; i++) await token({ subject: 'dave', connector: 'spiffe://rv.test/agent/dave' });
    const first = await call('/v1/admin/leases?connector=spiffe://rv.test/agent/dave&status=active&limit=2');
    expect(first.json.leases).toHaveLength(2);
    const rest = await call(`/v1/admin/leases?connector=spiffe://rv.test/agent/dave&status=active&limit=2&before=${first.json.next_before}`);
    expect(rest.json.leases).toHaveLength(1);
    expect(new Set([...first.json.leases, ...rest.json.leases].map((l: { jti: string }) => l.jti)).size).toBe(3);
    expect((await call('/v1/admin/leases?subject=bob&issuer=https://idp.test&status=revoked')).json.leases.length).toBeGreaterThan(0);
  });
});

describe('kill switch', () => {
  it('disables the connector: its SVID is refused at once, its tokens are revoked, it cannot attest again', async () => {
    const entry = await call('/v1/admin/entries', 'POST', { spiffe_id: 'spiffe://rv.test/agent/rogue' });
    const join1 = await call('/v1/admin/join-tokens', 'POST', { entry_id: entry.json.id });
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'r.key', '-out', 'r.csr', '-subj', '/CN=x'], { cwd: work });
    const csr = readFileSync(join(work, 'r.csr'), 'utf8');
    const svid = { cert: (await call('/v1/attest', 'POST', { attestor: 'join_token', evidence: { token: join1.json.token }, csr })).json.svid as string, key: readFileSync(join(work, 'r.key'), 'utf8') };
    const tok = await token({ subject: 'erin', connector: 'spiffe://rv.test/agent/rogue' });
    expect((await call('/v1/jwt-svid', 'POST', { audience: ['x'] }, svid)).status).toBe(201);
    const join2 = await call('/v1/admin/join-tokens', 'POST', { entry_id: entry.json.id });

    const res = await call(`/v1/admin/connectors/${encodeURIComponent('spiffe://rv.test/agent/rogue')}/disable`, 'POST', { reason: 'compromised' });
    expect(res.json).toMatchObject({ entries_disabled: 1 });
    expect(res.json.leases_revoked).toBeGreaterThanOrEqual(2);
    expect((await call('/v1/jwt-svid', 'POST', { audience: ['x'] }, svid)).status).toBe(401);
    expect((await call('/v1/svid/renew', 'POST', { csr }, svid)).status).toBe(401);
    expect(await live([tok])).toBe(0);
    const again = await call('/v1/attest', 'POST', { attestor: 'join_token', evidence: { token: join2.json.token }, csr });
    expect(again.json.type).toBe('urn:writ:problem:entry-disabled');

    // Peers that validate SVIDs offline learn of the denial from the signed denylist.
    const jws = await httpsRequest(`${broker.apiUrl}/v1/svid-denylist`, { ca: caPem });
    expect(jws.headers['content-type']).toMatch(/^application\/jwt/);
    const keys = JSON.parse((await httpsRequest(`${broker.apiUrl}/oauth2/jwks`, { ca: caPem })).body);
    const { payload, protectedHeader } = await jwtVerify(jws.body, createLocalJWKSet(keys));
    expect(protectedHeader.typ).toBe('svid-denylist+jwt');
    const serial = new X509Certificate(svid.cert).serialNumber.toLowerCase();
    expect((payload.denied as { serial: string }[]).map((d) => d.serial)).toContain(serial);
    expect(payload.sequence).toBeGreaterThanOrEqual(1);
  });
});

describe('audit through the broker', () => {
  it('serves the trail and verifies its chain after a mixed workload of revocations', async () => {
    const list = await call('/v1/admin/audit?type=revocation&limit=5');
    expect(list.status).toBe(200);
    expect(list.json.events.length).toBeGreaterThan(0);
    expect(list.json.events[0]).toMatchObject({ type: 'revocation', actor: 'admin' });
    const verify = await call('/v1/admin/audit/verify');
    expect(verify.json).toMatchObject({ ok: true });
    expect(verify.json.events).toBeGreaterThan(10);
  });
});

describe('every replica at once', () => {
  (usingPostgres() ? it : it.skip)('a revocation through one replica is enforced by another at once, also after its database connections were killed', async () => {
    const replica = await startBroker(config, { logger: pino({ level: 'silent' }) });
    try {
      // Every check (introspection, mTLS routes, chaining) reads the lease table itself, so what one replica commits the other enforces on its next read.
      const id = await token({ subject: 'frank', connector: 'spiffe://rv.test/agent/frank' });
      expect(await live([id])).toBe(1);
      await call('/v1/admin/revocations', 'POST', { jti: id, reason: 'replica test' });
      const rows = await replica.db.prisma.lease.findUnique({ where: { id } });
      expect(rows!.revokedAt).not.toBeNull(); // the other replica sees the committed revocation on its very next read

      const killer = new Client({ connectionString: store.databaseUrl });
      await killer.connect();
      await killer.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      await killer.end();
      // Fail closed while reconnecting, then answer again without a restart.
      let ready = false;
      for (let i = 0; i < 100 && !ready; i++) {
        ready = (await fetch(`${replica.opsUrl}/readyz`)).status === 200;
        if (!ready) await new Promise((r) => setTimeout(r, 50));
      }
      expect(ready).toBe(true);
      expect(await replica.db.prisma.lease.count({ where: { id, revokedAt: null } })).toBe(0);
    } finally {
      await replica.shutdown();
    }
  });
});

describe('expiry clean-up', () => {
  it('deletes leases expired past the retention, in batches, and keeps the rest', async () => {
    const { LeaseJanitor } = await import('../../src/leases');
    const old = randomUUID();
    await broker.db.prisma.lease.create({ data: { id: old, kind: 'access-token', spiffeId: 'spiffe://rv.test/agent/old', audience: [], issuedAt: new Date(Date.now() - 10 * 86400_000), expiresAt: new Date(Date.now() - 9 * 86400_000) } });
    const recent = await token({ subject: 'gina', connector: 'spiffe://rv.test/agent/gina' });
    const janitor = new LeaseJanitor(broker.db.prisma, { clock: { now: () => new Date() }, retention: 7 * 86400 });
    expect(await janitor.sweep()).toBeGreaterThanOrEqual(1);
    expect(await broker.db.prisma.lease.count({ where: { id: old } })).toBe(0);
    expect(await broker.db.prisma.lease.count({ where: { id: recent } })).toBe(1);
  });
});
