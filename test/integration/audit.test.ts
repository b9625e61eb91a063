import type { Server } from 'node:https';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { adminOnly, auditRouter, createApiApp, HttpMetrics } from '../../src/api';
import { EntryStore } from '../../src/attestation';
import { auditHash, AuditReader, verifyAuditChain, type AuditEventInput, type AuditRecord } from '../../src/audit';
import { startBroker, type Broker } from '../../src/broker';
import { ManualClock, systemRandom } from '../../src/core';
import type { Prisma, PrismaClient } from '../../src/db';
import { PrismaLeaseStore } from '../../src/leases';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';

/**
 * The audit routes are served by a small HTTPS app of their own (the real API pipeline:
 * createApiApp, the admin check (adminOnly), problem+json errors) over the broker's database, admin
 * credential and audit log, so this file does not depend on where broker.ts mounts them.
 */
let store: TestStore;
let broker: Broker;
let adminToken: string;
let server: Server;
let base: string;
let tlsCa: string;
/** Whole milliseconds, moved a minute per workload event, so time filters have exact answers. */
const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);

const GITHUB = 'spiffe://audit.test/connector/github';
const JIRA = 'spiffe://audit.test/connector/jira';
/** Two identity providers that both have an "alice": only subject and issuer together name a person. Bob's events name no issuer, as events written before subject_issuer existed. */
const IDP = 'https://idp.example';
const OTHER_IDP = 'https://login.other.example';
/**
 * Varied types (two with a `_` where another has a letter), subjects and actors; each a minute after the last.
 * Some are not types Writ writes today (AUDIT_EVENTS): the reader serves whatever the chain holds,
 * as a chain written by an older version may hold types no longer defined.
 */
const stored = (e: Omit<AuditEventInput, 'type'> & { type: string }) => e as AuditEventInput;
const WORKLOAD: AuditEventInput[] = [
  stored({ type: 'exchange.decision', subject: 'alice', subjectIssuer: IDP, actor: GITHUB, details: { tool: 'search', action: 'read', decision: 'allow', policies: ['eng-read-low'] } }),
  stored({ type: 'exchange.decision', subject: 'bob', actor: GITHUB, details: { tool: 'delete_repo', action: 'delete', decision: 'deny', policies: [] } }),
  stored({ type: 'exchange.decision', subject: 'alice', subjectIssuer: OTHER_IDP, actor: JIRA, details: { tool: 'create_issue', action: 'write', decision: 'allow', policies: ['eng-write'] } }),
  stored({ type: 'entry.created', actor: 'admin', details: { entryId: 'e1', spiffeId: JIRA, nested: { b: 1, a: [1, 'x', null, true] }, note: 'héllo ✓' } }),
  stored({ type: 'revocation.applied', subject: 'alice', subjectIssuer: IDP, actor: 'admin', details: { handle: 'user', revoked: 3, reason: 'offboarding' } }),
  stored({ type: 'signal.received', subject: 'bob', actor: 'ssf:https://idp.example', details: { event: 'session-revoked', sid: 's-42' } }),
  stored({ type: 'scope_a.granted', actor: 'writ' }),
  stored({ type: 'scopeXa.granted', actor: 'writ' }),
  stored({ type: 'entry.updated', actor: JIRA, details: { entryId: 'e1', fields: ['enabled'] } }),
  stored({ type: 'introspection.refused', subject: 'bob', actor: JIRA, details: { reason: 'revoked' } }),
];
const appended: AuditRecord[] = [];

type EventView = { seq: number; at: string; type: string; subject: string | null; subject_issuer: string | null; actor: string | null; details: Record<string, unknown>; prev_hash: string; hash: string };

