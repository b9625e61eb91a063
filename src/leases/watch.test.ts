import type { Prisma } from '../db/generated/client';
import { announceRevoked, noRevocationWatch, REVOCATION_CHANNEL } from './watch';

/** A transaction that records the SQL template's values of each $executeRaw (pg_notify's channel and payload). */
function recordingTx(): { tx: Prisma.TransactionClient; notified: unknown[][] } {
  const notified: unknown[][] = [];
  const tx = { $executeRaw: (_sql: TemplateStringsArray, ...values: unknown[]) => (notified.push(values), Promise.resolve(1)) };
  return { tx: tx as unknown as Prisma.TransactionClient, notified };
}

describe('announcing a revocation to every replica (pg_notify inside the revoking transaction)', () => {
  it('announces the jtis and serials it revoked on the revocation channel, as JSON', async () => {
    const { tx, notified } = recordingTx();
    const revoked = { jtis: ['0b7c1e52-0000-4000-8000-000000000001'], serials: ['ab12'], until: 1_800_000_000_000 };
    await announceRevoked(tx, revoked);
    expect(notified).toHaveLength(1);
    expect(notified[0]![0]).toBe(REVOCATION_CHANNEL);
    expect(JSON.parse(notified[0]![1] as string)).toEqual(revoked);
  });

  it('announces nothing when nothing was revoked', async () => {
    const { tx, notified } = recordingTx();
    await announceRevoked(tx, { jtis: [], serials: [] });
    expect(notified).toEqual([]);
  });

  it('asks listeners to reload instead when the payload would pass PostgreSQL\'s 8000-byte NOTIFY limit', async () => {
    const { tx, notified } = recordingTx();
    const jtis = Array.from({ length: 400 }, (_, i) => `0b7c1e52-0000-4000-8000-${String(i).padStart(12, '0')}`);
    await announceRevoked(tx, { jtis, serials: [] });
    expect(notified).toHaveLength(1);
    expect(JSON.parse(notified[0]![1] as string)).toEqual({ reload: true });
    expect((notified[0]![1] as string).length).toBeLessThan(8000);
  });
});

describe('no revocation view (the embedded database, one process)', () => {
  it('is never current, so callers read the database instead of trusting caches', () => {
    expect(noRevocationWatch.current).toBe(false);
    expect(noRevocationWatch.connected).toBe(false);
    expect(noRevocationWatch.isRevoked({ jti: 'x' })).toBe(false);
  });
});
