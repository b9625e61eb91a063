import type { AuditLog } from '../audit';
import type { PrismaClient } from '../db/generated/client';
import type { Revocations, RevocationSelector } from '../leases';
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
    private readonly opts: { riskRevokeLevels: readonly string[] },
  ) {}

  async apply(set: VerifiedSet): Promise<SignalOutcome> {
    const { count } = await this.prisma.signalEvent.createMany({ data: [{ issuer: set.iss, jti: set.jti }], skipDuplicates: true });
    if (count === 0) {
      await this.audit.append({ type: 'signal.replayed', actor: set.iss, details: { jti: set.jti } });
      return { replayed: true, applied: [] };
    }
    const applied: AppliedIntent[] = [];
    for (const intent of intentsOf(set)) applied.push(await this.applyOne(intent, set));
    await this.audit.append({
      type: 'signal.received',
      actor: set.iss,
      subject: subjectOf(intentsOf(set)),
      details: { jti: set.jti, events: applied.map((a) => ({ ...a })) },
    });
    return { replayed: false, applied };
  }

  private async applyOne(intent: Intent, set: VerifiedSet): Promise<AppliedIntent> {
    const base = { kind: intent.kind, eventType: intent.eventType };
    const revoke = async (selector: RevocationSelector, reason: string) => ({ ...base, revoked: await this.revocations.revoke(selector, reason) });
    switch (intent.kind) {
      case 'revoke-session':
        if (intent.sid !== undefined) return revoke({ session: { issuer: intent.issuer, sid: intent.sid } }, `signal ${set.jti}: session revoked`);
        if (intent.sub !== undefined) return revoke({ user: { issuer: intent.issuer, subject: intent.sub } }, `signal ${set.jti}: sessions revoked`);
        return { ...base, revoked: 0, note: 'subject by email: Writ keys leases by subject, not email' };
      case 'revoke-user':
        if (intent.sub !== undefined) return revoke({ user: { issuer: intent.issuer, subject: intent.sub } }, `signal ${set.jti}: account event`);
        return { ...base, revoked: 0, note: 'subject by email: Writ keys leases by subject, not email' };
      case 'risk-level': {
        if (intent.sub === undefined) return { ...base, revoked: 0, note: 'risk level for a subject Writ cannot name' };
        const level = intent.level.toLowerCase();
        // The Writ schema's User has `risk`, not assurance: an assurance level is audited only.
        if (intent.scale === 'assurance') return { ...base, revoked: 0, note: `assurance level ${level} (${intent.namespace ?? 'no namespace'}) audited` };
        await this.prisma.userRisk.upsert({
          where: { issuer_subject: { issuer: intent.issuer, subject: intent.sub } },
          create: { issuer: intent.issuer, subject: intent.sub, level },
          update: { level },
        });
        if (intent.scale === 'risk' && this.opts.riskRevokeLevels.map((l) => l.toLowerCase()).includes(level)) {
          return revoke({ user: { issuer: intent.issuer, subject: intent.sub } }, `signal ${set.jti}: risk level ${level}`);
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

function subjectOf(intents: readonly Intent[]): string | undefined {
  for (const i of intents) if ('sub' in i && typeof i.sub === 'string') return i.sub;
  return undefined;
}
