import { auditRows, type AppendedRow, type AuditEventInput, type AuditLog, type TimedAuditEvent } from '../audit';
import type { PrismaClient } from '../db/generated/client';
import type { SqlSession } from '../db/session';
import { withDeadline } from '../core/deadline';
import { GroupCommit } from '../db/group-commit';
import { noMetrics, type DomainMetrics } from '../telemetry/metrics';
import { ReadCache, type Freshness } from '../db/read-cache';
import { LeaseRefused, lockForRevocation, parseRefusal, writeMarker, type LeaseBasis, type LeaseRefusal } from './ordering';
import { revokeIds } from './revocations';
import { noRevocationWatch, type RevocationWatch } from './watch';
import { isUuid } from '../core/uuid';
import { DomainError, problemType } from '../core/errors';

export type LeaseKind = 'x509-svid' | 'jwt-svid' | 'access-token';

/** No lease with that id (404). */
export class LeaseNotFound extends DomainError {
  readonly type = problemType('lease-not-found');
  readonly status = 404;
}

/** One issued credential. Written before the credential leaves the process. */
export interface Lease {
  readonly id: string;
  readonly kind: LeaseKind;
  readonly spiffeId: string;
  readonly subject?: string | null;
  readonly taskId?: string | null;
  readonly audience?: readonly string[];
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt?: Date | null;
  readonly revocationReason?: string | null;
  /** X.509-SVIDs: the certificate serial number, hex. */
  readonly serial?: string | null;
  /** X.509-SVIDs: SHA-256 of the certificate DER, hex. */
  readonly fingerprint?: string | null;
  /** The registration entry it was issued under. */
  readonly entryId?: string | null;
  /** Access tokens: the user's session, the subject token's issuer, what was granted, the parent token. */
  readonly sid?: string | null;
  readonly subjectIssuer?: string | null;
  readonly subjectEmail?: string | null;
  readonly authorizationDetails?: unknown;
  readonly parentId?: string | null;
}

/** A task begun by the token whose lease records it. */
export interface NewTask {
  readonly id: string;
  readonly subject: string;
  readonly subjectIssuer: string;
  readonly connector: string;
  readonly subjectGroups: readonly string[];
  readonly subjectRisk?: string | null;
}

/** What commits with a lease, in the same transaction. */
export interface LeaseEffects {
  /** The task the lease begins. */
  readonly task?: NewTask;
  /** The audit event recording the issuance. */
  readonly audit?: AuditEventInput;
  /** What the request relied on: checked again at commit, under the revocation lock (src/leases/ordering.ts). */
  readonly basis?: LeaseBasis;
}

/** Lease persistence. */
export interface LeaseStore {
  /**
   * Records a new lease durably, with its task and audit event if given; resolves only once all
   * are committed. Rejects with {@link LeaseRefused} (nothing recorded) when its task has ended,
   * a revocation its request began before names it, or a lease in its basis is no longer live.
   */
  record(lease: Lease, effects?: LeaseEffects): Promise<void>;
  get(id: string): Promise<Lease | undefined>;
  /**
   * The lease of this exact X.509-SVID (serial and certificate fingerprint), if it is
   * neither expired nor revoked at `now`.
   */
  activeSvid(serial: string, fingerprint: string, now: Date): Promise<Lease | undefined>;
  /** Whether a token's lease and every lease up its chain (parent tokens) is neither expired nor revoked. */
  tokenAlive(id: string, now: Date): Promise<boolean>;
  /** Revokes one lease durably (idempotent); returns whether it was live. */
  revoke(id: string, reason: string, now: Date): Promise<boolean>;
}

interface PendingLease {
  readonly lease: Lease;
  readonly task?: NewTask;
  readonly event?: TimedAuditEvent;
  readonly basis?: LeaseBasis;
}


