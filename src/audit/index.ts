import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock';
import { canonicalJson } from '../core/canonical-json';
import type { Prisma, PrismaClient } from '../db/generated/client';

/** An event for the audit trail: what happened, for whom, and who did it. */
export interface AuditEventInput {
  readonly type: string;
  /** The person on whose behalf the action ran, if any. */
  readonly subject?: string;
  /** The connector's SPIFFE ID, "admin", or "writ" for the broker itself. */
  readonly actor?: string;
  readonly details?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEventInput {
  readonly seq: number;
  readonly at: Date;
  readonly prevHash: string;
  readonly hash: string;
}

/** The hash of the first event's predecessor. */
export const GENESIS_HASH = '0'.repeat(64);
const AUDIT_LOCK_KEY = 0x61756474; // "audt"

/** hash = SHA-256(prevHash || canonical JSON of the event): each event commits to all before it. */
export function auditHash(prevHash: string, e: { at: Date; type: string; subject?: string | null; actor?: string | null; details?: unknown }): string {
  const body = canonicalJson({ at: e.at.toISOString(), type: e.type, subject: e.subject ?? null, actor: e.actor ?? null, details: e.details ?? {} });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

/** The append-only, hash-chained audit trail (the table refuses UPDATE and DELETE). */
export class AuditLog {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly clock: Clock,
  ) {}

  /** Appends an event, chained to the last one; appends from all replicas are serialized. */
  async append(event: AuditEventInput): Promise<AuditRecord> {
    return this.prisma.$transaction((tx) => this.appendIn(tx, event));
  }

  /**
   * Appends inside the caller's transaction, so that the event commits with the change it
   * records (a revocation is never durable without its audit row, nor the row without it).
   */
  async appendIn(tx: Prisma.TransactionClient, event: AuditEventInput): Promise<AuditRecord> {
    const at = this.clock.now();
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const last = await tx.auditEvent.findFirst({ orderBy: { seq: 'desc' }, select: { hash: true } });
    const prevHash = last?.hash ?? GENESIS_HASH;
    const details = event.details ?? {};
    const hash = auditHash(prevHash, { ...event, at, details });
    const row = await tx.auditEvent.create({
      data: { at, type: event.type, subject: event.subject ?? null, actor: event.actor ?? null, details: details as object, prevHash, hash },
    });
    return { ...event, seq: Number(row.seq), at, prevHash, hash };
  }

  /** Recomputes the chain; returns the seq of the first event that does not verify, or undefined. */
  async verify(): Promise<number | undefined> {
    let prev = GENESIS_HASH;
    const rows = await this.prisma.auditEvent.findMany({ orderBy: { seq: 'asc' } });
    for (const r of rows) {
      if (r.prevHash !== prev || auditHash(prev, r) !== r.hash) return Number(r.seq);
      prev = r.hash;
    }
    return undefined;
  }
}

export { AuditReader, verifyAuditChain, AUDIT_BATCH_SIZE, type AuditFilter, type AuditPage, type ChainVerification } from './query';
