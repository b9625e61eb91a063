import { DomainError, problemType } from '../core/errors';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { Freshness } from '../db/read-cache';
import type { RevocationSelector } from './revocations';
import { REVOCATION_CHANNEL } from './watch';

/**
 * Revocation wins every race, by the database (migration 20261202000000):
 * - a revocation transaction takes this advisory lock exclusively, first, and every batch of
 *   lease commits takes it shared: each lease committed either before the revocation read what
 *   to revoke, or is checked after the revocation committed;
 * - a revocation writes a marker whose sequence grows in commit order; a request records the
 *   latest marker its replica had heard of when it began (its epoch), and its lease is refused
 *   if a later marker names it;
 * - a lease is refused if a lease it relied on (client SVID, parent token, renewed SVID) is no
 *   longer live or its task has ended.
 */
export const REVOCATION_LOCK = 0x7772766b; // "wrvk"

/** What an issuance relied on, checked again when its lease commits under the revocation lock. */
export interface LeaseBasis {
  /** The latest revocation marker this replica had heard of when the request began. */
  readonly epoch: number;
  /** Leases that must still be live when it commits. */
  readonly requires: readonly string[];
}

/** Why a lease was refused at commit: its task ended, a revocation marker named it, or a lease it relied on was revoked. */
export type LeaseRefusal = { readonly reason: 'task-ended' } | { readonly reason: 'revoked'; readonly kind: MarkerKind } | { readonly reason: 'requires'; readonly lease: string };

/** A lease refused at commit: the credential was never issued. Callers answer as a request made after the revocation would be answered. */
export class LeaseRefused extends DomainError {
  readonly type = problemType('revoked');
  readonly status = 409;
  constructor(readonly refusal: LeaseRefusal) {
    super(refusal.reason === 'task-ended' ? 'the task has ended' : 'a revocation naming this credential arrived while it was being issued');
  }
}

/** Parses writ_record_leases' refused_reason. */
export function parseRefusal(reason: string): LeaseRefusal {
  if (reason === 'task-ended') return { reason: 'task-ended' };
  if (reason.startsWith('requires:')) return { reason: 'requires', lease: reason.slice('requires:'.length) };
  return { reason: 'revoked', kind: reason.slice('marker:'.length) as MarkerKind };
}

export type MarkerKind = 'jti' | 'task' | 'user' | 'session' | 'email' | 'connector' | 'audience' | 'user-connector' | 'kill-switch';

/** The marker of a selector: a lease matches it when it matches every column given. */
function markerOf(selector: RevocationSelector): { kind: MarkerKind } & Partial<Record<'jti' | 'taskId' | 'subjectIssuer' | 'subject' | 'sid' | 'email' | 'spiffeId' | 'audience', string>> {
  if ('jti' in selector) return { kind: 'jti', jti: selector.jti };
  if ('task_id' in selector) return { kind: 'task', taskId: selector.task_id };
  if ('session' in selector) return { kind: 'session', subjectIssuer: selector.session.issuer, sid: selector.session.sid };
  if ('email' in selector) return { kind: 'email', subjectIssuer: selector.email.issuer, email: selector.email.email };
  if ('audience' in selector) return { kind: 'audience', audience: selector.audience };
  if ('user' in selector && 'connector' in selector) return { kind: 'user-connector', subjectIssuer: selector.user.issuer, subject: selector.user.subject, spiffeId: selector.connector };
  if ('user' in selector) return { kind: 'user', subjectIssuer: selector.user.issuer, subject: selector.user.subject };
  return { kind: 'connector', spiffeId: selector.connector };
}

/** Inside a revocation's transaction, as its first statement: waits for lease commits in flight, and holds later ones until it commits. */
export async function lockForRevocation(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${REVOCATION_LOCK})`);
}

/**
 * Writes the durable marker of a revocation (after {@link lockForRevocation}) and announces its
 * sequence on commit, so every replica's epoch moves past it. Returns the sequence.
 */
export async function writeMarker(tx: Prisma.TransactionClient, selector: RevocationSelector | { killSwitch: string }, reason: string, at: Date): Promise<number> {
  const marker = 'killSwitch' in selector ? { kind: 'kill-switch' as const, spiffeId: selector.killSwitch } : markerOf(selector);
  const { seq } = await tx.revocation.create({ data: { ...marker, reason, at }, select: { seq: true } });
  await tx.$executeRaw`SELECT pg_notify(${REVOCATION_CHANNEL}, ${JSON.stringify({ seq: Number(seq) })})`;
  return Number(seq);
}

/** Where a request learns its epoch: the latest revocation marker its replica has heard of. */
export interface RevocationEpoch {
  /** Called when a request begins, before any of its checks. Rejects when it cannot be known (fail closed). */
  begin(): Promise<number>;
  /** A revocation this replica committed: later requests here begin after it. */
  observe(seq: number): void;
}

/**
 * The epoch from the replica's change feed while it is current; otherwise from the database
 * (the embedded database, or a listener that has gone quiet). Either is at most the latest
 * committed marker, so a stale epoch refuses more, never less.
 */
export class RevocationEpochs implements RevocationEpoch {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly feed: { readonly epoch: number; observe(seq: number): void },
    private readonly freshness: Freshness,
  ) {}

  async begin(): Promise<number> {
    if (this.freshness.current) return this.feed.epoch;
    const [row] = await this.prisma.$queryRaw<{ seq: bigint | number }[]>`SELECT coalesce(max(seq), 0)::int8 AS seq FROM revocation`;
    return Number(row?.seq ?? 0);
  }

  observe(seq: number): void {
    this.feed.observe(seq);
  }
}
