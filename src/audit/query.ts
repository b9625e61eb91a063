import type { AuditEvent as AuditRow, Prisma, PrismaClient } from '../db/generated/client';
import { auditHash, GENESIS_HASH, type AuditRecord } from './index';

/**
 * Which events to read. Every field narrows; none given means every event.
 *
 * @example
 *   reader.list({ typePrefix: 'entry.', actor: 'admin', since: new Date('2026-01-01T00:00:00Z') }, { limit: 50 })
 */
export interface AuditFilter {
  /** Exactly this type. */
  readonly type?: string;
  /** Types starting with this (taken literally: `%` and `_` are not wildcards). */
  readonly typePrefix?: string;
  readonly subject?: string;
  /** The identity provider naming `subject`. */
  readonly subjectIssuer?: string;
  readonly actor?: string;
  /** Events of this task (their details' `taskId`). */
  readonly taskId?: string;
  /** Events naming this token or credential (their details' `jti`). */
  readonly jti?: string;
  /** Events at or after this time. */
  readonly since?: Date;
  /** Events at or before this time. */
  readonly until?: Date;
}

/** A page of events, newest first; `nextBefore` is the cursor for the next (older) page when there is one. */
export interface AuditPage {
  readonly events: AuditRecord[];
  readonly nextBefore?: number;
}

/** The outcome of walking the chain from the first event to the last. */
export type ChainVerification =
  | {
      readonly ok: true;
      /** Events checked (all of them, up to the last one when the walk began). */
      readonly events: number;
      /** The last event's hash; GENESIS_HASH for an empty trail. Record it elsewhere to detect truncation. */
      readonly head: string;
    }
  | {
      readonly ok: false;
      /** The seq of the first event that does not verify. */
      readonly brokenAt: number;
      /**
       * `prev_hash mismatch`: the event does not name its predecessor's hash (an event before it was
       * removed, inserted or rewritten along with its own hash). `hash mismatch`: its content or hash
       * was altered.
       */
      readonly reason: 'hash mismatch' | 'prev_hash mismatch';
      /** Events examined, the broken one included. */
      readonly eventsChecked: number;
    };

/** Rows read per query when verifying or exporting: never the whole trail at once. */
export const AUDIT_BATCH_SIZE = 1000;

/** Escapes LIKE's wildcards and escape character: Prisma's `startsWith` passes them through (prisma/orm#19506). */
const likeLiteral = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);

function whereOf(f: AuditFilter): Prisma.AuditEventWhereInput {
  const type: Prisma.StringFilter = {};
  if (f.type !== undefined) type.equals = f.type;
  if (f.typePrefix !== undefined && f.typePrefix !== '') type.startsWith = likeLiteral(f.typePrefix);
  const at: Prisma.DateTimeFilter = {};
  if (f.since !== undefined) at.gte = f.since;
  if (f.until !== undefined) at.lte = f.until;
  return {
    ...(Object.keys(type).length > 0 && { type }),
    ...(f.subject !== undefined && { subject: f.subject }),
    ...(f.subjectIssuer !== undefined && { subjectIssuer: f.subjectIssuer }),
    ...(f.actor !== undefined && { actor: f.actor }),
    ...(f.taskId !== undefined && { taskId: f.taskId }),
    ...(f.jti !== undefined && { jti: f.jti }),
    ...(Object.keys(at).length > 0 && { at }),
  };
}

function recordOf(r: AuditRow): AuditRecord {
  return {
    seq: Number(r.seq),
    at: r.at,
    type: r.type,
    ...(r.subject !== null && { subject: r.subject }),
    ...(r.subjectIssuer !== null && { subjectIssuer: r.subjectIssuer }),
    ...(r.actor !== null && { actor: r.actor }),
    details: (r.details ?? {}) as Record<string, unknown>,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

/**
 * Walks the whole chain in seq order, `batchSize` rows per query, recomputing each hash with
 * `auditHash`. Stops at the first event that does not verify. The walk ends at the last event
 * that existed when it began, so appends made meanwhile do not prolong it.
 *
 * Unlike `AuditLog.verify()`, it never loads the whole trail and says why a row failed.
 */
export async function verifyAuditChain(prisma: PrismaClient, opts: { batchSize?: number } = {}): Promise<ChainVerification> {
  const batchSize = opts.batchSize ?? AUDIT_BATCH_SIZE;
  const last = await prisma.auditEvent.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
  let prev = GENESIS_HASH;
  let checked = 0;
  if (!last) return { ok: true, events: 0, head: prev };
  let after: bigint | undefined;
  for (;;) {
    const rows = await prisma.auditEvent.findMany({
      where: { seq: { ...(after !== undefined && { gt: after }), lte: last.seq } },
      orderBy: { seq: 'asc' },
      take: batchSize,
    });
    for (const r of rows) {
      checked += 1;
      if (r.prevHash !== prev) return { ok: false, brokenAt: Number(r.seq), reason: 'prev_hash mismatch', eventsChecked: checked };
      if (auditHash(prev, r) !== r.hash) return { ok: false, brokenAt: Number(r.seq), reason: 'hash mismatch', eventsChecked: checked };
      prev = r.hash;
    }
    if (rows.length < batchSize) return { ok: true, events: checked, head: prev };
    after = rows.at(-1)!.seq;
  }
}

/** Reads the audit trail: filtered pages for people, ordered batches for export, and chain verification. */
export class AuditReader {
  constructor(private readonly prisma: PrismaClient) {}

  /** Events matching `filter`, newest first, at most `limit`, older than seq `before` if given. */
  async list(filter: AuditFilter, page: { limit: number; before?: number }): Promise<AuditPage> {
    const where = whereOf(filter);
    if (page.before !== undefined) where.seq = { lt: BigInt(page.before) };
    // One more than asked tells whether another page exists.
    const rows = await this.prisma.auditEvent.findMany({ where, orderBy: { seq: 'desc' }, take: page.limit + 1 });
    const events = rows.slice(0, page.limit).map(recordOf);
    return rows.length > page.limit ? { events, nextBefore: events.at(-1)!.seq } : { events };
  }

  /**
   * Events matching `filter` in chain order (oldest first), between seqs `after` and `before`
   * (both exclusive), as batches of at most `batchSize`; one query per batch.
   */
  async *batches(filter: AuditFilter, range: { after?: number; before?: number; batchSize?: number } = {}): AsyncGenerator<AuditRecord[], void, undefined> {
    const batchSize = range.batchSize ?? AUDIT_BATCH_SIZE;
    const base = whereOf(filter);
    let after = range.after === undefined ? undefined : BigInt(range.after);
    const before = range.before === undefined ? undefined : BigInt(range.before);
    for (;;) {
      const seq: Prisma.BigIntFilter = { ...(after !== undefined && { gt: after }), ...(before !== undefined && { lt: before }) };
      const rows = await this.prisma.auditEvent.findMany({ where: { ...base, seq }, orderBy: { seq: 'asc' }, take: batchSize });
      if (rows.length > 0) yield rows.map(recordOf);
      if (rows.length < batchSize) return;
      after = rows.at(-1)!.seq;
    }
  }

  /** See `verifyAuditChain`. */
  verify(opts: { batchSize?: number } = {}): Promise<ChainVerification> {
    return verifyAuditChain(this.prisma, opts);
  }
}