const leaseRow = (l: Lease, basis?: LeaseBasis) => ({
  ...(basis && { epoch: basis.epoch, requires: basis.requires }),
  id: l.id,
  kind: l.kind,
  spiffe_id: l.spiffeId,
  subject: l.subject ?? null,
  task_id: l.taskId ?? null,
  audience: l.audience ?? [],
  issued_at: l.issuedAt.toISOString(),
  expires_at: l.expiresAt.toISOString(),
  serial: l.serial ?? null,
  fingerprint: l.fingerprint ?? null,
  entry_id: l.entryId ?? null,
  sid: l.sid ?? null,
  subject_issuer: l.subjectIssuer ?? null,
  subject_email: l.subjectEmail ?? null,
  authorization_details: l.authorizationDetails ?? null,
  parent_id: l.parentId ?? null,
});
const taskRow = (t: NewTask) => ({ id: t.id, subject: t.subject, subject_issuer: t.subjectIssuer, connector: t.connector, subject_groups: t.subjectGroups, subject_risk: t.subjectRisk ?? null });

/** A presented X.509-SVID (its chain verified by TLS), as liveness checks need it. */
export interface PresentedSvid {
  readonly spiffeId: string;
  readonly serial: string;
  readonly fingerprint: string;
}

/**
 * The lease of a presented SVID if it is live: this exact certificate (serial and fingerprint)
 * was issued by this broker for this SPIFFE ID, and its lease is neither expired nor revoked.
 */
export async function liveSvidLease(leases: Pick<LeaseStore, 'activeSvid'>, svid: PresentedSvid, now: Date): Promise<Lease | undefined> {
  const lease = await leases.activeSvid(svid.serial, svid.fingerprint, now);
  return lease && lease.spiffeId === svid.spiffeId ? lease : undefined;
}

export class PrismaLeaseStore implements LeaseStore {
  /** Leases recorded concurrently share one transaction (group commit); none resolves before it is committed. */
  readonly #batch: GroupCommit<PendingLease, LeaseRefusal | undefined>;
  /**
   * Leases by id (tokens) and by serial and fingerprint (X.509-SVIDs), as read; used only
   * while the revocation view is current, which then answers for revocation, and expiry is
   * checked on every read. A lease's other fields never change.
   */
  readonly #byId: ReadCache<Lease | undefined>;
  readonly #bySvid: ReadCache<Lease | undefined>;

  constructor(
    private readonly prisma: PrismaClient,
    /** Consulted before the database: a revocation any replica announced is refused at once. */
    private readonly watch: RevocationWatch = noRevocationWatch,
    /** Where the audit events given with leases are chained. */
    private readonly audit?: AuditLog,
    /** When cached lease reads may be trusted: never unless the revocation view is current. */
    private readonly freshness: Freshness = watch,
    /** How long liveness reads may wait for the database before failing closed (the revocation bound); none for the embedded database. */
    private readonly opts: { boundMs?: number; metrics?: Pick<DomainMetrics, 'batchCommitted'>; sql?: Pick<SqlSession, 'query'> } = {},
  ) {
    const metrics = opts.metrics ?? noMetrics;
    this.#batch = new GroupCommit((items) => this.#write(items), undefined, (size) => metrics.batchCommitted('leases', size));
    this.#byId = new ReadCache(freshness, 20_000);
    this.#bySvid = new ReadCache(freshness, 10_000);
  }

