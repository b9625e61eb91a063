/**
 * A trusted issuer: whose JWTs Writ accepts, with which keys, for which audience, signed
 * with which algorithms, within which clock skew. One configuration type and one zod schema
 * (snake_case keys), used by `oidc_issuers:` (the oidc attestor), `identity_providers:` (the
 * subject-token verifier) and `signal_transmitters:` (the SET receiver), each extending it
 * with its own fields.
 *
 * ```ts
 * const identityProviderSchema = trustedIssuerSchema({ groups_claim: z.string().default('groups') }, (c) => ({ groupsClaim: c.groups_claim }));
 * const providers = trustedIssuersSchema(identityProviderSchema).parse(file.identity_providers);
 * ```
 */
import { z } from 'zod';
import { parseDuration } from '../core/duration';
import { remoteKeyUrlProblem } from './jwks';

/** Asymmetric JWS algorithms (RFC 7518 §3.3–3.5, RFC 8037 §3.1). HMAC and `none` are never allowed (RFC 8725 §3.1). */
export const JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

/** What an issuer signs with unless configured. */
export const DEFAULT_ALGORITHMS: readonly JwsAlgorithm[] = ['RS256', 'ES256'];
/** Tolerance for `exp`, `nbf` (and `iat`) unless configured, in seconds. */
export const DEFAULT_CLOCK_SKEW = 60;
export const MAX_CLOCK_SKEW = 300;

/** One trusted issuer. Exactly one of jwksFile, jwksUri and discovery is set. */
export interface TrustedIssuer {
  /** The exact `iss` value of its tokens. */
  readonly issuer: string;
  /** A JWK Set file, read once at start-up. */
  readonly jwksFile?: string;
  /** A JWK Set URL, fetched and cached (https, or http for 127.0.0.1/localhost). */
  readonly jwksUri?: string;
  /** True: the JWK Set URL is the `jwks_uri` of the issuer's OpenID Connect Discovery document (read on first use). */
  readonly discovery?: true;
  /** The `aud` value a token must include to be accepted by Writ. */
  readonly audience: string;
  readonly algorithms: readonly JwsAlgorithm[];
  /** Tolerance for `exp` and `nbf`, in seconds. */
  readonly clockSkew: number;
}

const isJwsAlgorithm = (alg: string): alg is JwsAlgorithm => (JWS_ALGORITHMS as readonly string[]).includes(alg);

/**
 * RFC 8725 §2.1, §3.1: an `alg` no issuer may use, whatever its configuration — absent,
 * `none` (unsigned), or a shared secret (HS*: whoever can verify could also sign, and an
 * issuer's public key would serve as the HMAC key). Undefined for any other value.
 */
export function forbiddenAlgorithm(alg: unknown): 'missing' | 'none' | 'symmetric' | undefined {
  if (typeof alg !== 'string' || alg === '') return 'missing';
  if (alg.toLowerCase() === 'none') return 'none';
  if (/^HS\d*$/i.test(alg)) return 'symmetric';
  return undefined;
}

const algorithm = z.string().transform((alg, ctx): JwsAlgorithm => {
  if (isJwsAlgorithm(alg)) return alg;
  const forbidden = forbiddenAlgorithm(alg);
  const why =
    forbidden === 'symmetric'
      ? `${alg} is a shared-secret (HMAC) algorithm: whoever can verify could also sign (RFC 8725 §3.1)`
      : forbidden === 'none'
        ? '"none" means unsigned tokens (RFC 8725 §3.1)'
        : `${JSON.stringify(alg)} is not a supported algorithm`;
  ctx.addIssue({ code: 'custom', message: `${why}; allowed: ${JWS_ALGORITHMS.join(', ')}` });
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

const issuerUrl = z.string().refine((raw) => {
  const url = parseUrl(raw);
  return url !== undefined && (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
}, 'must be an https:// URL: the exact "iss" value of the tokens');

const jwksUri = z.string().superRefine((raw, ctx) => {
  const problem = remoteKeyUrlProblem(raw);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** The snake_case keys every trusted issuer has in the config file. */
const trustedIssuerShape = {
  issuer: issuerUrl,
  jwks_file: z.string().min(1).optional(),
  jwks_uri: jwksUri.optional(),
  /** OpenID Connect Discovery 1.0 §4: find jwks_uri in `<issuer>/.well-known/openid-configuration`. */
  discovery: z.boolean().optional(),
  audience: z.string().min(1),
  algorithms: z.array(algorithm).min(1).default([...DEFAULT_ALGORITHMS]),
  clock_skew: clockSkew.default(DEFAULT_CLOCK_SKEW),
};

type TrustedIssuerFields = z.output<z.ZodObject<typeof trustedIssuerShape>>;

/** Exactly one of jwks_file, jwks_uri and discovery: true says where an issuer's keys are. */
function oneKeySource(c: { issuer: string; jwks_file?: string | undefined; jwks_uri?: string | undefined; discovery?: boolean | undefined }, ctx: z.RefinementCtx): void {
  if (c.jwks_file !== undefined && c.jwks_uri !== undefined) ctx.addIssue({ code: 'custom', message: 'set one of jwks_file or jwks_uri, not both' });
  else if (c.discovery === true && (c.jwks_file !== undefined || c.jwks_uri !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['discovery'], message: 'discovery: true finds jwks_uri itself: set no jwks_file or jwks_uri with it' });
  } else if (c.jwks_file === undefined && c.jwks_uri === undefined && c.discovery !== true) {
    ctx.addIssue({ code: 'custom', message: "set one of jwks_file or jwks_uri, or discovery: true: where the issuer's keys are" });
  }
  if (c.discovery === true) {
    const problem = remoteKeyUrlProblem(c.issuer);
    if (problem) ctx.addIssue({ code: 'custom', path: ['issuer'], message: `with discovery: true, the issuer is where its keys are found: it ${problem}` });
  }
}

const trustedIssuerOf = (c: TrustedIssuerFields): TrustedIssuer => ({
  issuer: c.issuer,
  ...(c.jwks_file !== undefined ? { jwksFile: c.jwks_file } : {}),
  ...(c.jwks_uri !== undefined ? { jwksUri: c.jwks_uri } : {}),
  ...(c.discovery === true ? { discovery: true as const } : {}),
  audience: c.audience,
  algorithms: [...new Set(c.algorithms)],
  clockSkew: c.clock_skew,
});

/**
 * The schema of one trusted issuer (strict: unknown keys are refused), extended with a use's
 * own keys (`extension`, never one of the common keys) which `extra` turns into that use's
 * additional fields.
 */
export function trustedIssuerSchema<S extends z.ZodRawShape, X extends object>(extension: S, extra: (c: TrustedIssuerFields & z.output<z.ZodObject<S>>) => X) {
  return z
    .strictObject({ ...trustedIssuerShape, ...extension })
    .superRefine((c, ctx) => oneKeySource(c as TrustedIssuerFields, ctx))
    .transform((c): TrustedIssuer & X => ({ ...trustedIssuerOf(c as TrustedIssuerFields), ...extra(c as TrustedIssuerFields & z.output<z.ZodObject<S>>) }));
}

/** A list of trusted issuers in which each issuer appears once. */
export function trustedIssuersSchema<T extends z.ZodType<{ readonly issuer: string }>>(item: T) {
  return z.array(item).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((i, index) => {
      if (seen.has(i.issuer)) ctx.addIssue({ code: 'custom', path: [index, 'issuer'], message: `${i.issuer} is configured more than once` });
      seen.add(i.issuer);
    });
  });
}
