/**
 * JWT-SVID client authentication at the token endpoint (draft-ietf-oauth-spiffe-client-auth,
 * a profile of RFC 7521 / RFC 7523): `client_assertion_type` is {@link JWT_SPIFFE_ASSERTION_TYPE}
 * and `client_assertion` a JWT-SVID this broker issued. Pure: keys from the trust bundle
 * passed in; liveness (the JWT-SVID's lease, its entry) is the caller's.
 *
 * ```ts
 * const svid = await verifyClientAssertion(form, { issuer, bundle: await bundle.current(), clock });
 * // svid.spiffeId, svid.jti (its lease), svid.expiresAt
 * ```
 */
import { decodeProtectedHeader, type JWTPayload } from 'jose';
import type { Clock } from '../core/clock';
import { JwtError, MAX_TOKEN_LENGTH, verifyJwt } from '../jwt';
import type { TrustBundle } from '../spiffe/bundle';
import { InvalidClient, InvalidRequest } from './errors';
import { bundleKeySource } from './verify';

/** draft-ietf-oauth-spiffe-client-auth: the `client_assertion_type` of a JWT-SVID (RFC 7521 §4.2). */
export const JWT_SPIFFE_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';
/**
 * The `token_endpoint_auth_methods_supported` name of JWT-SVID client authentication (RFC 8414 §2).
 * The draft's IANA section registers it; kept in one place should a later revision rename it.
 */
export const JWT_SPIFFE_AUTH_METHOD = 'spiffe_jwt';

/** How the client authenticated, as audit records and policy see it. */
export type ClientAuthMethod = 'tls_client_auth' | 'jwt-spiffe';

/** A verified JWT-SVID client assertion. */
export interface ClientAssertion {
  /** `sub`: the client's SPIFFE ID. */
  readonly spiffeId: string;
  /** `jti`: the id of the JWT-SVID's lease. */
  readonly jti: string;
  readonly expiresAt: Date;
}

/** JWT-SVID §2: `typ`, when present, is `JWT` or `JOSE` (an access token, `at+jwt`, or a DPoP proof is not a JWT-SVID). */
const SVID_TYPES = new Set([undefined, 'JWT', 'JOSE']);

const single = (form: Record<string, unknown>, name: string): string | undefined => {
  const value = form[name];
  if (Array.isArray(value)) throw new InvalidRequest(`${name} is given more than once`);
  return typeof value === 'string' ? value : undefined;
};

/** Whether the request carries a client assertion (or its type): then it authenticates with one. */
export const hasClientAssertion = (form: Record<string, unknown>): boolean => form.client_assertion !== undefined || form.client_assertion_type !== undefined;

/**
 * draft-ietf-oauth-spiffe-client-auth (JWT-SVID): the assertion is signed by a JWT authority
 * of the current trust bundle, its `aud` is this broker's issuer identifier and nothing else
 * (one value), `sub` is a SPIFFE ID of the bundle's trust domain, `exp` has not passed, and it
 * has a `jti` (Writ needs it to find the SVID's lease). `client_id`, when given, must be `sub`
 * (RFC 7521 §4.2). Every refusal is {@link InvalidClient} (RFC 6749 §5.2, 401), naming the rule.
 */
export async function verifyClientAssertion(form: Record<string, unknown>, deps: { issuer: string; bundle: TrustBundle; clock: Clock }): Promise<ClientAssertion> {
  const type = single(form, 'client_assertion_type');
  const assertion = single(form, 'client_assertion');
  const clientId = single(form, 'client_id');
  if (type !== JWT_SPIFFE_ASSERTION_TYPE) throw new InvalidClient(`client_assertion_type must be ${JWT_SPIFFE_ASSERTION_TYPE} (draft-ietf-oauth-spiffe-client-auth)`);
  if (assertion === undefined || assertion === '') throw new InvalidClient('client_assertion is missing (RFC 7521 §4.2)');
  if (assertion.length > MAX_TOKEN_LENGTH) throw new InvalidClient(`client_assertion is longer than ${MAX_TOKEN_LENGTH} characters`);
  let typ: unknown;
  try {
    typ = decodeProtectedHeader(assertion).typ;
  } catch (err) {
    throw new InvalidClient('client_assertion is not a JWT (RFC 7523 §3)', { cause: err });
  }
  if (!SVID_TYPES.has(typ as string | undefined)) throw new InvalidClient('client_assertion is not a JWT-SVID ("typ" must be JWT or JOSE, JWT-SVID §2)');
  let payload: JWTPayload;
  try {
    payload = await verifyJwt(assertion, bundleKeySource(deps.bundle.jwtAuthorities), {
      algorithms: ['ES256'],
      currentDate: deps.clock.now(),
      clockTolerance: 0,
      requiredClaims: ['sub', 'aud', 'exp', 'jti'],
    });
  } catch (err) {
    if (!(err instanceof JwtError)) throw err;
    if (err.reason === 'keys-unavailable') throw err; // 503: the assertion may well be good
    throw new InvalidClient(`client_assertion: ${err.message.replace(/the issuer's keys/g, "this trust domain's JWT authorities").replace(/of the issuer/g, 'of this trust domain')}`, { cause: err });
  }
  const { sub, aud, jti, exp } = payload;
  // draft-ietf-oauth-spiffe-client-auth: the audience is the authorization server's issuer identifier only.
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (audiences.length !== 1) throw new InvalidClient('client_assertion: "aud" must be this broker\'s issuer identifier alone, one audience (draft-ietf-oauth-spiffe-client-auth)');
  if (audiences[0] !== deps.issuer) throw new InvalidClient('client_assertion: "aud" is not this broker\'s issuer identifier (RFC 7523 §3)');
  if (typeof sub !== 'string' || !sub.startsWith(`spiffe://${deps.bundle.trustDomain}/`)) throw new InvalidClient(`client_assertion: "sub" is not a SPIFFE ID of ${deps.bundle.trustDomain} (JWT-SVID §3.1)`);
  if (typeof jti !== 'string' || jti === '') throw new InvalidClient('client_assertion: "jti" is required to find the JWT-SVID');
  if (clientId !== undefined && clientId !== sub) throw new InvalidClient('client_id is not the client assertion\'s "sub" (RFC 7521 §4.2)');
  return { spiffeId: sub, jti, expiresAt: new Date((exp as number) * 1000) };
}
