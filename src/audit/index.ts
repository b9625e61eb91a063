import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock';
import { canonicalJson } from '../core/canonical-json';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { GroupCommit } from '../db/group-commit';

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

/** An event stamped with the time it happened, waiting to be chained. */
export type TimedAuditEvent = AuditEventInput & { readonly at: Date };

/** The append-only, hash-chained audit trail (the table refuses UPDATE and DELETE). */
export class AuditLog {
  /** Events appended concurrently share one transaction (and one turn of the chain lock). */
  readonly #batch: GroupCommit<TimedAuditEvent, AuditRecord>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly clock: Clock,
  ) {
    this.#batch = new GroupCommit((events) => this.prisma.$transaction((tx) => this.appendManyIn(tx, events)));
  }

  /** Appends an event, chained to the last one; resolves once it is committed. Appends from all replicas are serialized. */
  append(event: AuditEventInput): Promise<AuditRecord> {
    return this.#batch.submit({ ...event, at: this.clock.now() });
  }

  /** Stamps an event with the current time, for `appendManyIn`. */
  stamp(event: AuditEventInput): TimedAuditEvent {
    return { ...event, at: this.clock.now() };
  }

  /**
   * Appends events in order inside the caller's transaction, with one statement: the chain
   * lock is held from reading the last hash until the transaction commits.
   */
  async appendManyIn(tx: Prisma.TransactionClient, events: readonly TimedAuditEvent[]): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const last = await tx.$queryRawUnsafe<{ hash: string }[]>('SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1');
    let prevHash = last[0]?.hash ?? GENESIS_HASH;
    const rows = events.map((event, i) => {
      const details = event.details ?? {};
      const hash = auditHash(prevHash, { ...event, details });
      const row = { i, at: event.at.toISOString(), type: event.type, subject: event.subject ?? null, actor: event.actor ?? null, details, prev_hash: prevHash, hash };
      prevHash = hash;
      return row;
    });
    const records = rows.map((r, i) => ({ ...events[i]!, details: r.details, prevHash: r.prev_hash, hash: r.hash }));
    // Sequence numbers follow the chain: rows are inserted in the order they were hashed.
    const inserted = await tx.$queryRawUnsafe<{ seq: bigint | number | string; hash: string }[]>(
      `INSERT INTO audit_event (at, type, subject, actor, details, prev_hash, hash)
       SELECT x.at, x.type, x.subject, x.actor, x.details, x.prev_hash, x.hash
       FROM jsonb_to_recordset($1::jsonb) AS x(i int, at timestamptz, type text, subject text, actor text, details jsonb, prev_hash text, hash text)
       ORDER BY x.i
       RETURNING seq, hash`,
      JSON.stringify(rows),
    );
    const seqOf = new Map(inserted.map((r) => [r.hash, Number(r.seq)]));
    return records.map((r) => ({ ...r, seq: seqOf.get(r.hash)! }));
  }

  /**
   * Appends inside the caller's transaction, so that the event commits with the change it
   * records (a revocation is never durable without its audit row, nor the row without it).
   */
  async appendIn(tx: Prisma.TransactionClient, event: AuditEventInput): Promise<AuditRecord> {
    return (await this.appendManyIn(tx, [this.stamp(event)]))[0]!;
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
