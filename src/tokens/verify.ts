/**
 * Verifying Writ's access tokens (RFC 9068 §4), for chaining, introspection and resource
 * servers (the MCP middleware): signature with the bundle's keys, `typ`, `iss`, `aud`, `exp`,
 * and the shapes of Writ's claims.
 *
 * ```ts
 * const verified = await verifyAccessToken(token, bundle.jwtAuthorities, { issuer, clock });
 * ```
 */
import type { JsonWebKey } from 'node:crypto';
import type { JSONWebKeySet, JWK, JWTPayload, JWTVerifyOptions } from 'jose';
import type { Clock } from '../core/clock';
import { JwtError, MAX_TOKEN_LENGTH, StaticJwks, verifyJwt, type KeySource } from '../jwt';
import { ACCESS_TOKEN_ALGORITHM, ACCESS_TOKEN_JWT_TYPE, MAX_ACT_NESTING, type AccessTokenClaims, type Act, type Confirmation } from './access-token';
import { validateAuthorizationDetails, type McpToolDetail } from './authorization-details';
import { OAuthError, oauthError } from './errors';


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

/** The bundle's JWT authorities as a key source (ES256), one per list of keys: for access tokens and JWT-SVID client assertions. */
export function bundleKeySource(keys: readonly AccessTokenVerificationKey[]): KeySource {
  return keySourceOf(keys);
}

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
  if (token.length > MAX_TOKEN_LENGTH) throw refuse(`the token is longer than ${MAX_TOKEN_LENGTH} characters`);
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
    payload = await verifyJwt(token, keys, verifyOptions);
  } catch (err) {
    if (!(err instanceof JwtError)) throw err;
    if (err.reason === 'type') throw refuse(`the token is not a JWT access token ("typ" must be "${ACCESS_TOKEN_JWT_TYPE}", RFC 9068 §2.1)`, err);
    const reason = err.reason === 'keys-unavailable' ? "cannot fetch the issuer's keys" : err.message;
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
function parseAct(value: unknown, maxNesting = MAX_ACT_NESTING): Act | undefined {
  if (!isRecord(value) || !nonEmpty(value.sub) || maxNesting < 1) return undefined;
  if (value.act === undefined) return { sub: value.sub };
  const inner = parseAct(value.act, maxNesting - 1);
  return inner === undefined ? undefined : { sub: value.sub, act: inner };
}

/** base64url (no padding) of 32 bytes: an `x5t#S256` (RFC 8705 §3.1) or a `jkt` (RFC 9449 §6.1, RFC 7638 SHA-256). */
const SHA256_B64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * The `cnf` claim (RFC 7800 §3.1): exactly one member, `x5t#S256` or `jkt`, each the
 * base64url of a SHA-256 digest; anything else (both, neither, other members) is undefined.
 */
function confirmationOf(cnf: unknown): Confirmation | undefined {
  if (!isRecord(cnf)) return undefined;
  const keys = Object.keys(cnf);
  if (keys.length !== 1) return undefined;
  const value = cnf[keys[0]!];
  if (typeof value !== 'string' || !SHA256_B64URL.test(value)) return undefined;
  if (keys[0] === 'x5t#S256') return { 'x5t#S256': value };
  if (keys[0] === 'jkt') return { jkt: value };
  return undefined;
}

function accessTokenClaimsOf(payload: JWTPayload, refuse: (reason: string, cause?: unknown) => OAuthError): AccessTokenClaims {
  const { iss, sub, aud, client_id, act, cnf, authorization_details, task_id, sid, per_call, iat, exp, jti } = payload as Record<string, unknown>;
  if (!nonEmpty(sub)) throw refuse('"sub" must be a non-empty string');
  if (!nonEmpty(aud)) throw refuse('"aud" must be one resource URI');
  if (!nonEmpty(client_id)) throw refuse('"client_id" must be a non-empty string (RFC 9068 §2.2)');
  if (!nonEmpty(jti)) throw refuse('"jti" must be a non-empty string');
  if (!nonEmpty(task_id)) throw refuse('"task_id" must be a non-empty string');
  if (sid !== undefined && !nonEmpty(sid)) throw refuse('"sid" must be a non-empty string');
  if (per_call !== undefined && (!Array.isArray(per_call) || per_call.length === 0 || !per_call.every(nonEmpty))) throw refuse('"per_call" must be a non-empty list of tool names');
  const actor = parseAct(act);
  if (actor === undefined) throw refuse(`"act" must be {"sub": …} nested at most ${MAX_ACT_NESTING} deep (RFC 8693 §4.1)`);
  if (actor.sub !== client_id) throw refuse('"act.sub" must be the "client_id"');
  const confirmation = confirmationOf(cnf);
  if (confirmation === undefined)
    throw refuse('"cnf" must hold exactly one of an "x5t#S256" certificate thumbprint (RFC 8705 §3.1) or a "jkt" DPoP key thumbprint (RFC 9449 §6.1)');
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
    cnf: confirmation,
    authorization_details: details,
    task_id,
    ...(sid !== undefined ? { sid: sid as string } : {}),
    ...(per_call !== undefined ? { per_call: per_call as string[] } : {}),
    iat: iat as number,
    exp: exp as number,
    jti,
  };
}
