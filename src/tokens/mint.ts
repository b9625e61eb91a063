/**
 * Writ's access tokens: JWTs in the JWT access token profile (RFC 9068), bound to the
 * connector's X.509-SVID (RFC 8705 §3.1 `cnf.x5t#S256`), naming the acting connector chain
 * in `act` (RFC 8693 §4.1) and carrying the granted `authorization_details` (RFC 9396 §9.1).
 *
 * ```ts
 * const { token, jti, expiresAt, claims } = await mintAccessToken(
 *   { issuer, subject: user.sub, audience: resource.uri, clientId: connector, clientCertificate: svid.raw,
 *     authorizationDetails: granted, taskId, sid: user.sid,
 *     lifetime: { maximum: 3600, certificateNotAfter: svid.notAfter, subjectTokenExpiresAt: user.exp } },
 *   jwtSigningKey, clock, random);
 * const verified = await verifyAccessToken(token, bundle.jwtAuthorities, { issuer, clock });
 * ```
 */
import { createHash, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { base64url, type JSONWebKeySet, type JWK, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import { StaticJwks, type KeySource } from '../attestation/jwks';
import { verificationFailureReason, verifyJwtWithKeys } from '../attestation/oidc';
import { validateAuthorizationDetails, type McpToolDetail } from './authorization-details';
import { AccessDenied, InvalidGrant, InvalidRequest, OAuthError, oauthError } from './errors';

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_JWT_TYPE = 'at+jwt';
/** The only algorithm Writ signs access tokens with. */
export const ACCESS_TOKEN_ALGORITHM = 'ES256';
/** Lifetime of a token when the request names none, in seconds. */
export const DEFAULT_ACCESS_TOKEN_LIFETIME = 300;
/** Deeper `act` nesting than this is refused when verifying (the configured chain depth is far lower). */
export const MAX_ACT_NESTING = 16;

/** RFC 8693 §4.1: the actor, and the actor before it in a delegation chain. */
export interface Act {
  readonly sub: string;
  readonly act?: Act;
}

/** RFC 8705 §3.1: the token is bound to the certificate whose DER hashes to this. */
export interface Confirmation {
  readonly 'x5t#S256': string;
}

/** The claims of a Writ access token (RFC 9068 §2.2). */
export interface AccessTokenClaims {
  readonly iss: string;
  /** The end user. */
  readonly sub: string;
  /** The one resource (RFC 8707) the token is for. */
  readonly aud: string;
  /** The connector's SPIFFE ID (RFC 9068 §2.2, RFC 8693 §4.3). */
  readonly client_id: string;
  /** The connector acting for the user, nesting the connectors before it. */
  readonly act: Act;
  readonly cnf: Confirmation;
  readonly authorization_details: readonly McpToolDetail[];
  readonly task_id: string;
  /** The user's session at the identity provider, when the subject token named one. */
  readonly sid?: string;
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
}

/**
 * RFC 8705 §3.1: `x5t#S256`, the base64url-encoded (no padding) SHA-256 of the DER encoding
 * of an X.509 certificate — what `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url` prints.
 */
export function certificateThumbprint(der: Uint8Array): string {
  return base64url.encode(createHash('sha256').update(der).digest());
}

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
  /** The connector's X.509-SVID: a token bound to a certificate never outlives it. */
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
  certificate: 'the client certificate (X.509-SVID) expires now or has expired; renew it and ask again',
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

export interface MintInput {
  /** Writ's issuer identifier (RFC 8414 `issuer`). */
  readonly issuer: string;
  /** The user: the subject token's `sub`. */
  readonly subject: string;
  /** The one resource URI the token is for. */
  readonly audience: string;
  /** The connector's SPIFFE ID, from its client certificate. */
  readonly clientId: string;
  /** The DER of the connector's client certificate (X.509-SVID), to which the token is bound. */
  readonly clientCertificate: Uint8Array;
  /** For a chained token, the parent token's `act`: it is nested under the current connector. */
  readonly parentAct?: Act;
  /** What policy granted: never empty. */
  readonly authorizationDetails: readonly McpToolDetail[];
  readonly taskId: string;
  /** The user's session id from the subject token, when present. */
  readonly sid?: string;
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

/**
 * Signs an access token (RFC 9068 §2): header `{alg: ES256, typ: at+jwt, kid}`; claims `iss`,
 * `sub`, `aud`, `client_id`, `act` (RFC 8693 §4.1, chained under `parentAct`), `cnf`
 * (RFC 8705 §3.1), `authorization_details` (RFC 9396 §9.1), `task_id`, `sid`, `iat`, `exp`
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
    cnf: { 'x5t#S256': certificateThumbprint(input.clientCertificate) },
    authorization_details: input.authorizationDetails,
    task_id: input.taskId,
    ...(input.sid !== undefined ? { sid: input.sid } : {}),
    iat: seconds(lifetime.issuedAt),
    exp: seconds(lifetime.expiresAt),
    jti,
  };
  const token = signCompactEs256({ alg: key.alg, typ: ACCESS_TOKEN_JWT_TYPE, kid: key.kid }, claims, key.privateKey);
  return { token, jti, issuedAt: lifetime.issuedAt, expiresAt: lifetime.expiresAt, expiresIn: lifetime.seconds, claims };
}

// ---------------------------------------------------------------------------------------
// Verifying (chaining, introspection, resource servers).
// ---------------------------------------------------------------------------------------

/** A public key of the bundle (`jwtAuthorities` of the trust bundle). */
export interface AccessTokenVerificationKey {
  readonly kid: string;
  readonly publicJwk: JsonWebKey;
}

export interface VerifyAccessTokenOptions {
  /** Writ's issuer identifier: `iss` must equal it. */
  readonly issuer: string;
  readonly clock: Clock;
  /** When given, `aud` must equal it (a resource server checks its own URI). */
  readonly audience?: string;
  /** Tolerance for `exp`, `nbf` and `iat`, in seconds; 0 by default (Writ verifies its own tokens). */
  readonly clockSkew?: number;
  /** The error code refusals carry: `invalid_grant` (a subject token, the default) or `invalid_token` (RFC 6750, at a resource server). */
  readonly errorCode?: 'invalid_grant' | 'invalid_token';
}

const isKeySource = (keys: unknown): keys is KeySource => typeof keys === 'object' && keys !== null && typeof (keys as KeySource).getKey === 'function';

/**
 * Tokens whose signature and claims were verified under a list of keys (a bundle's): a
 * resource that introspects the same token on every tool call costs one signature check.
 * A new bundle is a new list, so a retired key's tokens are checked again (and refused).
 */
const verifiedTokens = new WeakMap<readonly AccessTokenVerificationKey[], Map<string, AccessTokenClaims>>();
const VERIFIED_TOKENS_KEPT = 5000;

function verifiedTokensOf(keys: readonly AccessTokenVerificationKey[]): Map<string, AccessTokenClaims> {
  let map = verifiedTokens.get(keys);
  if (!map) verifiedTokens.set(keys, (map = new Map()));
  return map;
}

/** One key source per list of keys (a bundle's): jose imports each key once and keeps it, instead of on every verification. */
const keySources = new WeakMap<readonly AccessTokenVerificationKey[], KeySource>();

function keySourceOf(keys: readonly AccessTokenVerificationKey[]): KeySource {
  let source = keySources.get(keys);
  if (!source) {
    const jwks: JSONWebKeySet = { keys: keys.map((k): JWK => ({ ...(k.publicJwk as JWK), kid: k.kid, alg: ACCESS_TOKEN_ALGORITHM, use: 'sig' })) };
    source = new StaticJwks(jwks);
    keySources.set(keys, source);
  }
  return source;
}

/**
 * Verifies a Writ access token: signature by one of `publicKeys` (the bundle's JWT authorities,
 * or a {@link KeySource}), `alg` ES256, `typ` at+jwt (RFC 9068 §4: so that an ID token or a
 * JWT-SVID signed by the same key is not taken for an access token), `iss` exact, `exp`, and
 * the claims' shapes. Throws {@link InvalidGrant} (or {@link OAuthError} `invalid_token`)
 * naming the rule broken. A valid signature does not mean the lease is alive: ask the lease store.
 */
export async function verifyAccessToken(
  token: string,
  publicKeys: readonly AccessTokenVerificationKey[] | KeySource,
  options: VerifyAccessTokenOptions,
): Promise<AccessTokenClaims> {
  const code = options.errorCode ?? 'invalid_grant';
  const refuse = (reason: string, cause?: unknown): OAuthError => oauthError(code, `access token: ${reason}`, cause === undefined ? undefined : { cause });
  if (typeof token !== 'string' || token === '') throw refuse('no token');
  if (token.length > 32 * 1024) throw refuse('the token is longer than 32768 characters');
  const verified = isKeySource(publicKeys) ? undefined : verifiedTokensOf(publicKeys);
  const known = verified?.get(token);
  if (known) {
    // The signature was checked under these very keys; the time-dependent and per-caller rules are checked again.
    const now = Math.floor(options.clock.now().getTime() / 1000);
    const skew = options.clockSkew ?? 0;
    if (known.iss === options.issuer && (options.audience === undefined || known.aud === options.audience) && known.exp > now - skew) return known;
  }
  const keys = isKeySource(publicKeys) ? publicKeys : keySourceOf(publicKeys);
  const verifyOptions: JWTVerifyOptions = {
    issuer: options.issuer,
    ...(options.audience !== undefined ? { audience: options.audience } : {}),
    algorithms: [ACCESS_TOKEN_ALGORITHM],
    typ: ACCESS_TOKEN_JWT_TYPE,
    clockTolerance: options.clockSkew ?? 0,
    currentDate: options.clock.now(),
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
  };
  let payload: JWTPayload;
  try {
    payload = await verifyJwtWithKeys(token, keys, verifyOptions);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (err as { claim?: unknown }).claim === 'typ')
      throw refuse(`the token is not a JWT access token ("typ" must be "${ACCESS_TOKEN_JWT_TYPE}", RFC 9068 §2.1)`, err);
    const reason = verificationFailureReason(err, token, { audience: options.audience ?? '', algorithms: [ACCESS_TOKEN_ALGORITHM] });
    throw refuse(reason.replace(/the issuer's/g, "Writ's").replace(/of the issuer/g, 'of Writ').replace(/for this issuer/g, 'for Writ access tokens'), err);
  }
  const claims = accessTokenClaimsOf(payload, refuse);
  if (verified && payload.nbf === undefined) {
    if (verified.size >= VERIFIED_TOKENS_KEPT) verified.clear();
    verified.set(token, claims);
  }
  return claims;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

/**
 * An `act` claim (RFC 8693 §4.1): `{sub, act?}` nested at most {@link MAX_ACT_NESTING} deep.
 * Members other than `sub` and `act` are dropped (RFC 8693 §4.1 allows other identity claims;
 * Writ puts none there). Returns undefined for anything else.
 */
export function parseAct(value: unknown, maxNesting = MAX_ACT_NESTING): Act | undefined {
  if (!isRecord(value) || !nonEmpty(value.sub) || maxNesting < 1) return undefined;
  if (value.act === undefined) return { sub: value.sub };
  const inner = parseAct(value.act, maxNesting - 1);
  return inner === undefined ? undefined : { sub: value.sub, act: inner };
}

const X5T_S256 = /^[A-Za-z0-9_-]{43}$/;

function accessTokenClaimsOf(payload: JWTPayload, refuse: (reason: string, cause?: unknown) => OAuthError): AccessTokenClaims {
  const { iss, sub, aud, client_id, act, cnf, authorization_details, task_id, sid, iat, exp, jti } = payload as Record<string, unknown>;
  if (!nonEmpty(sub)) throw refuse('"sub" must be a non-empty string');
  if (!nonEmpty(aud)) throw refuse('"aud" must be one resource URI');
  if (!nonEmpty(client_id)) throw refuse('"client_id" must be a non-empty string (RFC 9068 §2.2)');
  if (!nonEmpty(jti)) throw refuse('"jti" must be a non-empty string');
  if (!nonEmpty(task_id)) throw refuse('"task_id" must be a non-empty string');
  if (sid !== undefined && !nonEmpty(sid)) throw refuse('"sid" must be a non-empty string');
  const actor = parseAct(act);
  if (actor === undefined) throw refuse(`"act" must be {"sub": …} nested at most ${MAX_ACT_NESTING} deep (RFC 8693 §4.1)`);
  if (actor.sub !== client_id) throw refuse('"act.sub" must be the "client_id"');
  if (!isRecord(cnf) || typeof cnf['x5t#S256'] !== 'string' || !X5T_S256.test(cnf['x5t#S256']))
    throw refuse('"cnf" must hold an "x5t#S256" certificate thumbprint (RFC 8705 §3.1)');
  let details: McpToolDetail[];
  try {
    details = validateAuthorizationDetails(authorization_details);
  } catch (err) {
    throw refuse(`"authorization_details" is malformed: ${(err as Error).message}`, err);
  }
  return {
    iss: iss as string,
    sub,
    aud,
    client_id,
    act: actor,
    cnf: { 'x5t#S256': cnf['x5t#S256'] },
    authorization_details: details,
    task_id,
    ...(sid !== undefined ? { sid: sid as string } : {}),
    iat: iat as number,
    exp: exp as number,
    jti,
  };
}
