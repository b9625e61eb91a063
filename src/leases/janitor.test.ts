import { randomUUID } from 'node:crypto';
import { ManualClock } from '../core/clock';
import type { Database } from '../db';
import { createTestStore, type TestStore } from '../../test/support/database';
import { openTestDatabase } from '../../test/support/sessions';
import { LeaseJanitor } from './janitor';

const HOUR = 3_600_000;
let store: TestStore;
let db: Database;
const clock = new ManualClock(new Date('2026-06-01T12:00:00Z'));

beforeAll(async () => {
  store = await createTestStore();
  db = await openTestDatabase(store, clock);
});
afterAll(async () => {
  await db?.close();
  await store?.drop();
});

/** A lease that expired `agoMs` before the clock's now (negative: still live). */
async function lease(agoMs: number, extra: { kind?: string; revoked?: boolean; serial?: string } = {}): Promise<string> {
  const id = randomUUID();
  const expiresAt = new Date(clock.now().getTime() - agoMs);
  await db.prisma.lease.create({
    data: {
      id,
      kind: extra.kind ?? 'access-token',
      spiffeId: 'spiffe://janitor.test/agent',
      audience: [],
      issuedAt: new Date(expiresAt.getTime() - 300_000),
      expiresAt,
      ...(extra.revoked && { revokedAt: new Date(expiresAt.getTime() - 60_000), revocationReason: 'test' }),
      ...(extra.serial && { serial: extra.serial }),
    },
  });
  return id;
}

describe('lease clean-up: expired leases past the retention go, the permanent record stays', () => {
  it('deletes leases expired longer ago than the retention, keeps recent and live ones and revoked X.509-SVIDs', async () => {
    const old = await lease(3 * HOUR);
    const oldRevokedToken = await lease(3 * HOUR, { revoked: true });
    const recent = await lease(HOUR / 2);
    const live = await lease(-HOUR);
    const revokedSvid = await lease(3 * HOUR, { kind: 'x509-svid', revoked: true, serial: randomUUID().replace(/-/g, '') });
    const oldSvid = await lease(3 * HOUR, { kind: 'x509-svid', serial: randomUUID().replace(/-/g, '') });

    const janitor = new LeaseJanitor(db.prisma, { clock, retention: 3600 });
    expect(await janitor.sweep()).toBe(3);
    const left = (await db.prisma.lease.findMany({ select: { id: true } })).map((l) => l.id);
    expect(left.sort()).toEqual([recent, live, revokedSvid].sort());
    expect(left).not.toContain(old);
    expect(left).not.toContain(oldRevokedToken);
    expect(left).not.toContain(oldSvid);
    // Nothing more to do: a second sweep deletes nothing.
    expect(await janitor.sweep()).toBe(0);
  });

  it('forgets SET ids and revocation markers older than the retention, and keeps newer ones', async () => {
    const now = clock.now().getTime();
    await db.prisma.signalEvent.createMany({ data: [{ issuer: 'https://tx.test', jti: 'old', receivedAt: new Date(now - 2 * HOUR) }, { issuer: 'https://tx.test', jti: 'new', receivedAt: new Date(now - 60_000) }] });
    await db.prisma.revocation.createMany({ data: [{ at: new Date(now - 2 * HOUR), kind: 'jti', jti: randomUUID(), reason: 'old' }, { at: new Date(now - 60_000), kind: 'jti', jti: randomUUID(), reason: 'new' }] });
    await new LeaseJanitor(db.prisma, { clock, retention: 3600 }).sweep();
    expect((await db.prisma.signalEvent.findMany({ select: { jti: true } })).map((e) => e.jti)).toEqual(['new']);
    expect((await db.prisma.revocation.findMany({ select: { reason: true } })).map((r) => r.reason)).toEqual(['new']);
  });

  it('measures the retention by the injected clock: once it moves on, the lease kept before goes too', async () => {
    const kept = await lease(HOUR / 2);
    const janitor = new LeaseJanitor(db.prisma, { clock, retention: 3600 });
    await janitor.sweep();
    expect(await db.prisma.lease.count({ where: { id: kept } })).toBe(1);
    clock.advance(3600);
    await janitor.sweep();
    expect(await db.prisma.lease.count({ where: { id: kept } })).toBe(0);
  });

  it('drops the history and approvals of tasks over and gone past the retention, and keeps those of live tasks', async () => {
    const now = clock.now().getTime();
    const task = async (endedAgo: number | undefined, withLease: boolean): Promise<string> => {
      const id = randomUUID();
      await db.prisma.task.create({ data: { id, subject: 'alice', subjectIssuer: 'https://idp.test', connector: 'spiffe://janitor.test/agent', subjectGroups: [], ...(endedAgo !== undefined && { endedAt: new Date(now - endedAgo) }) } });
      if (withLease) await db.prisma.lease.create({ data: { id: randomUUID(), kind: 'access-token', spiffeId: 'spiffe://janitor.test/agent', audience: [], taskId: id, issuedAt: new Date(now - 60_000), expiresAt: new Date(now + HOUR) } });
      const at = new Date(now - 2 * HOUR);
      await db.prisma.taskEvent.create({ data: { id: randomUUID(), taskId: id, server: 'https://a.test', reporter: 'spiffe://janitor.test/mcp', callId: 'c', tool: 't', actions: ['read'], classification: 'internal', outcome: 'ok', occurredAt: at } });
      await db.prisma.approval.create({ data: { id: randomUUID(), taskId: id, subject: 'alice', subjectIssuer: 'https://idp.test', connector: 'spiffe://janitor.test/agent', server: 'https://a.test', tool: 't', action: 'delete', classification: 'internal', policies: [], approvers: [], status: 'denied', requestedAt: at, expiresAt: at } });
      return id;
    };
    const ended = await task(2 * HOUR, true);
    const live = await task(undefined, true);
    const abandoned = await task(undefined, false);
    await new LeaseJanitor(db.prisma, { clock, retention: 3600 }).sweep();
    const left = (rows: { taskId: string }[]) => rows.map((r) => r.taskId).filter((id) => [ended, live, abandoned].includes(id));
    expect(left(await db.prisma.taskEvent.findMany({ select: { taskId: true } }))).toEqual([live]);
    expect(left(await db.prisma.approval.findMany({ select: { taskId: true } }))).toEqual([live]);
  });
});
