import { sha256 } from '../core/hash';
import type { Clock } from '../core/clock';
import { canonicalJson } from '../core/canonical-json';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { GroupCommit } from '../db/group-commit';
import { noMetrics, type DomainMetrics } from '../telemetry/metrics';
import type { AuditEventType } from './events';

/** An event for the audit trail: what happened, for whom, and who did it. */
export interface AuditEventInput {
  /** One of {@link AUDIT_EVENTS}: each type is defined, with what it records, in `./events`. */
  readonly type: AuditEventType;
  /** The person on whose behalf the action ran, if any: their `sub` at their identity provider. */
  readonly subject?: string;
  /**
   * The identity provider (`iss`) that names `subject`: set whenever subject is a user, as only
   * the pair identifies a person (OpenID Connect Core 1.0 §5.7).
   */
  readonly subjectIssuer?: string;
  /** The connector's SPIFFE ID, "admin", or "writ" for the broker itself. */
  readonly actor?: string;
  readonly details?: Record<string, unknown>;
}

/**
 * Appends an event inside the caller's transaction (AuditLog.appendIn): what every domain
 * store is given, so that a change and its audit event commit together.
 */
export type AuditIn = (tx: Prisma.TransactionClient, event: AuditEventInput) => Promise<unknown>;

/** Appends an event on its own (AuditLog.append): for refusals, which change nothing to commit with. */
export type AuditAppend = (event: AuditEventInput) => Promise<unknown>;

/** An event as the chain stores it: its type is a string, as a chain written by an older version may hold types no longer defined. */
export interface AuditRecord extends Omit<AuditEventInput, 'type'> {
  readonly type: string;
  readonly seq: number;
  readonly at: Date;
  readonly prevHash: string;
  readonly hash: string;
}

/** The hash of the first event's predecessor. */
export const GENESIS_HASH = '0'.repeat(64);

type HashedFields = { at: Date; type: string; subject?: string | null; subjectIssuer?: string | null; actor?: string | null; details?: unknown };

/**
 * The canonical JSON of an event, as hashed. `subject_issuer` is hashed only when set, so that
 * events written before it existed (migration 20261203000000) verify as they were written.
 */
export function auditBody(e: HashedFields): string {
  return canonicalJson({
    at: e.at.toISOString(),
    type: e.type,
    subject: e.subject ?? null,
    ...(e.subjectIssuer != null && { subject_issuer: e.subjectIssuer }),
    actor: e.actor ?? null,
    details: e.details ?? {},
  });
}

/** hash = SHA-256(prevHash || "\n" || canonical JSON of the event): each event commits to all before it. */
export function auditHash(prevHash: string, e: HashedFields): string {
  return sha256(`${prevHash}\n${auditBody(e)}`, 'hex');
}

/**
 * Events as `writ_append_audit` (migration 20261127090000) takes them: PostgreSQL chains them
 * under the chain's lock, hashing each body exactly as {@link auditHash} does.
 */
export function auditRows(events: readonly TimedAuditEvent[], leaseIds?: readonly string[]): string {
  return JSON.stringify(
    events.map((e, i) => ({
      at: e.at.toISOString(),
      type: e.type,
      subject: e.subject ?? null,
      subject_issuer: e.subjectIssuer ?? null,
      actor: e.actor ?? null,
      details: e.details ?? {},
      body: auditBody(e),
      ...(leaseIds && { lease_id: leaseIds[i] }), // writ_record_leases drops the events of leases it refuses
    })),
  );
}

/** The records of events appended in order, from the function's (seq, hash) rows. */
export interface AppendedRow {
  event_seq: bigint | number | string;
  event_hash: string;
  event_prev_hash: string;
}

/** The records of events appended in order, from the function's rows (one per event, in order). */
export function appendedRecords(events: readonly TimedAuditEvent[], rows: readonly AppendedRow[]): AuditRecord[] {
  if (rows.length !== events.length) throw new Error(`the audit chain appended ${rows.length} of ${events.length} events`);
  return events.map((e, i) => ({ ...e, details: e.details ?? {}, seq: Number(rows[i]!.event_seq), hash: rows[i]!.event_hash, prevHash: rows[i]!.event_prev_hash }));
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
    metrics: Pick<DomainMetrics, 'batchCommitted'> = noMetrics,
  ) {
    // One statement per batch, in its own transaction: no round trip while the chain is locked.
    this.#batch = new GroupCommit((events) => this.appendManyIn(this.prisma, events), undefined, (size) => metrics.batchCommitted('audit', size));
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
    const rows = await tx.$queryRawUnsafe<AppendedRow[]>('SELECT event_seq, event_hash, event_prev_hash FROM writ_append_audit($1::jsonb) ORDER BY event_seq', auditRows(events));
    return appendedRecords(events, rows);
  }

  /**
   * Appends inside the caller's transaction, so that the event commits with the change it
   * records (a revocation is never durable without its audit row, nor the row without it).
   * A bound function: domain services take it as their {@link AuditIn}.
   */
  readonly appendIn = async (tx: Prisma.TransactionClient, event: AuditEventInput): Promise<AuditRecord> => (await this.appendManyIn(tx, [this.stamp(event)]))[0]!;

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

export { AUDIT_EVENTS, AUDIT_EVENT_TYPES, isAuditEventType, type AuditEventDefinition, type AuditEventType } from './events';
export { AuditReader, verifyAuditChain, AUDIT_BATCH_SIZE, type AuditFilter, type AuditPage, type ChainVerification } from './query';
