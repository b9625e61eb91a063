import type { AuditAppend } from '../audit';
import type { Clock } from '../core/clock';
import type { LeaseStore, Revocations } from '../leases';
import type { TrustBundle } from '../spiffe/bundle';
import { authenticateCaller, presentedClaims, tokenParam, type OAuthCaller } from './caller';

export interface TokenRevocationDeps {
  issuer: string;
  leases: Pick<LeaseStore, 'activeSvid' | 'get'>;
  revocations: Pick<Revocations, 'revoke'>;
  bundle: { current(): Promise<TrustBundle> };
  /** Where refusals are recorded (token.revoke_refused); a revocation's own event commits with it. */
  audit: AuditAppend;
  clock: Clock;
}

/**
 * Token revocation (RFC 7009): by the token's own connector or an admin (an operator signed in, or the bootstrap token). Unknown, expired and
 * forged tokens are answered like revoked ones (RFC 7009 §2.2); a revocation is durable, with its
 * audit event, before it resolves. Keys that cannot be read throw: never a false acknowledgement.
 *
 * @example
 * await tokenRevocation.revoke({ admin: false, svid: peer }, { token }); // then 200
 */
export class TokenRevocation {
  constructor(private readonly deps: TokenRevocationDeps) {}

  async revoke(presented: OAuthCaller, form: Record<string, unknown>): Promise<void> {
    const caller = await authenticateCaller(presented, this.deps, 'revocation needs the connector\'s X.509-SVID, a sign-in token of an operator, or the admin token');
    const token = tokenParam(form);
    // An expired token needs no revoking; a forged one names nothing (RFC 7009 §2.2: 200 all the same).
    const claims = await presentedClaims(token, this.deps);
    if (!claims) return;
    const principal = caller === 'admin' && presented.admin ? presented.principal : (caller as { spiffeId: string }).spiffeId;
    // The token names its user by `sub` only; the lease keeps the identity provider that names them.
    const subjectIssuer = (await this.deps.leases.get(claims.jti))?.subjectIssuer ?? undefined;
    if (caller !== 'admin' && claims.client_id !== caller.spiffeId) {
      // RFC 7009 §2.1: the server verifies that the token was issued to the client asking.
      await this.deps.audit({ type: 'token.revoke_refused', subject: claims.sub, subjectIssuer, actor: principal, details: { jti: claims.jti, reason: 'not the token\'s connector' } });
      return;
    }
    // The revocation and its audit event commit together, before the answer.
    const event = (revoked: number) => (revoked > 0 ? ({ type: 'token.revoked', subject: claims.sub, subjectIssuer, actor: principal, details: { jti: claims.jti, taskId: claims.task_id } } as const) : undefined);
    await this.deps.revocations.revoke({ jti: claims.jti }, `revoked by ${principal}`, undefined, principal, event);
  }
}
