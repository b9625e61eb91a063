import { isUuid } from '../core/uuid';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditEventInput, AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { neverFresh, ReadCache, type Freshness } from '../db/read-cache';
import { lockForRevocation, writeMarker, type RevocationEpoch } from './ordering';
import { announceRevoked } from './watch';
import { noMetrics, type DomainMetrics, type RevocationHandle } from '../telemetry/metrics';

/**
 * Revocation by any handle a security team holds: one token (jti), a task, a user, a
 * user's session, a connector (a SPIFFE ID, or a path prefix ending in "/"), an
 * audience, or a user through one connector.
 */
export const revocationSelectorSchema = z.union([
  z.strictObject({ jti: z.uuid() }),
  z.strictObject({ task_id: z.uuid() }),
  z.strictObject({ user: z.strictObject({ issuer: z.string().min(1).max(2048), subject: z.string().min(1).max(1024) }) }),
  z.strictObject({ session: z.strictObject({ issuer: z.string().min(1).max(2048), sid: z.string().min(1).max(1024) }) }),
  z.strictObject({ connector: z.string().startsWith('spiffe://').max(2048) }),
  z.strictObject({ email: z.strictObject({ issuer: z.string().min(1).max(2048), email: z.string().min(3).max(320) }) }),
  z.strictObject({ audience: z.string().min(1).max(2048) }),
  z.strictObject({
    user: z.strictObject({ issuer: z.string().min(1).max(2048), subject: z.string().min(1).max(1024) }),
    connector: z.string().startsWith('spiffe://').max(2048),
  }),
]);
export type RevocationSelector = z.output<typeof revocationSelectorSchema>;

/** The handle a selector names, for metrics: its one key, or `user_connector` for a user through one connector. */
export function handleOf(selector: RevocationSelector): RevocationHandle {
  if ('user' in selector && 'connector' in selector) return 'user_connector';
  return Object.keys(selector)[0] as RevocationHandle;
}

/** Which kind of event a revocation is, for the token vault's providers' `revoke_on`. */
export type GrantCause = 'user' | 'session' | 'account' | 'connector';
/** Revokes the vault's grants a revocation reaches, in its transaction. */
export type GrantRevoker = (tx: Prisma.TransactionClient, selector: RevocationSelector, cause: GrantCause, reason: string, actor: string) => Promise<unknown>;

/** A revocation made in a caller's transaction ({@link Revocations.revokeIn}), for {@link Revocations.afterCommit}. */
export interface PendingRevocation {
  readonly handle: RevocationHandle;
  readonly revoked: number;
  readonly seq: number;
}

/** The Prisma filter of the leases a selector names (any state; callers add liveness). */
export function leaseFilter(selector: RevocationSelector): Prisma.LeaseWhereInput {
  const connector = (id: string): Prisma.LeaseWhereInput => (id.endsWith('/') ? { spiffeId: { startsWith: id } } : { spiffeId: id });
  if ('jti' in selector) return { id: selector.jti };
  if ('task_id' in selector) return { taskId: selector.task_id };
  if ('session' in selector) return { subjectIssuer: selector.session.issuer, sid: selector.session.sid };
  if ('email' in selector) return { subjectIssuer: selector.email.issuer, subjectEmail: selector.email.email };
  if ('audience' in selector) return { audience: { has: selector.audience } };
  if ('user' in selector && 'connector' in selector) return { subject: selector.user.subject, subjectIssuer: selector.user.issuer, ...connector(selector.connector) };
  if ('user' in selector) return { subject: selector.user.subject, subjectIssuer: selector.user.issuer };
  return connector(selector.connector);
}

export interface BlastRadius {
  readonly leases: number;
  /** The first leases it would revoke, newest first (a page, for a look before acting). */
  readonly sample: readonly { jti: string; kind: string; spiffe_id: string; subject: string | null; task_id: string | null; audience: string[]; expires_at: string }[];
  readonly byUser: Record<string, number>;
  readonly byConnector: Record<string, number>;
  readonly byTask: Record<string, number>;
  readonly byAudience: Record<string, number>;
}

