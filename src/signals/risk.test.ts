import type { PrismaClient } from '../db/generated/client';
import type { Freshness } from '../db/read-cache';
import { UserRisks } from './risk';

/** The user_risk table as Prisma shows it, counting reads. */
function table(rows: Record<string, string>) {
  const reads: string[] = [];
  const prisma = {
    userRisk: {
      findUnique: async ({ where }: { where: { issuer_subject: { issuer: string; subject: string } } }) => {
        const { issuer, subject } = where.issuer_subject;
        reads.push(`${issuer} ${subject}`);
        const level = rows[`${issuer} ${subject}`];
        return level === undefined ? null : { issuer, subject, level, updatedAt: new Date(0) };
      },
    },
  } as unknown as PrismaClient;
  return { prisma, reads, rows };
}

describe('UserRisks: the level a CAEP risk-level-change recorded, as policy sees it (User.risk)', () => {
  it('reads the recorded level, and undefined for a user no signal named', async () => {
    const { prisma } = table({ 'https://idp alice': 'high' });
    const risks = new UserRisks(prisma, { current: false, generation: 0, touch: () => undefined });
    expect(await risks.level('https://idp', 'alice')).toBe('high');
    expect(await risks.level('https://idp', 'bob')).toBeUndefined();
  });

  it('asks the database at every read while the change feed is not current', async () => {
    const { prisma, reads } = table({ 'https://idp alice': 'low' });
    const risks = new UserRisks(prisma, { current: false, generation: 0, touch: () => undefined });
    await risks.level('https://idp', 'alice');
    await risks.level('https://idp', 'alice');
    expect(reads).toHaveLength(2);
  });

  it('caches within one generation of a current feed, and reads again once a change starts a new one', async () => {
    const { prisma, reads, rows } = table({ 'https://idp alice': 'low' });
    const feed = { current: true, generation: 1, touch: () => void (feed.generation += 1) } satisfies Freshness;
    const risks = new UserRisks(prisma, feed);
    expect(await risks.level('https://idp', 'alice')).toBe('low');
    expect(await risks.level('https://idp', 'alice')).toBe('low');
    expect(reads).toHaveLength(1);
    rows['https://idp alice'] = 'high';
    feed.touch(); // SignalApplier after recording a level
    expect(await risks.level('https://idp', 'alice')).toBe('high');
    expect(reads).toHaveLength(2);
  });

  it('keeps issuers apart: the same subject at another issuer is another user', async () => {
    const { prisma } = table({ 'https://a alice': 'high' });
    const risks = new UserRisks(prisma, { current: true, generation: 1, touch: () => undefined });
    expect(await risks.level('https://a', 'alice')).toBe('high');
    expect(await risks.level('https://b', 'alice')).toBeUndefined();
  });
});
