/**
 * Minting Writ's access tokens (RFC 9068 §2): the lifetime from its bounds, the claims, and
 * an ES256 signature with the broker's JWT signing key.
 *
 * ```ts
 * const { token, jti, expiresAt, claims } = await mintAccessToken(
 *   { issuer, subject: user.sub, audience: resource.uri, clientId: connector, clientCertificate: svid.raw,
 *     authorizationDetails: granted, taskId, sid: user.sid,
 *     lifetime: { maximum: 3600, certificateNotAfter: svid.notAfter, subjectTokenExpiresAt: user.exp } },
 *   jwtSigningKey, clock, random);
 * ```
 */
import { sign, type KeyObject } from 'node:crypto';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import { ACCESS_TOKEN_JWT_TYPE, certificateThumbprint, type AccessTokenClaims, type Act, type Confirmation } from './access-token';
import type { McpToolDetail } from './authorization-details';
import { AccessDenied, InvalidGrant, InvalidRequest } from './errors';

/** Lifetime of a token when the request names none, in seconds. */
export const DEFAULT_ACCESS_TOKEN_LIFETIME = 300;

/**
 * A JWS in compact serialization (RFC 7515 §7.1) signed with ES256 (RFC 7518 §3.4: the
 * 64-octet R || S), by node:crypto on the calling thread. jose signs through WebCrypto, whose
 * per-call overhead was an eighth of the exchange's CPU; jose still verifies every token.
 */
function signCompactEs256(header: { alg: 'ES256'; typ: string; kid: string }, payload: object, key: KeyObject): string {
  if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('an ES256 signing key must be an EC P-256 private key');
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

// ---------------------------------------------------------------------------------------
// Lifetime.
// ---------------------------------------------------------------------------------------

/** What bounds a token's lifetime; the earliest wins. */
export interface LifetimeBounds {
  /** Seconds the client asked for, if it did. */
  readonly requested?: number;
  /** Seconds when the client asks for none: {@link DEFAULT_ACCESS_TOKEN_LIFETIME} unless configured. */
  readonly default?: number;
  /** The configured longest lifetime, in seconds. */
  readonly maximum: number;
  /** The connector's credential (its X.509-SVID, or the JWT-SVID it authenticated with): a token never outlives it. */
  readonly certificateNotAfter: Date;
  /** The subject token's `exp`: the user's identity never outlives its proof. */
  readonly subjectTokenExpiresAt: Date;
  /** For a chained token, the parent token's `exp`. */
  readonly parentTokenExpiresAt?: Date;
}

/** Which bound decided a token's expiry. */
export type LifetimeBound = 'requested' | 'default' | 'maximum' | 'certificate' | 'subject_token' | 'parent_token';

export interface Lifetime {
  /** `iat`: now, in whole seconds. */
  readonly issuedAt: Date;
  /** `exp`. */
  readonly expiresAt: Date;
  /** `exp - iat`, seconds, > 0. */
  readonly seconds: number;
  readonly boundBy: LifetimeBound;
}

const EXPIRED: Record<LifetimeBound, string> = {
  requested: 'the requested lifetime is not positive',
  default: 'the default token lifetime is not positive',
  maximum: 'the configured maximum token lifetime is not positive',
  certificate: 'the client certificate (X.509-SVID), or the JWT-SVID the client authenticated with, expires now or has expired; renew it and ask again',
  subject_token: 'the subject token expires now or has expired',
  parent_token: 'the parent token (the subject token being chained) expires now or has expired',
};

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

/**
 * The token's `iat` and `exp` (whole seconds, RFC 7519 §2 NumericDate): the requested
 * lifetime or the default (300 s), capped by the configured maximum, and never past the
 * SVID's notAfter, the subject token's `exp` or, chained, the parent token's `exp`. Throws
 * {@link InvalidRequest} for a requested lifetime that is not a positive whole number, and
 * {@link InvalidGrant} when the result would not be positive.
 */
export function tokenLifetime(now: Date, bounds: LifetimeBounds): Lifetime {
  const { requested } = bounds;
  if (requested !== undefined && (!Number.isSafeInteger(requested) || requested <= 0))
    throw new InvalidRequest('the requested token lifetime must be a positive whole number of seconds');
  const iat = seconds(now);
  const wanted: [LifetimeBound, number] = requested !== undefined ? ['requested', requested] : ['default', bounds.default ?? DEFAULT_ACCESS_TOKEN_LIFETIME];
  const candidates: [LifetimeBound, number][] = [
    [wanted[0], iat + wanted[1]],
    ['maximum', iat + bounds.maximum],
    ['certificate', seconds(bounds.certificateNotAfter)],
    ['subject_token', seconds(bounds.subjectTokenExpiresAt)],
  ];
  if (bounds.parentTokenExpiresAt !== undefined) candidates.push(['parent_token', seconds(bounds.parentTokenExpiresAt)]);
  // The earliest bound wins; on a tie, the first listed (what was asked for, then the cap) names it.
  let [boundBy, exp] = candidates[0]!;
  for (const [bound, at] of candidates.slice(1)) if (!(at >= exp)) [boundBy, exp] = [bound, at];
  if (!Number.isFinite(exp)) throw new Error('token lifetime bounds must be finite');
  if (exp - iat <= 0) throw new InvalidGrant(EXPIRED[boundBy]);
  return { issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000), seconds: exp - iat, boundBy };
}

