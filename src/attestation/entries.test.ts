import type { PrismaClient } from '../db/generated/client';
import { EntryStore, entrySchema } from './entries';

const schema = entrySchema({ trustDomain: 'writ.local', x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 });
const issueOf = (spiffeId: string) => schema.safeParse({ spiffe_id: spiffeId }).error?.issues[0];

describe('entrySchema: the broker\'s own namespace (/writ) is reserved', () => {
  it.each(['spiffe://writ.local/writ', 'spiffe://writ.local/writ/server', 'spiffe://writ.local/writ/a/b'])('refuses %s, on spiffe_id', (id) => {
    expect(issueOf(id)).toMatchObject({ path: ['spiffe_id'], message: 'SPIFFE IDs under /writ are reserved for the broker\'s own identity' });
  });

  it.each(['spiffe://writ.local/writer', 'spiffe://writ.local/writ.old/server', 'spiffe://writ.local/team/writ/server', 'spiffe://writ.local/Writ/server'])('accepts %s', (id) => {
    expect(schema.safeParse({ spiffe_id: id }).success).toBe(true);
  });

  it('refuses it in an update too (the partial schema)', () => {
    expect(schema.partial().safeParse({ spiffe_id: 'spiffe://writ.local/writ/server' }).error?.issues[0]?.path).toEqual(['spiffe_id']);
  });
});

describe('EntryStore.forJoinToken: the one enabled entry a join token is for', () => {
  const row = (id: string, spiffeId: string, enabled = true) => ({
    id, spiffeId, selectors: [], x509SvidTtl: 600, jwtSvidTtl: 300, dnsNames: [], admin: false, enabled, metadata: {}, createdAt: new Date(0), updatedAt: new Date(0),
  });
  const A = '0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';
  const B = '1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9';
  const rows = [row(A, 'spiffe://writ.local/one'), row(B, 'spiffe://writ.local/two'), row('2b3c4d5e-6f70-4182-93a4-b5c6d7e8f90a', 'spiffe://writ.local/two'), row('3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b', 'spiffe://writ.local/off', false)];
  const prisma = {
    registrationEntry: {
      findUnique: async ({ where }: { where: { id: string } }) => rows.find((r) => r.id === where.id) ?? null,
      findMany: async ({ where }: { where: { spiffeId: string } }) => rows.filter((r) => r.spiffeId === where.spiffeId),
    },
  } as unknown as PrismaClient;
  const store = new EntryStore(prisma, async () => {
    throw new Error('a read records no audit event');
  });

  it('finds it by id, or by a SPIFFE ID exactly one entry has', async () => {
    await expect(store.forJoinToken({ entryId: A })).resolves.toMatchObject({ id: A });
    await expect(store.forJoinToken({ spiffeId: 'spiffe://writ.local/one' })).resolves.toMatchObject({ id: A });
  });

  it('refuses a SPIFFE ID no entry has (404), one several have (400: give entry_id), and a disabled entry (400)', async () => {
    await expect(store.forJoinToken({ spiffeId: 'spiffe://writ.local/none' })).rejects.toMatchObject({ status: 404, message: 'no registration entry for spiffe://writ.local/none' });
    await expect(store.forJoinToken({ spiffeId: 'spiffe://writ.local/two' })).rejects.toMatchObject({ status: 400, message: '2 entries name spiffe://writ.local/two; give entry_id' });
    await expect(store.forJoinToken({ spiffeId: 'spiffe://writ.local/off' })).rejects.toMatchObject({ status: 400, message: 'the entry for spiffe://writ.local/off is disabled' });
  });
});
