import type { AuditLog } from '../audit';
import type { Clock } from '../core/clock';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { Freshness } from '../db/read-cache';
import { SetError } from './errors';
import { REVOCATION_LOCK, type PendingRevocation, type Revocations, type RevocationSelector } from '../leases';
import { noMetrics, type DomainMetrics } from '../telemetry/metrics';
import { intentsOf, type Intent } from './events';
import type { VerifiedSet } from './set';

/** What one intent did. */
export interface AppliedIntent {
  readonly kind: Intent['kind'];
  readonly eventType: string;
  readonly revoked: number;
  readonly note?: string;
}

export interface SignalOutcome {
  /** The SET was seen before (same `iss` and `jti`): acknowledged, not applied again. */
  readonly replayed: boolean;
  readonly applied: readonly AppliedIntent[];
}

/**
 * Applies verified Security Event Tokens: session and account events revoke leases, risk
 * events record the user's level (policy sees it as `User.risk` from the next request)
 * and revoke at the configured levels. Each SET is applied once; every one is audited.
 */
export class SignalApplier {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly revocations: Revocations,
    private readonly audit: AuditLog,
    private readonly opts: { riskRevokeLevels: readonly string[]; clock: Clock; maxAgeSeconds: number; freshness?: Freshness; metrics?: Pick<DomainMetrics, 'signal'> },
  ) {}

  get #metrics(): Pick<DomainMetrics, 'signal'> {
    return this.opts.metrics ?? noMetrics;
  }

  /**
   * Records a pushed SET that was refused before it could be applied (RFC 8935 §2.4: the error
   * the transmitter is answered). The refusal is answered all the same if the audit trail cannot be written.
   */
  async refused(refusal: { readonly err: string; readonly description: string }): Promise<void> {
    this.#metrics.signal('none', 'refused');
    await this.audit.append({ type: 'signal.refused', details: { err: refusal.err, description: refusal.description } }).catch(() => undefined);
  }

  async apply(set: VerifiedSet): Promise<SignalOutcome> {
    // SET ids are remembered for the lease retention; an older SET could be a replay we no longer recognise.
    if (this.opts.clock.now().getTime() - set.iat.getTime() > this.opts.maxAgeSeconds * 1000) {
      throw new SetError('invalid_request', `the SET was issued more than ${this.opts.maxAgeSeconds} s ago`);
    }
    const intents = intentsOf(set);
    // The replay mark, every effect and the audit event commit together: a SET that failed halfway is applied in full when retried.
    const revocations: PendingRevocation[] = [];
    const outcome = await this.prisma.$transaction(async (tx) => {
      // The revocation lock first, before the audit chain's: lease commits in flight finish before, or are checked after.
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${REVOCATION_LOCK})`);
      const { count } = await tx.signalEvent.createMany({ data: [{ issuer: set.iss, jti: set.jti }], skipDuplicates: true });
      if (count === 0) {
        await this.audit.appendIn(tx, { type: 'signal.replayed', actor: set.iss, details: { jti: set.jti } });
        return { replayed: true, applied: [] as AppliedIntent[] };
      }
      const applied: AppliedIntent[] = [];
      for (const intent of intents) applied.push(await this.applyOne(intent, set, tx, revocations));
      // The effects and their audit row commit together.
      await this.audit.appendIn(tx, { type: 'signal.received', actor: set.iss, ...subjectOf(intents), details: { jti: set.jti, events: applied.map((a) => ({ ...a })) } });
      return { replayed: false, applied };
    });
    // Risk levels and revocation markers are cached for the exchange: this replica drops its copies now, the others when they hear of it.
    this.opts.freshness?.touch();
    this.revocations.afterCommit(revocations);
    if (outcome.replayed) this.#metrics.signal('none', 'replayed');
    for (const a of outcome.applied) this.#metrics.signal(eventLabel(a), 'applied');
    return outcome;
  }

  private async applyOne(intent: Intent, set: VerifiedSet, tx: Prisma.TransactionClient, revocations: PendingRevocation[]): Promise<AppliedIntent> {
    const base = { kind: intent.kind, eventType: intent.eventType };
    // For the token vault's providers' revoke_on: a session event, or an account event (RISC).
    const cause = intent.kind === 'revoke-session' ? ('session' as const) : intent.kind === 'revoke-user' ? ('account' as const) : undefined;
    const revoke = async (selectors: RevocationSelector[], reason: string) => {
      let revoked = 0;
      for (const selector of selectors) {
        const r = await this.revocations.revokeIn(selector, reason, tx, undefined, undefined, cause);
        revoked += r.revoked;
        revocations.push(r);
      }
      return { ...base, revoked };
    };
    // A session id may be the identity provider's even when the transmitter is another issuer: try each it speaks for.
    const issuers = (first: string) => [...new Set([first, ...set.subjectIssuers])];
    switch (intent.kind) {
      case 'revoke-session':
        if (intent.sid !== undefined) return revoke(issuers(intent.issuer).map((issuer) => ({ session: { issuer, sid: intent.sid! } })), `signal ${set.jti}: session revoked`);
        if (intent.sub !== undefined) return revoke([{ user: { issuer: intent.issuer, subject: intent.sub } }], `signal ${set.jti}: sessions revoked`);
        return revoke(issuers(intent.issuer).map((issuer) => ({ email: { issuer, email: intent.email! } })), `signal ${set.jti}: sessions revoked`);
      case 'revoke-user':
        if (intent.sub !== undefined) return revoke([{ user: { issuer: intent.issuer, subject: intent.sub } }], `signal ${set.jti}: account event`);
        return revoke(issuers(intent.issuer).map((issuer) => ({ email: { issuer, email: intent.email } })), `signal ${set.jti}: account event`);
      case 'risk-level': {
        if (intent.sub === undefined) return { ...base, revoked: 0, note: 'risk level for a subject Writ cannot name' };
        const level = intent.level.toLowerCase();
        // The Writ schema's User has `risk`, not assurance: an assurance level is audited only.
        if (intent.scale === 'assurance') return { ...base, revoked: 0, note: `assurance level ${level} (${intent.namespace ?? 'no namespace'}) audited` };
        const key = { issuer: intent.issuer, subject: intent.sub };
        const known = await tx.userRisk.findUnique({ where: { issuer_subject: key } });
        // Signals may arrive out of order: a level older than the one recorded does not replace it.
        if (known && known.updatedAt > set.iat) return { ...base, revoked: 0, note: `older than the recorded level (${known.level}); not applied` };
        await tx.userRisk.upsert({ where: { issuer_subject: key }, create: { ...key, level, updatedAt: set.iat }, update: { level, updatedAt: set.iat } });
        if (this.opts.riskRevokeLevels.map((l) => l.toLowerCase()).includes(level)) {
          return revoke([{ user: { issuer: intent.issuer, subject: intent.sub } }], `signal ${set.jti}: risk level ${level}`);
        }
        return { ...base, revoked: 0, note: `level recorded: ${level}` };
      }
      case 'unresolvable':
        return { ...base, revoked: 0, note: intent.reason };
      case 'ignored':
        return { ...base, revoked: 0, note: 'event type not acted on' };
    }
  }
}

/** An applied event's metric label: the last path segment of an event type Writ acts on (`session-revoked`), else `other`. */
function eventLabel(applied: AppliedIntent): string {
  if (applied.kind === 'ignored') return 'other';
  const last = applied.eventType.slice(applied.eventType.lastIndexOf('/') + 1);
  return /^[a-z0-9-]{1,64}$/.test(last) ? last : 'other';
}

/** The first user the SET names by subject, with the identity provider that names them (an `iss_sub` subject's `iss`, else the transmitter's). */
function subjectOf(intents: readonly Intent[]): { subject?: string; subjectIssuer?: string } {
  for (const i of intents) if ('sub' in i && typeof i.sub === 'string' && 'issuer' in i) return { subject: i.sub, subjectIssuer: i.issuer };
  return {};
}
