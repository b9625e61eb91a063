/**
 * The `oidc` attestor: a connector proves what it is with a JWT (RFC 7519) signed by an
 * issuer Writ is configured to trust — a Kubernetes projected service-account token,
 * a GitHub Actions OIDC token, a cloud workload identity token. The answer is selectors:
 *
 *   oidc:iss:<issuer>   oidc:sub:<sub>   oidc:claim:<name>:<value> (per configured claim)
 *
 * Verification is a pipeline of small checks: evidence shape → issuer (from the unverified
 * `iss`, only to choose the keys) → signature, algorithm and registered claims (jose's
 * `jwtVerify`, against that issuer's configuration) → selectors.
 *
 * ```ts
 * const attestor = new OidcAttestor(oidcIssuersSchema.parse(file.oidc_issuers), { clock: systemClock });
 * const { selectors } = await attestor.attest({ token }, { peerCertificates: [] });
 * ```
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import type { Clock } from '../core/clock';
import { textProblem } from '../core/text';
import { parseDuration } from '../core/duration';
import type { AttestationContext, AttestationResult, Attestor } from './attestor';
import { AttestationError } from './errors';
import { JwksUnavailable, RemoteJwks, StaticJwks, readJwksFile, type KeySource, type RemoteJwksOptions } from './jwks';

// ---------------------------------------------------------------------------------------
// Configuration: one entry of `oidc_issuers:` in the config file (snake_case keys).
// ---------------------------------------------------------------------------------------

/** Asymmetric JWS algorithms (RFC 7518 §3.3–3.5, RFC 8037 §3.1). HMAC and `none` are never allowed (RFC 8725 §3.1). */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type OidcAlgorithm = (typeof OIDC_ALGORITHMS)[number];

export const DEFAULT_OIDC_ALGORITHMS: readonly OidcAlgorithm[] = ['RS256', 'ES256'];
export const DEFAULT_CLOCK_SKEW = 60;
export const MAX_CLOCK_SKEW = 300;

/** One trusted issuer, as the attestor uses it. Exactly one of jwksFile and jwksUri is set. */
export interface OidcIssuerConfig {
  /** The exact `iss` value of its tokens. */
  readonly issuer: string;
  /** A JWK Set file, read once at start-up. */
  readonly jwksFile?: string;
  /** A JWK Set URL, fetched and cached (https, or http for 127.0.0.1/localhost). */
  readonly jwksUri?: string;
  /** The `aud` value a token must include to be accepted by Writ. */
  readonly audience: string;
  readonly algorithms: readonly OidcAlgorithm[];
  /** Tolerance for `exp` and `nbf`, in seconds. */
  readonly clockSkew: number;
  /** Claims that become `oidc:claim:<name>:<value>` selectors; `a.b` reaches into objects. */
  readonly claims: readonly string[];
}

const isOidcAlgorithm = (alg: string): alg is OidcAlgorithm => (OIDC_ALGORITHMS as readonly string[]).includes(alg);

const algorithm = z.string().transform((alg, ctx): OidcAlgorithm => {
  if (isOidcAlgorithm(alg)) return alg;
  const why = /^HS\d*$/i.test(alg)
    ? `${alg} is a shared-secret (HMAC) algorithm: whoever can verify could also sign (RFC 8725 §3.1)`
    : alg.toLowerCase() === 'none'
      ? '"none" means unsigned tokens (RFC 8725 §3.1)'
      : `${JSON.stringify(alg)} is not a supported algorithm`;
  ctx.addIssue({ code: 'custom', message: `${why}; allowed: ${OIDC_ALGORITHMS.join(', ')}` });
  return z.NEVER;
});

const clockSkew = z.union([z.number(), z.string()]).transform((raw, ctx): number => {
  const seconds = typeof raw === 'number' ? raw : parseDuration(raw);
  if (seconds === undefined || !Number.isInteger(seconds) || seconds < 0 || seconds > MAX_CLOCK_SKEW) {
    ctx.addIssue({ code: 'custom', message: `must be a whole number of seconds from 0 to ${MAX_CLOCK_SKEW} (or "5m"), got ${JSON.stringify(raw)}` });
    return z.NEVER;
  }
  return seconds;
});