// ---------------------------------------------------------------------------------------
// Minting.
// ---------------------------------------------------------------------------------------

/**
 * What the token is bound to, exactly one: the DER of the connector's client certificate
 * (X.509-SVID, RFC 8705 §3.1 `x5t#S256`) or the thumbprint of its DPoP key (RFC 9449 §6.1 `jkt`).
 */
export type MintBinding = { readonly clientCertificate: Uint8Array; readonly dpopJkt?: never } | { readonly dpopJkt: string; readonly clientCertificate?: never };

export type MintInput = MintBinding & MintFields;

export interface MintFields {
  /** Writ's issuer identifier (RFC 8414 `issuer`). */
  readonly issuer: string;
  /** The user: the subject token's `sub`. */
  readonly subject: string;
  /** The one resource URI the token is for. */
  readonly audience: string;
  /** The connector's SPIFFE ID, from its client certificate or its JWT-SVID client assertion. */
  readonly clientId: string;
  /** For a chained token, the parent token's `act`: it is nested under the current connector. */
  readonly parentAct?: Act;
  /** What policy granted: never empty. */
  readonly authorizationDetails: readonly McpToolDetail[];
  readonly taskId: string;
  /** The user's session id from the subject token, when present. */
  readonly sid?: string;
  /** The granted tools that need a per-call decision (`per_call`); none when empty or not given. */
  readonly perCall?: readonly string[];
  readonly lifetime: LifetimeBounds;
}

/** The ES256 key that signs tokens (the broker's JWT signing key fits). */
export interface AccessTokenSigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly alg: 'ES256';
}

export interface MintedAccessToken {
  /** The JWT, JWS Compact Serialization. */
  readonly token: string;
  readonly jti: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** `exp - iat`: the response's `expires_in`. */
  readonly expiresIn: number;
  readonly claims: AccessTokenClaims;
}

const JKT = /^[A-Za-z0-9_-]{43}$/;

/** The `cnf` claim: exactly one binding (no unbound bearer token is ever minted). */
function confirmationOf(binding: MintBinding): Confirmation {
  const { clientCertificate, dpopJkt } = binding as { clientCertificate?: Uint8Array; dpopJkt?: string };
  if ((clientCertificate === undefined) === (dpopJkt === undefined)) throw new Error('an access token is bound to exactly one of a client certificate or a DPoP key');
  if (dpopJkt !== undefined) {
    if (!JKT.test(dpopJkt)) throw new Error('a DPoP key thumbprint is the base64url SHA-256 of the key (RFC 7638)');
    return { jkt: dpopJkt }; // RFC 9449 §6.1
  }
  return { 'x5t#S256': certificateThumbprint(clientCertificate!) }; // RFC 8705 §3.1
}

/**
 * Signs an access token (RFC 9068 §2): header `{alg: ES256, typ: at+jwt, kid}`; claims `iss`,
 * `sub`, `aud`, `client_id`, `act` (RFC 8693 §4.1, chained under `parentAct`), `cnf`
 * (RFC 8705 §3.1 or RFC 9449 §6.1), `authorization_details` (RFC 9396 §9.1), `task_id`, `sid`, `per_call`, `iat`, `exp`
 * and a random `jti`. The lifetime is {@link tokenLifetime}'s.
 */
export async function mintAccessToken(input: MintInput, key: AccessTokenSigningKey, clock: Clock, random: Random): Promise<MintedAccessToken> {
  if (input.authorizationDetails.length === 0) throw new AccessDenied('nothing was granted');
  const lifetime = tokenLifetime(clock.now(), input.lifetime);
  const jti = random.uuid();
  const claims: AccessTokenClaims = {
    iss: input.issuer,
    sub: input.subject,
    aud: input.audience,
    client_id: input.clientId,
    act: input.parentAct === undefined ? { sub: input.clientId } : { sub: input.clientId, act: input.parentAct },
    cnf: confirmationOf(input),
    authorization_details: input.authorizationDetails,
    task_id: input.taskId,
    ...(input.sid !== undefined ? { sid: input.sid } : {}),
    ...(input.perCall !== undefined && input.perCall.length > 0 ? { per_call: [...input.perCall] } : {}),
    iat: seconds(lifetime.issuedAt),
    exp: seconds(lifetime.expiresAt),
    jti,
  };
  const token = signCompactEs256({ alg: key.alg, typ: ACCESS_TOKEN_JWT_TYPE, kid: key.kid }, claims, key.privateKey);
  return { token, jti, issuedAt: lifetime.issuedAt, expiresAt: lifetime.expiresAt, expiresIn: lifetime.seconds, claims };
}
