/**
 * The `oidc` attestor: a connector proves what it is with a JWT (RFC 7519) signed by an
 * issuer Writ is configured to trust — a Kubernetes projected service-account token,
 * a GitHub Actions OIDC token, a cloud workload identity token. The answer is selectors:
 *
 *   oidc:iss:<issuer>   oidc:sub:<sub>   oidc:claim:<name>:<value> (per configured claim)
 *
 * Verification is a pipeline of small checks: evidence shape → issuer (from the unverified
 * `iss`, only to choose the keys) → signature, algorithm and registered claims (`verifyJwt`
 * of `src/jwt`, against that issuer's configuration) → selectors.
 *
 * ```ts
 * const attestor = new OidcAttestor(oidcIssuersSchema.parse(file.oidc_issuers), { clock: systemClock });
 * const { selectors } = await attestor.attest({ token }, { peerCertificates: [] });
 * ```
 */
import { decodeJwt, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { Clock } from '../core/clock';
import { quote, textProblem } from '../core/text';
import {
  claimValue,
  issuerRegistry,
  JwtError,
  MAX_TOKEN_LENGTH,
  trustedIssuerOptions,
  trustedIssuerSchema,
  trustedIssuersSchema,
  verifyJwt,
  type IssuerRegistry,
  type KeySourceDeps,
  type RegisteredIssuer,
  type TrustedIssuer,
} from '../jwt';
import type { AttestationContext, AttestationResult, Attestor } from './attestor';
import { AttestationError } from './errors';

// ---------------------------------------------------------------------------------------
// Configuration: one entry of `oidc_issuers:` in the config file (snake_case keys).
// ---------------------------------------------------------------------------------------

/** One trusted issuer, as the attestor uses it: a {@link TrustedIssuer} and the claims that become selectors. */
export interface OidcIssuerConfig extends TrustedIssuer {
  /** Claims that become `oidc:claim:<name>:<value>` selectors; `a.b` reaches into objects. */
  readonly claims: readonly string[];
}

// ':' separates the parts of a selector, so a claim name holding one would be ambiguous.
const claimName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^:\s]+$/, 'must not contain ":" or white space')
  .refine((name) => !name.split('.').includes(''), 'must not have empty "."-separated parts');

/** One issuer under `oidc_issuers:`. Parses snake_case keys into an {@link OidcIssuerConfig}. */
export const oidcIssuerSchema = trustedIssuerSchema({ claims: z.array(claimName).default([]) }, (c) => ({ claims: [...new Set(c.claims)] }));

/** The `oidc_issuers:` list; an issuer may appear once. */
export const oidcIssuersSchema = trustedIssuersSchema(oidcIssuerSchema);

/** What a config file holds for one issuer (snake_case). */
export type OidcIssuerInput = z.input<typeof oidcIssuerSchema>;

// ---------------------------------------------------------------------------------------
// The attestor.
// ---------------------------------------------------------------------------------------

/** The attestor needs what the issuers' key sources need. */
export type OidcAttestorDeps = KeySourceDeps;

type Issuer = RegisteredIssuer<OidcIssuerConfig>;

export class OidcAttestor implements Attestor {
  readonly name = 'oidc';
  readonly #issuers: IssuerRegistry<OidcIssuerConfig>;
  readonly #clock: Clock;

  /** Reads every jwks_file now; throws an Error naming the issuer and the file when one is unusable. */
  constructor(issuers: readonly OidcIssuerConfig[], deps: OidcAttestorDeps) {
    this.#clock = deps.clock;
    this.#issuers = issuerRegistry(issuers, deps, 'oidc issuer');
  }

  /** The TLS context plays no part: the token is the proof. */
  async attest(evidence: Record<string, unknown>, _context: AttestationContext): Promise<AttestationResult> {
    const token = tokenOf(evidence);
    const issuer = this.#issuerOf(token);
    const claims = await verifyToken(token, issuer, this.#clock.now());
    return { selectors: selectorsOf(claims, issuer.config) };
  }

  /** The configured issuer named by the token's unverified `iss`: it only chooses the keys to verify with. */
  #issuerOf(token: string): Issuer {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw invalid('the token is not a JWT in JWS Compact Serialization (RFC 7519 §7.2)', err);
    }
    if (typeof iss !== 'string') throw invalid('the token has no "iss" (issuer) claim (RFC 7519 §4.1.1)');
    const issuer = this.#issuers.get(iss);
    if (!issuer) throw invalid(`the token's issuer ${quote(iss)} is not configured`);
    return issuer;
  }
}

const invalid = (reason: string, cause?: unknown): AttestationError => new AttestationError('invalid-evidence', reason, cause);

/** Step 1: the evidence is `{ token: "<JWS compact>" }`. */
function tokenOf(evidence: Record<string, unknown>): string {
  const { token } = evidence;
  if (typeof token !== 'string' || token === '') throw invalid('evidence.token must be a JWT (a non-empty string)');
  if (token.length > MAX_TOKEN_LENGTH) throw invalid(`evidence.token is longer than ${MAX_TOKEN_LENGTH} characters`);
  return token;
}

/**
 * Step 3: signature with the issuer's keys and only its algorithms, `iss` exact, `aud`
 * includes the audience, `exp` required and not passed, `nbf` reached, within the clock skew.
 */
async function verifyToken(token: string, issuer: Issuer, now: Date): Promise<JWTPayload & { sub: string }> {
  let payload: JWTPayload;
  try {
    payload = await verifyJwt(token, issuer.keys, trustedIssuerOptions(issuer.config, now, ['exp', 'sub']));
  } catch (err) {
    if (!(err instanceof JwtError)) throw err;
    throw invalid(err.reason === 'keys-unavailable' ? "cannot fetch the issuer's keys" : err.message, err);
  }
  const { sub } = payload;
  if (typeof sub !== 'string' || sub === '') throw invalid('the token\'s "sub" claim must be a non-empty string (RFC 7519 §4.1.2)');
  // A selector value with a control character matches no entry and cannot be stored: refused, naming the claim.
  const problem = textProblem(sub, 'identifier');
  if (problem) throw invalid(`the token's "sub" claim ${problem}`);
  return { ...payload, sub };
}

// ---------------------------------------------------------------------------------------
// Step 4: selectors.
// ---------------------------------------------------------------------------------------

/**
 * A claim value as selector values: a scalar → one, an array of scalars → one each, anything
 * else → none. Empty strings give none: no entry can name an empty selector value.
 */
function scalarValues(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) return value.flatMap((v: unknown) => (Array.isArray(v) ? [] : scalarValues(v)));
  return [];
}

/** `oidc:iss:<issuer>`, `oidc:sub:<sub>`, then `oidc:claim:<name>:<value>` for each configured claim present; a value with a control character refuses the token. */
export function selectorsOf(claims: JWTPayload & { sub: string }, config: Pick<OidcIssuerConfig, 'issuer' | 'claims'>): string[] {
  const selectors = new Set([`oidc:iss:${config.issuer}`, `oidc:sub:${claims.sub}`]);
  for (const name of config.claims) {
    for (const value of scalarValues(claimValue(claims, name))) {
      const problem = textProblem(value, 'identifier');
      if (problem) throw invalid(`the token's ${quote(name, 128)} claim ${problem}`);
      selectors.add(`oidc:claim:${name}:${value}`);
    }
  }
  return [...selectors];
}