const parseUrl = (raw: string): URL | undefined => {
  try {
    return new URL(raw);
  } catch {
    return undefined;
  }
};

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

const issuerUrl = z.string().refine((raw) => {
  const url = parseUrl(raw);
  return url !== undefined && (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
}, 'must be an https:// URL: the exact "iss" value of the tokens');

const jwksUri = z.string().superRefine((raw, ctx) => {
  const url = parseUrl(raw);
  const problem =
    url === undefined
      ? 'is not a URL'
      : url.username !== '' || url.password !== ''
        ? 'must not carry credentials'
        : url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))
          ? undefined
          : 'must be an https:// URL (http:// only for 127.0.0.1 or localhost)';
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

// ':' separates the parts of a selector, so a claim name holding one would be ambiguous.
const claimName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^:\s]+$/, 'must not contain ":" or white space')
  .refine((name) => !name.split('.').includes(''), 'must not have empty "."-separated parts');

/** Building blocks of issuer configuration, shared with other token verifiers (identity providers). */
export { algorithm as oidcAlgorithmSchema, clockSkew as clockSkewSchema, issuerUrl as issuerUrlSchema, jwksUri as jwksUriSchema };

/** One issuer under `oidc_issuers:`. Parses snake_case keys into an {@link OidcIssuerConfig}. */
export const oidcIssuerSchema = z
  .strictObject({
    issuer: issuerUrl,
    jwks_file: z.string().min(1).optional(),
    jwks_uri: jwksUri.optional(),
    audience: z.string().min(1),
    algorithms: z.array(algorithm).min(1).default([...DEFAULT_OIDC_ALGORITHMS]),
    clock_skew: clockSkew.default(DEFAULT_CLOCK_SKEW),
    claims: z.array(claimName).default([]),
  })
  .superRefine(oneKeySource)
  .transform(
    (c): OidcIssuerConfig => ({
      issuer: c.issuer,
      ...(c.jwks_file !== undefined ? { jwksFile: c.jwks_file } : {}),
      ...(c.jwks_uri !== undefined ? { jwksUri: c.jwks_uri } : {}),
      audience: c.audience,
      algorithms: [...new Set(c.algorithms)],
      clockSkew: c.clock_skew,
      claims: [...new Set(c.claims)],
    }),
  );