  async record(lease: Lease, effects: LeaseEffects = {}): Promise<void> {
    if (effects.audit && !this.audit) throw new Error('this lease store has no audit log to record events in');
    const refused = await this.#batch.submit({
      lease,
      ...(effects.task && { task: effects.task }),
      ...(effects.audit && { event: this.audit!.stamp(effects.audit) }),
      ...(effects.basis && { basis: effects.basis }),
    });
    if (refused) throw new LeaseRefused(refused);
  }

  /**
   * One statement per batch (`writ_record_leases`, migration 20261202000000): tasks, leases and
   * audit events commit together under the revocation lock held shared, each lease checked
   * against its basis; the audit chain's lock is held only inside PostgreSQL.
   */
  async #write(items: PendingLease[]): Promise<(LeaseRefusal | undefined)[]> {
    const tasks = items.flatMap((i) => (i.task ? [taskRow(i.task)] : []));
    const withEvents = items.filter((i) => i.event);
    const statement = 'SELECT event_seq, event_hash, event_prev_hash, refused_lease::text, refused_reason FROM writ_record_leases($1::jsonb, $2::jsonb, $3::jsonb)';
    const params = [
      JSON.stringify(tasks),
      JSON.stringify(items.map((i) => leaseRow(i.lease, i.basis))),
      auditRows(
        withEvents.map((i) => i.event!),
        withEvents.map((i) => i.lease.id),
      ),
    ];
    type Row = AppendedRow & { refused_lease: string | null; refused_reason: string | null } & Record<string, unknown>;
    // On PostgreSQL through its pool directly (Database.sql); one statement, so the same transaction either way.
    const rows = this.opts.sql ? await this.opts.sql.query<Row>(statement, params) : await this.prisma.$queryRawUnsafe<Row[]>(statement, ...params);
    const refused = new Map(rows.flatMap((r) => (r.refused_lease ? [[r.refused_lease, parseRefusal(r.refused_reason ?? '')] as const] : [])));
    const expected = withEvents.filter((i) => !refused.has(i.lease.id)).length;
    const appended = rows.length - refused.size;
    if (appended !== expected) throw new Error(`the audit chain recorded ${appended} of ${expected} events`);
    return items.map((i) => refused.get(i.lease.id));
  }

  async tokenAlive(id: string, now: Date): Promise<boolean> {
    let next: string | null = id;
    for (let hops = 0; next !== null && hops <= 16; hops++) {
      if (this.watch.isRevoked({ jti: next })) return false;
      const id: string = next;
      const lease: Lease | undefined = await this.#byId.get(id, () => this.#bounded(this.get(id)));
      if (!lease || lease.revokedAt || lease.expiresAt <= now) return false;
      next = lease.parentId ?? null;
    }
    return next === null;
  }

  async revoke(id: string, reason: string, now: Date): Promise<boolean> {
    if (!isUuid(id)) return false; // no lease has it
    const { revoked, seq } = await this.prisma.$transaction(async (tx) => {
      await lockForRevocation(tx);
      const revoked = (await revokeIds(tx, [id], reason, now)) > 0;
      return { revoked, seq: await writeMarker(tx, { jti: id }, reason, now) };
    });
    this.freshness.touch(); // this replica's cached copy is dropped now, not when the announcement comes back
    this.watch.observe(seq);
    return revoked;
  }

  async activeSvid(serial: string, fingerprint: string, now: Date): Promise<Lease | undefined> {
    if (this.watch.isRevoked({ serial })) return undefined;
    const lease = await this.#bySvid.get(`${serial}/${fingerprint}`, async () => {
      const row = await this.#bounded(this.prisma.lease.findFirst({ where: { serial, fingerprint } }));
      return row ? { ...row, kind: row.kind as LeaseKind } : undefined;
    });
    return lease && !lease.revokedAt && lease.expiresAt > now ? lease : undefined;
  }

  /** A liveness read that rejects (callers fail closed) when the database does not answer within the bound. */
  #bounded<T>(read: Promise<T>): Promise<T> {
    return this.opts.boundMs === undefined ? read : withDeadline(read, this.opts.boundMs, 'the lease database');
  }

  async get(id: string): Promise<Lease | undefined> {
    if (!isUuid(id)) return undefined;
    const row = await this.prisma.lease.findUnique({ where: { id } });
    return row ? { ...row, kind: row.kind as LeaseKind } : undefined;
  }
}

export { TaskStore, TaskError, type Task } from './tasks';
export { TaskEventStore, TaskEventError, EMPTY_TASK_HISTORY, REPORTED_OUTCOMES, historyForAudit, summarize, type TaskEvent, type TaskEventOutcome, type TaskCallReport, type TaskHistory, type TaskEventRef, type RegisteredTool } from './task-events';
export { LeaseRefused, RevocationEpochs, REVOCATION_LOCK, type LeaseBasis, type LeaseRefusal, type MarkerKind, type RevocationEpoch } from './ordering';
export { Revocations, revocationSelectorSchema, leaseFilter, handleOf, type PendingRevocation, type RevocationSelector, type BlastRadius } from './revocations';
export { leaseListingSchema, type LeaseListing } from './filters';
export { revokedSvidSerials, svidDenylist } from './denylist';
export { LeaseJanitor } from './janitor';
export { PgRevocationWatch, noRevocationWatch, announceRevoked, REVOCATION_CHANNEL, type RevocationWatch, type Revoked } from './watch';