const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${adminToken}` }) => httpsRequest(`${base}${path}`, { ca: tlsCa, headers });
const getJson = async (path: string) => {
  const res = await get(path);
  return { status: res.status, json: JSON.parse(res.body) };
};
const list = async (query: Record<string, string> = {}): Promise<{ events: EventView[]; next_before?: number }> => {
  const res = await getJson(`/v1/admin/audit?${new URLSearchParams(query)}`);
  expect(res.status).toBe(200);
  return res.json;
};
/** Every event, newest first, in one page (the trail here is far below the 1000 limit). */
const everything = async () => (await list({ limit: '1000' })).events;
const prisma = (): PrismaClient => broker.db.prisma;

/** Runs `change` with the append-only trigger off, as the table owner, in one transaction: nobody else ever sees the trigger off. */
const asTableOwner = (change: (tx: Prisma.TransactionClient) => Promise<unknown>) =>
  prisma().$transaction(async (tx) => {
    await tx.$executeRawUnsafe('ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update_delete');
    await change(tx);
    await tx.$executeRawUnsafe('ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update_delete');
  });
const rowAt = (seq: number) => prisma().auditEvent.findUniqueOrThrow({ where: { seq: BigInt(seq) } });

beforeAll(async () => {
  store = await createTestStore();
  const config = testConfig(store, { WRIT_TRUST_DOMAIN: 'audit.test' });
  broker = await startBroker(config, { clock, showAdminToken: (t) => void (adminToken = t) });
  // The token's first use (audited: its file deleted) before the workload, so the trail below is exactly WORKLOAD.
  expect(broker.admin.verify(adminToken)).toBe(true);
  await broker.admin.settled();

  for (const event of WORKLOAD) {
    clock.advance(60);
    appended.push(await broker.audit.append(event));
  }

  // A certificate for 127.0.0.1 that the test client trusts, for the routes' own HTTPS app.
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'audit-tls.key', '-out', 'audit-tls.crt',
    '-subj', '/CN=audit-test', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: store.dir });
  tlsCa = readFileSync(join(store.dir, 'audit-tls.crt'), 'utf8');
  const auth = { admin: broker.admin, entries: new EntryStore(prisma(), broker.audit.appendIn), leases: new PrismaLeaseStore(prisma()), clock, trustDomain: 'audit.test' };
  const app = createApiApp({
    routers: [adminOnly(auth, auditRouter({ auditReader: new AuditReader(prisma()) }))],
    logger: pino({ level: 'silent' }),
    metrics: new HttpMetrics(),
    random: systemRandom,
  });
  server = createServer({ cert: tlsCa, key: readFileSync(join(store.dir, 'audit-tls.key'), 'utf8') }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await broker?.shutdown();
  await store.drop();
});

describe(`GET /v1/admin/audit lists events newest first, filtered and paged by seq (${process.env.TEST_DATABASE_URL ? 'PostgreSQL' : 'embedded database'})`, () => {
  it('returns every event, the broker\'s own start-up events and the workload, newest first with both hashes', async () => {
    const events = await everything();
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(new Set(seqs).size).toBe(seqs.length);
    const startup = events.filter((e) => e.seq < appended[0]!.seq);
    expect(startup.map((e) => e.type)).toEqual(expect.arrayContaining(['ca.created', 'jwt_key.created', 'bundle.authority_added', 'admin_credential.generated']));
    expect(startup.every((e) => e.actor === 'writ')).toBe(true);
    // The newest events are the workload, exactly as appended.
    expect(events.slice(0, WORKLOAD.length).reverse()).toEqual(
      appended.map((r) => ({ seq: r.seq, at: r.at.toISOString(), type: r.type, subject: r.subject ?? null, subject_issuer: r.subjectIssuer ?? null, actor: r.actor ?? null, details: r.details ?? {}, prev_hash: r.prevHash, hash: r.hash })),
    );
  });

  it('filters by exact type', async () => {
    const { events } = await list({ type: 'exchange.decision' });
    expect(events.map((e) => e.seq)).toEqual([appended[2]!.seq, appended[1]!.seq, appended[0]!.seq]);
    expect((await list({ type: 'exchange' })).events).toEqual([]);
  });

  it('filters by type prefix with a trailing *, taking _ and % literally', async () => {
    expect((await list({ type: 'entry.*' })).events.map((e) => e.type)).toEqual(['entry.updated', 'entry.created']);
    expect((await list({ type: 'scope_*' })).events.map((e) => e.type)).toEqual(['scope_a.granted']);
    expect((await list({ type: 'scope%*' })).events).toEqual([]);
    expect((await list({ type: '*' })).events).toHaveLength((await everything()).length);
  });

  it('filters by subject, by actor, and by both together', async () => {
    const bob = (await list({ subject: 'bob' })).events;
    expect(bob.map((e) => e.type)).toEqual(['introspection.refused', 'signal.received', 'exchange.decision']);
    const jira = (await list({ actor: JIRA })).events;
    expect(jira.map((e) => e.seq)).toEqual([appended[9]!.seq, appended[8]!.seq, appended[2]!.seq]);
    const both = (await list({ subject: 'alice', actor: 'admin' })).events;
    expect(both.map((e) => e.type)).toEqual(['revocation.applied']);
    expect((await list({ subject: 'carol' })).events).toEqual([]);
  });

  it('filters by subject and the identity provider that names it', async () => {
    expect((await list({ subject: 'alice', subject_issuer: IDP })).events.map((e) => e.seq)).toEqual([appended[4]!.seq, appended[0]!.seq]);
    expect((await list({ subject: 'alice', subject_issuer: OTHER_IDP })).events.map((e) => e.seq)).toEqual([appended[2]!.seq]);
    expect((await list({ subject_issuer: OTHER_IDP })).events.every((e) => e.subject === 'alice' && e.subject_issuer === OTHER_IDP)).toBe(true);
    expect((await list({ subject: 'bob' })).events.every((e) => e.subject_issuer === null)).toBe(true);
  });

  it('filters by time: since and until are inclusive ISO 8601 times, with any offset', async () => {
    const at = (i: number) => appended[i]!.at.toISOString();
    expect((await list({ since: at(7) })).events.map((e) => e.seq)).toEqual([appended[9]!.seq, appended[8]!.seq, appended[7]!.seq]);
    expect((await list({ since: at(2), until: at(4) })).events.map((e) => e.seq)).toEqual([appended[4]!.seq, appended[3]!.seq, appended[2]!.seq]);
    // The same instant written with a +02:00 offset.
    const plus2 = new Date(appended[4]!.at.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    expect((await list({ since: plus2, until: plus2 })).events.map((e) => e.seq)).toEqual([appended[4]!.seq]);
    const untilFirst = (await list({ until: new Date(appended[0]!.at.getTime() - 1).toISOString() })).events;
    expect(untilFirst.every((e) => e.seq < appended[0]!.seq)).toBe(true);
    expect(untilFirst.length).toBeGreaterThan(0);
  });

  it('pages with before: every event exactly once, next_before only while older events remain', async () => {
    const all = await everything();
    const seen: number[] = [];
    let query: Record<string, string> = { limit: '3' };
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(all.length); // no endless paging
      const page = await list(query);
      expect(page.events.length).toBeLessThanOrEqual(3);
      seen.push(...page.events.map((e) => e.seq));
      if (page.next_before === undefined) break;
      expect(page.next_before).toBe(page.events.at(-1)!.seq);
      query = { limit: '3', before: String(page.next_before) };
    }
    expect(seen).toEqual(all.map((e) => e.seq));
    // Filters and paging together.
    const first = await list({ actor: GITHUB, limit: '1' });
    expect(first.events.map((e) => e.seq)).toEqual([appended[1]!.seq]);
    const second = await list({ actor: GITHUB, limit: '1', before: String(first.next_before) });
    expect(second).toEqual({ events: [expect.objectContaining({ seq: appended[0]!.seq })] });
  });

  it('defaults to 100 events', async () => {
    clock.advance(60);
    for (let i = 0; i < 100; i++) await broker.audit.append(stored({ type: 'filler.event', actor: 'writ', details: { i } }));
    const page = await list();
    expect(page.events).toHaveLength(100);
    expect(page.next_before).toBe(page.events.at(-1)!.seq);
  });

  it.each([
    [{ limit: '0' }, 'limit'],
    [{ limit: '1001' }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ before: 'abc' }, 'before: must be an event seq'],
    [{ before: '-1' }, 'before: must be an event seq'],
    [{ since: 'yesterday' }, 'since: must be an ISO 8601 date-time'],
    [{ until: '2026-11-27T10:00:00' }, 'until: must be an ISO 8601 date-time'],
    [{ since: '2026-11-28T00:00:00Z', until: '2026-11-27T00:00:00Z' }, 'since must not be after until'],
    [{ type: 'entry.*.created' }, 'type: only a trailing *'],
    [{ type: '' }, 'type'],
    [{ sort: 'asc' }, 'sort'],
  ])('refuses %j with a 400 naming the field', async (query, message) => {
    const res = await getJson(`/v1/admin/audit?${new URLSearchParams(query)}`);
    expect(res.status).toBe(400);
    expect(res.json.type).toBe('urn:writ:problem:invalid-request');
    expect(res.json.detail).toContain(message);
  });
});

describe('GET /v1/admin/audit/export streams JSON Lines in chain order for a SIEM', () => {
  const exportLines = async (query: Record<string, string> = {}) => {
    const res = await get(`/v1/admin/audit/export?${new URLSearchParams(query)}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    expect(res.body === '' || res.body.endsWith('\n')).toBe(true);
    return res.body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as EventView);
  };

  it('has one parseable JSON line per event, oldest first, each carrying what it takes to check the chain', async () => {
    const lines = await exportLines();
    const all = await everything();
    expect(lines).toEqual([...all].reverse());
    // A SIEM can verify what it received on its own: each line names its predecessor's hash and hashes to its own.
    let prev = '0'.repeat(64);
    for (const l of lines) {
      expect(l.prev_hash).toBe(prev);
      expect(auditHash(prev, { ...l, subjectIssuer: l.subject_issuer, at: new Date(l.at) })).toBe(l.hash);
      prev = l.hash;
    }
  });

  it('applies the same filters, and resumes after a seq', async () => {
    expect((await exportLines({ subject: 'alice' })).map((e) => e.seq)).toEqual([appended[0]!.seq, appended[2]!.seq, appended[4]!.seq]);
    expect((await exportLines({ type: 'entry.*', actor: 'admin' })).map((e) => e.type)).toEqual(['entry.created']);
    expect((await exportLines({ since: appended[8]!.at.toISOString(), until: appended[9]!.at.toISOString() })).map((e) => e.seq)).toEqual([appended[8]!.seq, appended[9]!.seq]);
    const resumed = await exportLines({ after: String(appended[5]!.seq), type: 'filler.*' });
    expect(resumed).toHaveLength(100);
    expect(await exportLines({ after: String(appended[0]!.seq), before: String(appended[2]!.seq) })).toEqual([expect.objectContaining({ seq: appended[1]!.seq })]);
    expect(await exportLines({ subject: 'nobody' })).toEqual([]);
  });

  it('reads in batches: small batches give the same events as one', async () => {
    const reader = new AuditReader(prisma());
    const sizes: number[] = [];
    const seqs: number[] = [];
    for await (const batch of reader.batches({}, { batchSize: 7 })) {
      sizes.push(batch.length);
      seqs.push(...batch.map((e) => e.seq));
    }
    expect(sizes.slice(0, -1).every((n) => n === 7)).toBe(true);
    expect(seqs).toEqual((await exportLines()).map((e) => e.seq));
  });

  it('refuses a bad cursor with a 400 before streaming anything', async () => {
    const res = await get('/v1/admin/audit/export?after=x');
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

describe('GET /v1/admin/audit/verify walks the hash chain and reports the first broken row', () => {
  const verify = async () => {
    const res = await getJson('/v1/admin/audit/verify');
    expect(res.status).toBe(200);
    return res.json;
  };

  it('verifies after a mixed workload, counting every event, with the newest hash as head', async () => {
    const all = await everything();
    expect(await verify()).toEqual({ ok: true, events: all.length, head: all[0]!.hash });
  });

  it('gives the same answer in batches smaller than the trail, and agrees with AuditLog.verify()', async () => {
    const whole = await verifyAuditChain(prisma());
    expect(await verifyAuditChain(prisma(), { batchSize: 4 })).toEqual(whole);
    expect(await verifyAuditChain(prisma(), { batchSize: 1 })).toEqual(whole);
    expect(await broker.audit.verify()).toBeUndefined();
  });

  it('the table itself refuses UPDATE and DELETE (the trigger the tamper tests turn off)', async () => {
    await expect(prisma().$executeRaw`UPDATE audit_event SET type = 'x' WHERE seq = ${appended[1]!.seq}`).rejects.toThrow(/append-only/);
    await expect(prisma().$executeRaw`DELETE FROM audit_event WHERE seq = ${appended[1]!.seq}`).rejects.toThrow(/append-only/);
  });

  /** Events checked up to and including `seq`, oldest first. */
  const position = async (seq: number) => (await everything()).filter((e) => e.seq <= seq).length;

  it('detects altered details at that row (hash mismatch), and verifies again once restored', async () => {
    const target = appended[1]!; // bob's denied exchange
    const original = await rowAt(target.seq);
    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET details = ${JSON.stringify({ ...target.details, decision: 'allow' })}::jsonb WHERE seq = ${target.seq}`);
    expect(await verify()).toEqual({ ok: false, broken_at: target.seq, reason: 'hash mismatch', events_checked: await position(target.seq) });
    expect(await broker.audit.verify()).toBe(target.seq);

    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET details = ${JSON.stringify(original.details)}::jsonb WHERE seq = ${target.seq}`);
    expect((await verify()).ok).toBe(true);
  });

  it('detects an altered type at that row', async () => {
    const target = appended[4]!; // the revocation
    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET type = 'revocation.dry_run' WHERE seq = ${target.seq}`);
    expect(await verify()).toMatchObject({ ok: false, broken_at: target.seq, reason: 'hash mismatch' });
    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET type = ${target.type} WHERE seq = ${target.seq}`);
    expect((await verify()).ok).toBe(true);
  });

  it('detects a row rewritten with a recomputed hash at the next row (prev_hash mismatch)', async () => {
    const target = appended[5]!;
    const next = appended[6]!;
    const original = await rowAt(target.seq);
    const forged = { ...original, details: { event: 'credential-change' } };
    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET details = ${JSON.stringify(forged.details)}::jsonb, hash = ${auditHash(original.prevHash, forged)} WHERE seq = ${target.seq}`);
    expect(await verify()).toEqual({ ok: false, broken_at: next.seq, reason: 'prev_hash mismatch', events_checked: await position(next.seq) });

    await asTableOwner((tx) => tx.$executeRaw`UPDATE audit_event SET details = ${JSON.stringify(original.details)}::jsonb, hash = ${original.hash} WHERE seq = ${target.seq}`);
    expect((await verify()).ok).toBe(true);
  });

  it('detects a removed row at its successor (prev_hash mismatch)', async () => {
    const target = appended[3]!;
    const original = await rowAt(target.seq);
    await asTableOwner((tx) => tx.$executeRaw`DELETE FROM audit_event WHERE seq = ${target.seq}`);
    expect(await verify()).toMatchObject({ ok: false, broken_at: appended[4]!.seq, reason: 'prev_hash mismatch' });

    // task_id and jti are computed by PostgreSQL from details: never written.
    const { taskId: _t, jti: _j, ...stored } = original;
    await prisma().auditEvent.create({ data: { ...stored, details: original.details as object } });
    expect((await verify()).ok).toBe(true);
  });
});

describe('the audit routes are for admins only', () => {
  it.each(['/v1/admin/audit', '/v1/admin/audit/verify', '/v1/admin/audit/export'])('%s: 401 without credentials and with a wrong bearer token', async (path) => {
    const anonymous = await get(path, {});
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');
    const wrong = await get(path, { authorization: 'Bearer writ_admin_not-the-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(wrong.body).not.toContain('"events"');
  });
});
