/**
 * writ_record_leases (the group commit's one statement) checks each lease it records against the
 * leases it requires (the client's SVID, the parent token) by primary key, whatever the table's
 * statistics: on a table of thousands of leases never analyzed, recording a lease reads none of
 * the others (no sequential scan of "lease"), and what it refuses is unchanged.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/db';
import { createTestStore, type TestStore } from '../support/database';
import { openTestDatabase } from '../support/sessions';

let store: TestStore;
let db: Database;

beforeAll(async () => {
  store = await createTestStore();
  db = await openTestDatabase(store);
  // Thousands of leases, and no ANALYZE: what a fresh deployment's table looks like before autovacuum gets to it.
  await db.prisma.$executeRawUnsafe(`INSERT INTO lease (id, kind, spiffe_id, issued_at, expires_at) SELECT gen_random_uuid(), 'x509-svid', 'spiffe://plan.test/agent/' || g, now(), now() + interval '1 hour' FROM generate_series(1, 5000) g`);
}, 60_000);
afterAll(async () => {
  await db?.close();
  await store?.drop();
});

/** Records one access-token lease requiring `requires`, in a transaction that also reads its own table statistics. */
async function record(requires: string): Promise<{ refused: (string | null)[]; seqScans: number }> {
  const lease = { id: randomUUID(), kind: 'access-token', spiffe_id: 'spiffe://plan.test/agent/1', audience: ['https://mcp.plan.test'], issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 300_000).toISOString(), requires: [requires] };
  return db.prisma.$transaction(async (tx) => {
    // The counts not yet flushed to the shared statistics (the embedded database's include its session's): before and after.
    const seqScans = async () => Number((await tx.$queryRawUnsafe<{ n: number }[]>("SELECT seq_scan::int AS n FROM pg_stat_xact_user_tables WHERE relname = 'lease'"))[0]?.n ?? 0);
    const before = await seqScans();
    const rows = await tx.$queryRawUnsafe<{ refused_reason: string | null }[]>('SELECT refused_reason FROM writ_record_leases($1::jsonb, $2::jsonb, $3::jsonb)', '[]', JSON.stringify([lease]), '[]');
    return { refused: rows.map((r) => r.refused_reason), seqScans: (await seqScans()) - before };
  });
}

it('checks a required lease by its primary key: no sequential scan of the lease table', async () => {
  const [live] = await db.prisma.$queryRawUnsafe<{ id: string }[]>('SELECT id::text FROM lease LIMIT 1');
  // Several times: PL/pgSQL switches to a generic plan after five executions.
  for (let i = 0; i < 8; i++) expect(await record(live!.id)).toEqual({ refused: [], seqScans: 0 });
});

it('still refuses a lease whose required lease is revoked or unknown', async () => {
  const [revoked] = await db.prisma.$queryRawUnsafe<{ id: string }[]>('UPDATE lease SET revoked_at = now(), revocation_reason = $1 WHERE id = (SELECT id FROM lease WHERE revoked_at IS NULL LIMIT 1) RETURNING id::text', 'test');
  expect((await record(revoked!.id)).refused).toEqual([`requires:${revoked!.id}`]);
  const unknown = randomUUID();
  expect((await record(unknown)).refused).toEqual([`requires:${unknown}`]);
});