/** A list of issuers in which each issuer appears once (shared by oidc_issuers and identity_providers). */
export function uniqueIssuers<T extends { issuer: string }>(list: readonly T[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  list.forEach((i, index) => {
    if (seen.has(i.issuer)) ctx.addIssue({ code: 'custom', path: [index, 'issuer'], message: `${i.issuer} is configured more than once` });
    seen.add(i.issuer);
  });
}

/** Exactly one of jwks_file and jwks_uri says where an issuer's keys are. */
export function oneKeySource(c: { jwks_file?: string | undefined; jwks_uri?: string | undefined }, ctx: z.RefinementCtx): void {
  if (c.jwks_file !== undefined && c.jwks_uri !== undefined) ctx.addIssue({ code: 'custom', message: 'set one of jwks_file or jwks_uri, not both' });
  if (c.jwks_file === undefined && c.jwks_uri === undefined) ctx.addIssue({ code: 'custom', message: "set one of jwks_file or jwks_uri: where the issuer's keys are" });
}

/** The `oidc_issuers:` list; an issuer may appear once. */
export const oidcIssuersSchema = z.array(oidcIssuerSchema).superRefine(uniqueIssuers);

/** What a config file holds for one issuer (snake_case). */
export type OidcIssuerInput = z.input<typeof oidcIssuerSchema>;

// ---------------------------------------------------------------------------------------
// The attestor.
// ---------------------------------------------------------------------------------------

export interface OidcAttestorDeps {
  readonly clock: Clock;
  /** For jwks_uri; the global fetch by default. */
  readonly fetch?: typeof fetch;
  /** Tuning of jwks_uri fetches (timeout 5 s, 64 KiB, refresh cooldown 30 s, cache age 10 min by default). */
  readonly jwks?: Partial<Omit<RemoteJwksOptions, 'clock' | 'fetch'>>;
}

/** Longer evidence is refused before it is decoded. */
export const MAX_TOKEN_LENGTH = 32 * 1024;

interface Issuer {
  readonly config: OidcIssuerConfig;
  readonly keys: KeySource;
}

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

/**
 * The keys of an issuer: its `jwks_file`, read now (an Error naming `label`, the issuer and
 * the file when it is unusable), or its `jwks_uri`, fetched on first use and cached.
 */
/** Issuers by name, each with its configuration and keys: the shape every JWT-verifying registry here shares. */
export type IssuerRegistry<C> = ReadonlyMap<string, { readonly config: C; readonly keys: KeySource }>;

/**
 * Builds an {@link IssuerRegistry}, reading every jwks_file now; throws an Error naming the
 * issuer (as `label`) when one is configured twice or its keys are unusable.
 */
export function issuerRegistry<C extends Pick<OidcIssuerConfig, 'issuer' | 'jwksFile' | 'jwksUri'>>(configs: readonly C[], deps: OidcAttestorDeps, label: string): IssuerRegistry<C> {
  const registry = new Map<string, { config: C; keys: KeySource }>();
  for (const config of configs) {
    if (registry.has(config.issuer)) throw new Error(`${label} ${config.issuer} is configured more than once`);
    registry.set(config.issuer, { config, keys: keySourceFor(config, deps, label) });
  }
  return registry;
}

export function keySourceFor(config: Pick<OidcIssuerConfig, 'issuer' | 'jwksFile' | 'jwksUri'>, deps: OidcAttestorDeps, label = 'oidc issuer'): KeySource {
  if (config.jwksFile !== undefined) {
    try {
      return new StaticJwks(readJwksFile(config.jwksFile));
    } catch (err) {
      throw new Error(`${label} ${config.issuer}: jwks_file ${(err as Error).message}`, { cause: err });
    }
  }
  if (config.jwksUri !== undefined) {
    return new RemoteJwks(config.jwksUri, { ...deps.jwks, clock: deps.clock, fetch: deps.fetch ?? globalThis.fetch });
  }
  throw new Error(`${label} ${config.issuer}: set one of jwks_file or jwks_uri`);
}

const invalid = (reason: string, cause?: unknown): AttestationError => new AttestationError('invalid-evidence', reason, cause);

/** Attacker-controlled text in a message: bounded, printable ASCII, quoted. */
function quote(text: string, max = 64): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown.replace(/[^\x20-\x7e…]/g, '?'));
}

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
/** jose's options for a token from a configured issuer: its `iss`, audience, algorithms and clock skew, at `now`. */
export function issuerVerifyOptions(
  config: { readonly issuer: string; readonly audience: string; readonly algorithms: readonly string[]; readonly clockSkew: number },
  now: Date,
  requiredClaims: string[],
): JWTVerifyOptions {
  return { issuer: config.issuer, audience: config.audience, algorithms: [...config.algorithms], clockTolerance: config.clockSkew, currentDate: now, requiredClaims };
}

async function verifyToken(token: string, issuer: Issuer, now: Date): Promise<JWTPayload & { sub: string }> {
  const { config, keys } = issuer;
  const options = issuerVerifyOptions(config, now, ['exp', 'sub']);
  let payload: JWTPayload;
  try {
    payload = await verifyJwtWithKeys(token, keys, options);
  } catch (err) {
    throw refusal(err, token, config);
  }
  const { sub } = payload;
  if (typeof sub !== 'string' || sub === '') throw invalid('the token\'s "sub" claim must be a non-empty string (RFC 7519 §4.1.2)');
  // A selector value with a control character matches no entry and cannot be stored: refused, naming the claim.
  const problem = textProblem(sub, 'identifier');
  if (problem) throw invalid(`the token's "sub" claim ${problem}`);
  return { ...payload, sub };
}