const MAX_CHAIN = 16;
const SAMPLE = 50;

/**
 * Revocations by selector, chained descendants included, each in one transaction that takes
 * the revocation lock first, writes its durable marker, revokes, and commits its audit event:
 * once it is acknowledged, no lease it names is live and none in flight can still commit
 * (src/leases/ordering.ts).
 */
export class Revocations {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly clock: Clock,
    /** Where revocations made for an actor are audited, in their own transaction. */
    private readonly audit: AuditIn,
    private readonly freshness: Freshness = neverFresh,
    /** This replica's epoch, moved past each revocation it commits. */
    private readonly epochs?: RevocationEpoch,
    private readonly metrics: Pick<DomainMetrics, 'revoked'> = noMetrics,
  ) {
    this.#markers = new ReadCache(freshness);
  }

  /** The latest revocation marker naming a user, session or email, by those handles; dropped when any marker is written. */
  readonly #markers: ReadCache<number | undefined>;

  /** Live leases the selector names, and every live token exchanged from them (chained). */
  private async liveIds(tx: Prisma.TransactionClient, selector: RevocationSelector, now: Date): Promise<string[]> {
    const live: Prisma.LeaseWhereInput = { revokedAt: null, expiresAt: { gt: now } };
    const found = new Set((await tx.lease.findMany({ where: { ...leaseFilter(selector), ...live }, select: { id: true } })).map((l) => l.id));
    let frontier = [...found];
    for (let depth = 0; frontier.length > 0 && depth < MAX_CHAIN; depth++) {
      const children = await tx.lease.findMany({ where: { parentId: { in: frontier }, ...live }, select: { id: true } });
      frontier = children.map((c) => c.id).filter((id) => !found.has(id));
      frontier.forEach((id) => found.add(id));
    }
    return [...found];
  }

  /** What a revocation would reach, without revoking (the blast radius). */
  async dryRun(selector: RevocationSelector): Promise<BlastRadius> {
    const now = this.clock.now();
    return this.prisma.$transaction(async (tx) => {
      const ids = await this.liveIds(tx, selector, now);
      const rows = await tx.lease.findMany({
        where: { id: { in: ids } },
        select: { id: true, kind: true, subject: true, subjectIssuer: true, spiffeId: true, taskId: true, audience: true, issuedAt: true, expiresAt: true },
        orderBy: [{ issuedAt: 'desc' }, { id: 'desc' }],
      });
      const count = (key: (r: (typeof rows)[number]) => string[]) =>
        rows.reduce<Record<string, number>>((acc, r) => {
          for (const k of key(r)) acc[k] = (acc[k] ?? 0) + 1;
          return acc;
        }, {});
      return {
        leases: ids.length,
        sample: rows.slice(0, SAMPLE).map((r) => ({ jti: r.id, kind: r.kind, spiffe_id: r.spiffeId, subject: r.subject, task_id: r.taskId, audience: r.audience, expires_at: r.expiresAt.toISOString() })),
        byUser: count((r) => (r.subject ? [`${r.subjectIssuer ?? ''} ${r.subject}`] : [])),
        byConnector: count((r) => [r.spiffeId]),
        byTask: count((r) => (r.taskId ? [r.taskId] : [])),
        byAudience: count((r) => r.audience),
      };
    });
  }

  /** Leases by selector and status, newest first, a page at a time (cursor: the last id seen). */
  /** One lease by its id, in any state. */
  async lease(id: string) {
    return isUuid(id) ? this.prisma.lease.findUnique({ where: { id } }) : null;
  }

  async find(selector: RevocationSelector | undefined, status: 'active' | 'expired' | 'revoked' | undefined, page: { limit: number; before?: string }) {
    const now = this.clock.now();
    const state: Prisma.LeaseWhereInput =
      status === 'active' ? { revokedAt: null, expiresAt: { gt: now } } : status === 'expired' ? { revokedAt: null, expiresAt: { lte: now } } : status === 'revoked' ? { revokedAt: { not: null } } : {};
    const cursor = page.before ? await this.prisma.lease.findUnique({ where: { id: page.before }, select: { issuedAt: true, id: true } }) : null;
    const after: Prisma.LeaseWhereInput = cursor ? { OR: [{ issuedAt: { lt: cursor.issuedAt } }, { issuedAt: cursor.issuedAt, id: { lt: cursor.id } }] } : {};
    return this.prisma.lease.findMany({
      where: { AND: [selector ? leaseFilter(selector) : {}, state, after] },
      orderBy: [{ issuedAt: 'desc' }, { id: 'desc' }],
      take: page.limit,
    });
  }

  /**
   * The kill switch: disables every entry of the connector and revokes all its live
   * leases (its X.509-SVIDs, so mTLS routes refuse them at once, and its tokens) in one transaction.
   */
  async disableConnector(spiffeId: string, reason: string, actor: string): Promise<{ entries: number; leases: number }> {
    if (spiffeId.endsWith('/')) throw new Error('the kill switch names one connector, not a prefix');
    const now = this.clock.now();
    const { result, seq } = await this.prisma.$transaction(async (tx) => {
      await lockForRevocation(tx);
      const entries = await tx.registrationEntry.updateMany({ where: { spiffeId }, data: { enabled: false } });
      const ids = await this.liveIds(tx, { connector: spiffeId }, now);
      const result = { entries: entries.count, leases: await revokeIds(tx, ids, reason, now) };
      await this.audit(tx, { type: 'connector.disabled', actor, details: { spiffeId, reason, ...result } });
      if (this.#grantRevoker) await this.#grantRevoker(tx, { connector: spiffeId }, 'connector', reason, actor);
      // Last: the announcement of the marker follows those of what it revoked.
      return { result, seq: await writeMarker(tx, { killSwitch: spiffeId }, reason, now) };
    });
    this.committed(seq);
    this.metrics.revoked('kill_switch', result.leases);
    return result;
  }

  /** After a revocation committed: this replica's caches start a new generation and its requests begin past the marker. */
  private committed(seq: number | undefined): void {
    this.freshness.touch();
    if (seq !== undefined) this.epochs?.observe(seq);
    for (const listener of this.#committedListeners) listener();
  }

  #grantRevoker: GrantRevoker | undefined;
  /** The token vault's part in revocations that name a user, a session or a connector (`cause` says which kind of event it is). */
  revokesGrants(revoker: GrantRevoker): void {
    this.#grantRevoker = revoker;
  }

  readonly #committedListeners: (() => void)[] = [];
  /** What learns that a revocation committed here (the token vault revokes what it released to the tokens revoked). */
  onCommitted(listener: () => void): void {
    this.#committedListeners.push(listener);
  }

  /** Undoes the kill switch: the connector's entries are enabled again. What it held stays revoked; it must attest anew. */
  async enableConnector(spiffeId: string, reason: string, actor: string): Promise<{ entries: number }> {
    const result = await this.prisma.$transaction(async (tx) => {
      const entries = await tx.registrationEntry.updateMany({ where: { spiffeId, enabled: false }, data: { enabled: true } });
      await this.audit(tx, { type: 'connector.enabled', actor, details: { spiffeId, reason, entries: entries.count } });
      return { entries: entries.count };
    });
    this.freshness.touch();
    return result;
  }

  /**
   * Revokes every matching live lease (chained tokens too) durably; returns how many. With `tx`,
   * inside the caller's transaction, which must not have appended to the audit trail before (the
   * revocation lock comes first); the caller commits, then calls {@link afterCommit}. `event`
   * replaces the default audit event of an actor's revocation, or (undefined) records none.
   */
  async revoke(selector: RevocationSelector, reason: string, tx?: Prisma.TransactionClient, actor?: string, event?: (revoked: number) => AuditEventInput | undefined, cause?: GrantCause): Promise<number> {
    const r = await this.revokeIn(selector, reason, tx, actor, event, cause);
    if (!tx) this.afterCommit([r]);
    return r.revoked;
  }

  /** What a caller that committed revocations in its own transaction calls afterwards. */
  afterCommit(committed: readonly PendingRevocation[]): void {
    this.committed(committed.length > 0 ? Math.max(...committed.map((r) => r.seq)) : undefined);
    for (const r of committed) this.metrics.revoked(r.handle, r.revoked);
  }

  /** As {@link revoke}, answering the marker's sequence as well (for callers that commit). */
  async revokeIn(selector: RevocationSelector, reason: string, tx?: Prisma.TransactionClient, actor?: string, event?: (revoked: number) => AuditEventInput | undefined, cause?: GrantCause): Promise<PendingRevocation> {
    const now = this.clock.now();
    const run = async (t: Prisma.TransactionClient) => {
      await lockForRevocation(t);
      // A user or a session is revoked from now on, not only the tokens it holds: subject tokens issued
      // before now no longer buy new ones (the exchange checks these markers).
      if ('user' in selector && !('connector' in selector)) {
        await t.subjectRevocation.create({ data: { id: randomUUID(), issuer: selector.user.issuer, subject: selector.user.subject, notBefore: now, reason } });
      }
      if ('session' in selector) {
        await t.subjectRevocation.create({ data: { id: randomUUID(), issuer: selector.session.issuer, sid: selector.session.sid, notBefore: now, reason } });
      }
      if ('email' in selector) {
        await t.subjectRevocation.create({ data: { id: randomUUID(), issuer: selector.email.issuer, email: selector.email.email, notBefore: now, reason } });
      }
      const revoked = await revokeIds(t, await this.liveIds(t, selector, now), reason, now);
      const audited = event ? event(revoked) : actor !== undefined ? { type: 'revocation' as const, actor, details: { selector, reason, revoked, ...selectorHandles(selector) } } : undefined;
      if (audited) await this.audit(t, audited);
      // What else a revocation of a user or session reaches, in the same transaction: the token vault's stored grants, where their providers say so.
      if (cause !== undefined && this.#grantRevoker) await this.#grantRevoker(t, selector, cause, reason, actor ?? 'writ');
      return { handle: handleOf(selector), revoked, seq: await writeMarker(t, selector, reason, now) };
    };
    return tx ? run(tx) : this.prisma.$transaction(run);
  }

  /** Whether a subject token issued at `issuedAt` for this user or session was revoked after. */
  async subjectRevoked(issuer: string, subject: string, sid: string | undefined, issuedAt: Date, email?: string): Promise<boolean> {
    const latest = await this.#markers.get(JSON.stringify([issuer, subject, sid ?? null, email ?? null]), async () => {
      const hit = await this.prisma.subjectRevocation.findFirst({
        where: { issuer, OR: [{ subject }, ...(sid !== undefined ? [{ sid }] : []), ...(email !== undefined ? [{ email }] : [])] },
        orderBy: { notBefore: 'desc' },
        select: { notBefore: true },
      });
      return hit?.notBefore.getTime();
    });
    return latest !== undefined && latest >= issuedAt.getTime();
  }
}

/** Revokes leases by id and announces it to every replica, in the caller's transaction. */
export async function revokeIds(tx: Prisma.TransactionClient, ids: readonly string[], reason: string, now: Date): Promise<number> {
  if (ids.length === 0) return 0;
  const { count } = await tx.lease.updateMany({ where: { id: { in: [...ids] }, revokedAt: null }, data: { revokedAt: now, revocationReason: reason } });
  const rows = await tx.lease.findMany({ where: { id: { in: [...ids] } }, select: { serial: true, expiresAt: true } });
  const serials = rows.flatMap((l) => (l.serial ? [l.serial] : []));
  await announceRevoked(tx, { jtis: ids, serials, until: Math.max(0, ...rows.map((l) => l.expiresAt.getTime())) });
  return count;
}

/** The task or token a revocation names, at the top of its audit details: indexed (audit_event.task_id, .jti), so it shows with the task's and the token's events. */
function selectorHandles(selector: RevocationSelector): { taskId?: string; jti?: string } {
  if ('task_id' in selector && typeof selector.task_id === 'string') return { taskId: selector.task_id };
  if ('jti' in selector && typeof selector.jti === 'string') return { jti: selector.jti };
  return {};
}
