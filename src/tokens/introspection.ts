import type { AuditAppend } from '../audit';
import type { Clock } from '../core/clock';
import { withDeadline } from '../core/deadline';
import type { LeaseStore } from '../leases';
import type { ResourceStore } from '../resources';
import type { TrustBundle } from '../spiffe/bundle';
import { authenticateCaller, presentedClaims, tokenParam, type OAuthCaller } from './caller';
import { isOAuthError } from './errors';
import { isDpopBound, type AccessTokenClaims } from './access-token';

export interface IntrospectionDeps {
  issuer: string;
  leases: Pick<LeaseStore, 'activeSvid' | 'tokenAlive' | 'get'>;
  resources: Pick<ResourceStore, 'get'>;
  bundle: { current(): Promise<TrustBundle> };
  /** Where refusals are recorded (introspection.refused). */
  audit: AuditAppend;
  clock: Clock;
  /** The revocation bound: an introspection the database cannot answer within it is answered inactive. None: no deadline. */
  revocationBoundMs?: number;
}

/**
 * RFC 7662 §2.2: the answer; an active token's claims are returned as they were signed, `cnf`
 * as is (RFC 8705 §3.2, RFC 9449 §6.2), and `token_type` `DPoP` for a DPoP-bound token (RFC 9449 §6.2).
 */
export type IntrospectionResponse = { active: false } | ({ active: true; token_type: 'Bearer' | 'DPoP' } & AccessTokenClaims);

const INACTIVE: IntrospectionResponse = { active: false };

/**
 * Token introspection (RFC 7662): a resource introspects the tokens issued for itself; an admin,
 * any. A token is active only while its lease, and every lease up its chain, is neither expired
 * nor revoked. Fails closed: when the database or the keys cannot answer (within the revocation
 * bound), the token is not active.
 *
 * @example
 * const answer = await introspection.introspect({ admin: false, svid: peer }, { token });
 */
export class Introspection {
  constructor(private readonly deps: IntrospectionDeps) {}

  async introspect(caller: OAuthCaller, form: Record<string, unknown>): Promise<IntrospectionResponse> {
    try {
      const answer = this.answer(caller, form);
      return await (this.deps.revocationBoundMs === undefined ? answer : withDeadline(answer, this.deps.revocationBoundMs, 'introspection'));
    } catch (err) {
      if (isOAuthError(err)) throw err;
      return INACTIVE; // the database or the keys cannot answer: not active (fail closed)
    }
  }

  private async answer(presented: OAuthCaller, form: Record<string, unknown>): Promise<IntrospectionResponse> {
    const caller = await authenticateCaller(presented, this.deps, 'introspection needs the resource\'s X.509-SVID, a sign-in token of an auditor, or the admin token');
    const claims = await presentedClaims(tokenParam(form), this.deps);
    if (!claims) return INACTIVE;
    if (caller !== 'admin' && !(await this.isTokensResource(caller, claims))) return INACTIVE;
    if (!(await this.deps.leases.tokenAlive(claims.jti, this.deps.clock.now()))) return INACTIVE;
    return { active: true, token_type: isDpopBound(claims.cnf) ? 'DPoP' : 'Bearer', ...claims };
  }

  /** RFC 7662 §4: a resource learns only about tokens meant for it; any other asking is refused (as inactive) and audited. */
  private async isTokensResource(caller: { spiffeId: string }, claims: AccessTokenClaims): Promise<boolean> {
    const resource = await this.deps.resources.get(claims.aud);
    if (resource && resource.spiffeId === caller.spiffeId) return true;
    // The token names its user by `sub` only; the lease keeps the identity provider that names them.
    const subjectIssuer = (await this.deps.leases.get(claims.jti))?.subjectIssuer ?? undefined;
    await this.deps.audit({ type: 'introspection.refused', subject: claims.sub, subjectIssuer, actor: caller.spiffeId, details: { jti: claims.jti, aud: claims.aud, reason: 'not the token\'s resource' } });
    return false;
  }
}