/**
 * jose's `jwtVerify` against a {@link KeySource}, also for a token without `kid` that several
 * of the keys could verify: then each is tried (RFC 7515 §4.1.4 leaves `kid` optional).
 * Throws jose's errors (or {@link JwksUnavailable}) unchanged; {@link verificationFailureReason}
 * says which rule they broke.
 *
 * ```ts
 * const payload = await verifyJwtWithKeys(token, keys, { issuer, audience, algorithms: ['RS256'], currentDate: clock.now() });
 * ```
 */
export async function verifyJwtWithKeys(token: string, keys: KeySource, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys.getKey, options)).payload;
  } catch (err) {
    if (codeOf(err) !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err;
    return verifyWithEachKey(token, err as errors.JWKSMultipleMatchingKeys, options);
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

/** Maps a failed verification to the rule it broke. */
function refusal(err: unknown, token: string, config: OidcIssuerConfig): AttestationError {
  return invalid(verificationFailureReason(err, token, config), err);
}

/**
 * Which rule a failed {@link verifyJwtWithKeys} broke, in words safe to show the caller
 * ("the token has expired ("exp", RFC 7519 §4.1.4)"); attacker-controlled text is quoted and bounded.
 */
export function verificationFailureReason(err: unknown, token: string, config: Pick<OidcIssuerConfig, 'audience' | 'algorithms'>): string {
  if (err instanceof JwksUnavailable) return "cannot fetch the issuer's keys";
  const header = (() => {
    try {
      return decodeProtectedHeader(token);
    } catch {
      return {};
    }
  })();
  switch (codeOf(err)) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired ("exp", RFC 7519 §4.1.4)';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const { claim, reason } = err as errors.JWTClaimValidationFailed;
      if (reason === 'missing') return `the token has no "${claim}" claim, which is required`;
      if (reason === 'invalid') return `the token's "${claim}" claim is not a NumericDate (RFC 7519 §2)`;
      if (claim === 'nbf') return 'the token is not valid yet ("nbf", RFC 7519 §4.1.5)';
      if (claim === 'aud') return `the token's audience ("aud") does not include ${quote(config.audience, 256)} (RFC 7519 §4.1.3)`;
      if (claim === 'iss') return 'the token\'s issuer ("iss") does not match (RFC 7519 §4.1.1)';
      return `the token's "${claim}" claim is refused`;
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED': {
      const alg = typeof header.alg === 'string' ? quote(header.alg, 16) : '(none)';
      return `the token's algorithm ${alg} is not allowed for this issuer (allowed: ${config.algorithms.join(', ')})`;
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return "the token's signature does not verify with the issuer's keys (bad signature)";
    case 'ERR_JWKS_NO_MATCHING_KEY': {
      const kid = typeof header.kid === 'string' ? `key ID ${quote(header.kid)}` : 'no key ID ("kid")';
      return `no key of the issuer matches the token (${kid}, algorithm ${quote(String(header.alg), 16)})`;
    }
    case 'ERR_JWKS_INVALID':
      return "the issuer's key set is unusable";
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      // jose's messages here are fixed text, never token content.
      return `the token is malformed: ${(err as Error).message}`;
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'the token uses a JOSE feature Writ does not support (an unknown "crit" header parameter or algorithm)';
    default:
      // TypeErrors from key import: an RSA key under 2048 bits, a key whose "alg" or "use" forbids this.
      return "the token cannot be verified with the issuer's keys";
  }
}

// ---------------------------------------------------------------------------------------
// Step 4: selectors.
// ---------------------------------------------------------------------------------------

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The value of a claim by name: the name itself if it is a claim, otherwise a path through
 * objects whose keys may hold dots (`kubernetes.io.namespace` → claims["kubernetes.io"].namespace).
 */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  const parts = name.split('.');
  for (let i = parts.length - 1; i >= 1; i--) {
    const head = parts.slice(0, i).join('.');
    const inner = Object.hasOwn(claims, head) ? claims[head] : undefined;
    if (isRecord(inner)) {
      const value = claimValue(inner, parts.slice(i).join('.'));
      if (value !== undefined) return value;
    }
  }
  return undefined;
}

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
