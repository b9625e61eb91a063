/**
 * Verifying a JWT (RFC 7519 §7.2) with jose: the signature with one of an issuer's keys and
 * only the allowed algorithms, then the registered claims (`iss` exact, `aud` includes the
 * audience, `exp` not passed, `nbf` reached, within the clock skew, the required claims
 * present). Every refusal is a {@link JwtError} with a stable reason and a message naming the
 * rule broken.
 *
 * ```ts
 * const payload = await verifyJwt(token, keys, trustedIssuerOptions(issuer, clock.now(), ['exp', 'sub']));
 * ```
 */
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { quote } from '../core/text';
import { JwtError, type JwtFailure } from './errors';
import type { TrustedIssuer } from './issuer';
import type { KeySource } from './jwks';

/** Longer tokens are refused before they are decoded. */
export const MAX_TOKEN_LENGTH = 32 * 1024;

/** jose's options for a token from a trusted issuer: its `iss`, audience, algorithms and clock skew, at `now`. */
export function trustedIssuerOptions(
  config: Pick<TrustedIssuer, 'issuer' | 'audience' | 'algorithms' | 'clockSkew'>,
  now: Date,
  requiredClaims: string[],
): JWTVerifyOptions {
  return { issuer: config.issuer, audience: config.audience, algorithms: [...config.algorithms], clockTolerance: config.clockSkew, currentDate: now, requiredClaims };
}

/**
 * jose's `jwtVerify` against a {@link KeySource}, also for a token without `kid` that several
 * of the keys could verify: then each is tried (RFC 7515 §4.1.4 leaves `kid` optional).
 * Throws a {@link JwtError} (a `JwksUnavailable`, reason `keys-unavailable`, when the keys cannot be fetched).
 */
export async function verifyJwt(token: string, keys: KeySource, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    try {
      return (await jwtVerify(token, keys.getKey, options)).payload;
    } catch (err) {
      if (codeOf(err) !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err;
      return await verifyWithEachKey(token, err as errors.JWKSMultipleMatchingKeys, options);
    }
  } catch (err) {
    throw jwtErrorOf(err, token, options);
  }
}

async function verifyWithEachKey(token: string, candidates: errors.JWKSMultipleMatchingKeys, options: JWTVerifyOptions): Promise<JWTPayload> {
  let last: unknown = new errors.JWSSignatureVerificationFailed();
  for await (const key of candidates) {
    try {
      return (await jwtVerify(token, key, options)).payload;
    } catch (err) {
      if (codeOf(err) !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw err;
      last = err;
    }
  }
  throw last;
}

const codeOf = (err: unknown): string | undefined => (err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined);

/** Which rule a failed jose verification broke, in words safe to show the caller; attacker-controlled text is quoted and bounded. */
function jwtErrorOf(err: unknown, token: string, options: JWTVerifyOptions): JwtError {
  if (err instanceof JwtError) return err;
  const fail = (reason: JwtFailure, message: string, claim?: string): JwtError => new JwtError(reason, message, { cause: err, ...(claim !== undefined ? { claim } : {}) });
  const header = (() => {
    try {
      return decodeProtectedHeader(token);
    } catch {
      return {};
    }
  })();
  switch (codeOf(err)) {
    case 'ERR_JWT_EXPIRED':
      return fail('expired', 'the token has expired ("exp", RFC 7519 §4.1.4)', 'exp');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const { claim, reason } = err as errors.JWTClaimValidationFailed;
      if (reason === 'missing') return fail('claim-missing', `the token has no "${claim}" claim, which is required`, claim);
      if (reason === 'invalid') return fail('claim-invalid', `the token's "${claim}" claim is not a NumericDate (RFC 7519 §2)`, claim);
      if (claim === 'nbf') return fail('not-yet-valid', 'the token is not valid yet ("nbf", RFC 7519 §4.1.5)', claim);
      if (claim === 'aud') return fail('audience', `the token's audience ("aud") does not include ${quote(String(options.audience ?? ''), 256)} (RFC 7519 §4.1.3)`, claim);
      if (claim === 'iss') return fail('issuer', 'the token\'s issuer ("iss") does not match (RFC 7519 §4.1.1)', claim);
      if (claim === 'typ') return fail('type', `the token's "${claim}" claim is refused`, claim);
      return fail('claim-refused', `the token's "${claim}" claim is refused`, claim);
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED': {
      const alg = typeof header.alg === 'string' ? quote(header.alg, 16) : '(none)';
      return fail('algorithm-not-allowed', `the token's algorithm ${alg} is not allowed for this issuer (allowed: ${(options.algorithms ?? []).join(', ')})`);
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('signature', "the token's signature does not verify with the issuer's keys (bad signature)");
    case 'ERR_JWKS_NO_MATCHING_KEY': {
      const kid = typeof header.kid === 'string' ? `key ID ${quote(header.kid)}` : 'no key ID ("kid")';
      return fail('no-matching-key', `no key of the issuer matches the token (${kid}, algorithm ${quote(String(header.alg), 16)})`);
    }
    case 'ERR_JWKS_INVALID':
      return fail('keys-invalid', "the issuer's key set is unusable");
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      // jose's messages here are fixed text, never token content.
      return fail('malformed', `the token is malformed: ${(err as Error).message}`);
    case 'ERR_JOSE_NOT_SUPPORTED':
      return fail('unsupported', 'the token uses a JOSE feature Writ does not support (an unknown "crit" header parameter or algorithm)');
    default:
      // TypeErrors from key import: an RSA key under 2048 bits, a key whose "alg" or "use" forbids this.
      return fail('key-unusable', "the token cannot be verified with the issuer's keys");
  }
}
