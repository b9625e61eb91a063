import type { Clock } from '../core/clock';
import type { PrismaClient } from '../db/generated/client';

/** Serializes clean-up across replicas: one at a time, the others skip. */
const JANITOR_LOCK_KEY = 0x6a616e69; // "jani"
const BATCH = 1000;

/**
 * Deletes leases (and remembered SET ids, task history, approvals, the vault's releases and revoked grants, and sent webhooks) that expired more than `retention` seconds
 * ago, in batches of short transactions so no long lock is held, on one replica at a
 * time (pg_try_advisory_xact_lock). The audit trail, not the lease table, is the
 * permanent record; revoked X.509-SVID leases are kept so the denylist sequence only grows.
 */
export class LeaseJanitor {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly opts: { clock: Clock; retention: number },
  ) {}

  /** Runs one clean-up; returns how many leases it deleted, or undefined when another replica holds the lock. */
  async sweep(): Promise<number | undefined> {
    const cutoff = new Date(this.opts.clock.now().getTime() - this.opts.retention * 1000);
    let total = 0;
    for (;;) {
      const deleted = await this.prisma.$transaction(async (tx) => {
        const [lock] = await tx.$queryRawUnsafe<{ locked: boolean }[]>(`SELECT pg_try_advisory_xact_lock(${JANITOR_LOCK_KEY}) AS locked`);
        if (!lock?.locked) return undefined;
        // Revoked X.509-SVIDs stay: they are few, and the denylist's sequence counts them.
        return tx.$executeRaw`DELETE FROM lease WHERE id IN (SELECT id FROM lease WHERE expires_at < ${cutoff} AND NOT (kind = 'x509-svid' AND revoked_at IS NOT NULL) LIMIT ${BATCH})`;
      });
      if (deleted === undefined) return total === 0 ? undefined : total;
      total += deleted;
      if (deleted < BATCH) break;
    }
    await this.prisma.signalEvent.deleteMany({ where: { receivedAt: { lt: cutoff } } });
    // A revocation marker only matters to requests that began before it: long gone by the retention.
    await this.prisma.revocation.deleteMany({ where: { at: { lt: cutoff } } });
    // A task's history and approvals go once the task ended, or its last token's lease went, longer than the retention ago.
    await this.prisma.$executeRaw`DELETE FROM task_event e USING task t WHERE e.task_id = t.id AND e.occurred_at < ${cutoff} AND (t.ended_at < ${cutoff} OR NOT EXISTS (SELECT 1 FROM lease l WHERE l.task_id = t.id::text))`;
    await this.prisma.$executeRaw`DELETE FROM approval a USING task t WHERE a.task_id = t.id AND a.requested_at < ${cutoff} AND (t.ended_at < ${cutoff} OR NOT EXISTS (SELECT 1 FROM lease l WHERE l.task_id = t.id::text))`;
    // The token vault: releases expired, grants revoked, before the retention; links past their expiry (each is used once, soon).
    await this.prisma.grantRelease.deleteMany({ where: { expiresAt: { lt: cutoff } } });
    await this.prisma.downstreamGrant.deleteMany({ where: { revokedAt: { lt: cutoff } } });
    await this.prisma.grantLink.deleteMany({ where: { expiresAt: { lt: this.opts.clock.now() } } });
    // Webhooks delivered, or given up on, before the retention.
    await this.prisma.webhookDelivery.deleteMany({ where: { createdAt: { lt: cutoff }, OR: [{ deliveredAt: { not: null } }, { attempts: { gte: 12 } }] } });
    return total;
  }
}
