import type { PrismaClient } from '../db/generated/client';
import { ReadCache, type Freshness } from '../db/read-cache';

/**
 * The latest risk level a signal reported for a user (CAEP risk-level-change, written by
 * SignalApplier), which policy sees as `User.risk`. Cached while the change feed is fresh;
 * the applier's `freshness.touch()` drops this replica's copies when it records a level.
 */
export class UserRisks {
  readonly #cache: ReadCache<string | undefined>;

  constructor(
    private readonly prisma: PrismaClient,
    freshness: Freshness,
  ) {
    this.#cache = new ReadCache(freshness);
  }

  /** The level recorded for (issuer, subject), or undefined when no signal named one. */
  level(issuer: string, subject: string): Promise<string | undefined> {
    return this.#cache.get(JSON.stringify([issuer, subject]), async () => (await this.prisma.userRisk.findUnique({ where: { issuer_subject: { issuer, subject } } }))?.level);
  }
}
