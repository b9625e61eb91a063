import type { Clock } from '../core/clock';
import { liveSvidLease, type LeaseStore, type PresentedSvid } from '../leases';
import type { TrustBundle } from '../spiffe/bundle';
import { InvalidClient, InvalidRequest, isOAuthError } from './errors';
import type { AccessTokenClaims } from './access-token';
import { verifyAccessToken } from './verify';

/**
 * Who calls introspection or revocation: the admin (its bearer credential checked by the HTTP
 * layer), or the TLS client's X.509-SVID (its chain verified by TLS; liveness checked here).
 */
/** An admin (`principal`: "admin" for the bootstrap token, `user:<iss>#<sub>` for a person with a role), or a TLS client with its SVID. */
export type OAuthCaller = { readonly admin: true; readonly principal: string } | { readonly admin: false; readonly svid: PresentedSvid | undefined };

/** The caller as the endpoint's rules see it: "admin", or the live SVID's SPIFFE ID. */
export type AuthenticatedCaller = 'admin' | { readonly spiffeId: string };

/** The admin caller. */
export const ADMIN_CALLER: OAuthCaller = { admin: true, principal: 'admin' };

/** RFC 7662 §2.1, RFC 7009 §2.1: the caller authenticates (here: mTLS with a live SVID, or the admin credential). */
export async function authenticateCaller(caller: OAuthCaller, deps: { leases: Pick<LeaseStore, 'activeSvid'>; clock: Clock }, refusal: string): Promise<AuthenticatedCaller> {
  if (caller.admin) return 'admin';
  const lease = caller.svid ? await liveSvidLease(deps.leases, caller.svid, deps.clock.now()) : undefined;
  if (!lease) throw new InvalidClient(refusal);
  return { spiffeId: caller.svid!.spiffeId };
}

/** The `token` parameter (RFC 7662 §2.1, RFC 7009 §2.1), given once. */
export function tokenParam(form: Record<string, unknown>): string {
  const token = form.token;
  if (typeof token !== 'string' || token.length === 0 || token.length > 16 * 1024) throw new InvalidRequest('token is required, once');
  return token;
}

/**
 * The claims of an access token this broker issued, or undefined for one that does not verify
 * (expired, forged, another issuer's). Keys that cannot be read throw: never a false answer.
 */
export async function presentedClaims(token: string, deps: { issuer: string; bundle: { current(): Promise<TrustBundle> }; clock: Clock }): Promise<AccessTokenClaims | undefined> {
  const keys = (await deps.bundle.current()).jwtAuthorities;
  try {
    return await verifyAccessToken(token, keys, { issuer: deps.issuer, clock: deps.clock, errorCode: 'invalid_token' });
  } catch (err) {
    if (!isOAuthError(err)) throw err;
    return undefined;
  }
}
