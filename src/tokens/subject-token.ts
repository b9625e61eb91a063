/**
 * The end user's identity in a token exchange (RFC 8693 §2.1 `subject_token`): an OIDC ID
 * token or a JWT from an identity provider Writ is configured to trust
 * (`identity_providers:`). Verification is `src/jwt`'s, as for the oidc attestor — the same key
 * sources (a `jwks_file`, or a `jwks_uri` fetched with a timeout, a size cap and a cache),
 * the same algorithm allowlist (asymmetric only: RFC 8725 §3.1) and the same wording of
 * refusals — and every refusal is `invalid_grant` (RFC 8693 §2.2.2) naming the rule broken.
 *
 * Pipeline: token type → shape → issuer (from the unverified `iss`, only to choose the
 * keys) → algorithm → signature and registered claims (`iss`, `aud`, `exp`, `nbf`, with the
 * provider's clock skew) → the identity (`sub`, `sid`, groups, risk).
 *
 * ```ts
 * const idps = new IdentityProviders(identityProvidersSchema.parse(file.identity_providers), { clock: systemClock });
 * const user = await idps.verify(form.subject_token); // { sub, iss, sid?, exp, groups, risk? }
 * ```
 */
import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { z } from 'zod';
import type { Clock } from '../core/clock';
import { findTextProblem, problemOfMember, quote } from '../core/text';
import {
  claimValue,
  forbiddenAlgorithm,
  issuerRegistry,
  JwtError,
  MAX_TOKEN_LENGTH,
  trustedIssuerOptions,
  trustedIssuerSchema,
  trustedIssuersSchema,
  verifyJwt,
  type IssuerRegistry,
  type KeySource,
  type KeySourceDeps,
  type RegisteredIssuer,
  type TrustedIssuer,
} from '../jwt';
import { InvalidGrant, InvalidRequest, TemporarilyUnavailable } from './errors';
import { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE } from './rfc8693';

// ---------------------------------------------------------------------------------------
// Token types (RFC 8693 §3) and the grant type (§2.1).
// ---------------------------------------------------------------------------------------

export { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE };
export type TokenType = (typeof TOKEN_TYPE)[keyof typeof TOKEN_TYPE];

/** The user's own identity (an ID token or JWT from an identity provider), or a Writ access token being chained. */
export type SubjectTokenKind = 'user' | 'chain';

/**
 * What a `subject_token_type` (RFC 8693 §2.1, required) asks for: `…:id_token` and `…:jwt`
 * are a user's identity, verified by {@link IdentityProviders}; `…:access_token` is a Writ
 * access token presented for a downstream call (chaining). Anything else is `invalid_request`.
 */
export function subjectTokenKind(subjectTokenType: string | undefined): SubjectTokenKind {
  if (subjectTokenType === undefined || subjectTokenType === '') throw new InvalidRequest('subject_token_type is required (RFC 8693 §2.1)');
  if (subjectTokenType === TOKEN_TYPE.ID_TOKEN || subjectTokenType === TOKEN_TYPE.JWT) return 'user';
  if (subjectTokenType === TOKEN_TYPE.ACCESS_TOKEN) return 'chain';
  throw new InvalidRequest(
    `subject_token_type ${quote(subjectTokenType, 96)} is not supported (supported: ${TOKEN_TYPE.ID_TOKEN}, ${TOKEN_TYPE.JWT}, ${TOKEN_TYPE.ACCESS_TOKEN})`,
  );
}

/** `requested_token_type` (RFC 8693 §2.1, optional): Writ issues access tokens only. */
export function checkRequestedTokenType(requestedTokenType: string | undefined): void {
  if (requestedTokenType === undefined || requestedTokenType === TOKEN_TYPE.ACCESS_TOKEN) return;
  throw new InvalidRequest(`requested_token_type ${quote(requestedTokenType, 96)} is not supported: Writ issues ${TOKEN_TYPE.ACCESS_TOKEN} only`);
}

// ---------------------------------------------------------------------------------------
// Configuration: one entry of `identity_providers:` (snake_case keys).
// ---------------------------------------------------------------------------------------

export const DEFAULT_GROUPS_CLAIM = 'groups';

/** One trusted identity provider, as the verifier uses it: a {@link TrustedIssuer} (its `audience` is Writ's client ID at the provider) and the claims the user's groups and risk are in. */
export interface IdentityProviderConfig extends TrustedIssuer {
  /** The claim holding the user's groups (`a.b` reaches into objects, e.g. `realm_access.roles`). */
  readonly groupsClaim: string;
  /** The claim holding a risk level for the user's session, if the provider sends one. */
  readonly riskClaim?: string;
}

const claimName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^\S+$/, 'must not contain white space')
  .refine((name) => !name.split('.').includes(''), 'must not have empty "."-separated parts');

/** One provider under `identity_providers:`. Parses snake_case keys into an {@link IdentityProviderConfig}. */
export const identityProviderSchema = trustedIssuerSchema(
  { groups_claim: claimName.default(DEFAULT_GROUPS_CLAIM), risk_claim: claimName.optional() },
  (c): Pick<IdentityProviderConfig, 'groupsClaim' | 'riskClaim'> => ({ groupsClaim: c.groups_claim, ...(c.risk_claim !== undefined ? { riskClaim: c.risk_claim } : {}) }),
);

/** The `identity_providers:` list; an issuer may appear once. */
export const identityProvidersSchema = trustedIssuersSchema(identityProviderSchema);

/** What a config file holds for one provider (snake_case). */
export type IdentityProviderInput = z.input<typeof identityProviderSchema>;

// ---------------------------------------------------------------------------------------
// Verification.
// ---------------------------------------------------------------------------------------

/** The user a verified subject token names. */
export interface SubjectIdentity {
  /** `sub`: the user, unique within `iss`. */
  readonly sub: string;
  readonly iss: string;
  /** The user's session at the provider (OIDC Front-/Back-Channel Logout `sid`), when present. */
  readonly sid?: string;
  /** When the subject token expires: no token minted from it outlives it. */
  readonly exp: Date;
  /** From the provider's `groups_claim`; none when the claim is absent. */
  readonly groups: readonly string[];
  /** From the provider's `risk_claim`, when configured and present. */
  readonly risk?: string;
  /** Every verified claim, for the audit trail. */
  readonly claims: JWTPayload;
}

export type IdentityProvidersDeps = KeySourceDeps;

type Provider = RegisteredIssuer<IdentityProviderConfig>;

/** Verified subject tokens remembered at most; beyond it the memory starts over. */
const VERIFIED_SUBJECT_TOKENS_KEPT = 5000;

const refuse = (reason: string, cause?: unknown): InvalidGrant => new InvalidGrant(`subject_token: ${reason}`, cause === undefined ? undefined : { cause });

/** The configured identity providers, each with its keys. */
export class IdentityProviders {
  readonly #providers: IssuerRegistry<IdentityProviderConfig>;
  readonly #clock: Clock;
  /**
   * Tokens already verified, with the key that verified them. An agent exchanges the same
   * ID token for each of a user's tasks; a token seen again costs no signature check as long
   * as the provider still gives that very key for it (so a key the provider dropped, or keys
   * that cannot be refreshed, are never trusted from here) and its time claims still hold.
   */
  readonly #verified = new Map<string, { provider: Provider; key: CryptoKey; payload: JWTPayload }>();

  /** Reads every jwks_file now; throws an Error naming the provider and the file when one is unusable. */
  constructor(providers: readonly IdentityProviderConfig[], deps: IdentityProvidersDeps) {
    this.#clock = deps.clock;
    this.#providers = issuerRegistry(providers, deps, 'identity provider');
  }

  /** The configured issuers. */
  get issuers(): string[] {
    return [...this.#providers.keys()];
  }

  /**
   * Verifies a user's subject token and returns who it names. Throws {@link InvalidGrant}
   * naming the rule broken, or {@link TemporarilyUnavailable} when the provider's keys cannot
   * be fetched (the token may well be good).
   */
  async verify(token: string): Promise<SubjectIdentity> {
    if (typeof token !== 'string' || token === '') throw new InvalidRequest('subject_token is required (RFC 8693 §2.1)');
    if (token.length > MAX_TOKEN_LENGTH) throw refuse(`the token is longer than ${MAX_TOKEN_LENGTH} characters`);
    const { header, iss } = peek(token);
    const provider = this.#providers.get(iss);
    if (!provider) throw refuse(`the token's issuer ${quote(iss)} is not a configured identity provider (RFC 7519 §4.1.1)`);
    checkAlgorithm(header, provider.config);
    const payload = await this.#verifySignatureAndClaims(token, provider, header);
    return identityOf(payload, provider.config);
  }

  async #verifySignatureAndClaims(token: string, provider: Provider, header: ProtectedHeaderParameters): Promise<JWTPayload> {
    const { config, keys } = provider;
    const known = this.#verified.get(token);
    if (known?.provider === provider && this.#stillValid(known.payload, config.clockSkew)) {
      const [protectedHeader = '', payload = '', signature = ''] = token.split('.');
      const key = await keys.getKey(header, { protected: protectedHeader, payload, signature }).catch(() => undefined);
      if (key === known.key) return known.payload;
    }
    let used: CryptoKey | undefined;
    let lookups = 0;
    const recording: KeySource = {
      getKey: async (h, t) => {
        lookups++;
        return (used = await keys.getKey(h, t));
      },
    };
    const payload = await this.#verifyWith(token, recording, config);
    if (used && lookups === 1) {
      if (this.#verified.size >= VERIFIED_SUBJECT_TOKENS_KEPT) this.#verified.clear();
      this.#verified.set(token, { provider, key: used, payload });
    }
    return payload;
  }

  /** RFC 7519 §4.1.4, §4.1.5 against the current time, as jose checks them. */
  #stillValid(payload: JWTPayload, skew: number): boolean {
    const now = Math.floor(this.#clock.now().getTime() / 1000);
    return typeof payload.exp === 'number' && payload.exp > now - skew && (payload.nbf === undefined || (typeof payload.nbf === 'number' && payload.nbf <= now + skew));
  }

  async #verifyWith(token: string, keys: KeySource, config: IdentityProviderConfig): Promise<JWTPayload> {
    try {
      return await verifyJwt(token, keys, trustedIssuerOptions(config, this.#clock.now(), ['exp', 'sub']));
    } catch (err) {
      if (!(err instanceof JwtError)) throw err;
      if (err.reason === 'keys-unavailable') throw new TemporarilyUnavailable(`cannot fetch the keys of identity provider ${config.issuer}; try again later`, { cause: err });
      throw refuse(err.message, err);
    }
  }
}

/** The unverified header and `iss`, only to choose the provider and refuse what no provider may use. */
function peek(token: string): { header: ProtectedHeaderParameters; iss: string } {
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch (err) {
    throw refuse('the token is not a JWT in JWS Compact Serialization (RFC 7519 §7.2)', err);
  }
  if (typeof payload.iss !== 'string' || payload.iss === '') throw refuse('the token has no "iss" (issuer) claim (RFC 7519 §4.1.1)');
  return { header, iss: payload.iss };
}

/**
 * RFC 8725 §2.1, §3.1: an unsigned token (`alg: none`) or one "signed" with a shared secret
 * (HS*: the classic algorithm confusion, where the provider's public key is used as the HMAC
 * key) is refused by name, before any key is looked at; other algorithms must be the provider's.
 */
function checkAlgorithm(header: ProtectedHeaderParameters, config: IdentityProviderConfig): void {
  const alg = header.alg as string;
  const forbidden = forbiddenAlgorithm(alg);
  if (forbidden === 'missing') throw refuse('the token has no "alg" header parameter (RFC 7515 §4.1.1)');
  if (forbidden === 'none') throw refuse('the token is unsigned (algorithm "none"), which is never accepted (RFC 8725 §3.1)');
  if (forbidden === 'symmetric')
    throw refuse(`the token uses the symmetric algorithm ${quote(alg, 16)}; only the provider's asymmetric keys are accepted (RFC 8725 §2.1, §3.1)`);
  if (!(config.algorithms as readonly string[]).includes(alg))
    throw refuse(`the token's algorithm ${quote(alg, 16)} is not allowed for this identity provider (allowed: ${config.algorithms.join(', ')})`);
}

/** The identity in verified claims; a malformed `sub`, `sid`, groups or risk claim refuses the token rather than being ignored. */
function identityOf(payload: JWTPayload, config: IdentityProviderConfig): SubjectIdentity {
  const { sub, sid, exp } = payload;
  if (typeof sub !== 'string' || sub === '') throw refuse('the token\'s "sub" claim must be a non-empty string (RFC 7519 §4.1.2)');
  if (sid !== undefined && (typeof sid !== 'string' || sid === '')) throw refuse('the token\'s "sid" claim must be a non-empty string (OpenID Connect Back-Channel Logout §2.4)');
  // jwtVerify has checked that exp is a NumericDate in the future.
  const expiresAt = new Date((exp as number) * 1000);
  const groups = groupsOf(claimValue(payload, config.groupsClaim), config.groupsClaim);
  const risk = config.riskClaim === undefined ? undefined : claimValue(payload, config.riskClaim);
  if (risk !== undefined && typeof risk !== 'string') throw refuse(`the token's ${quote(config.riskClaim!)} claim (the risk level) must be a string`);
  checkIdentifierText(payload, config, groups);
  return {
    sub,
    iss: config.issuer,
    ...(sid !== undefined ? { sid: sid as string } : {}),
    exp: expiresAt,
    groups,
    ...(risk !== undefined ? { risk } : {}),
    claims: payload,
  };
}

/**
 * Claims the broker keeps and looks users up by (`sub`, `sid`, `email`, the groups, the risk
 * level) hold no control character; no claim holds NUL or an unpaired surrogate. The database
 * cannot store those, and an identifier with a control character is no one's (RFC 7519 §4.1.2:
 * `sub` is a StringOrURI, RFC 7519 §2).
 */
function checkIdentifierText(payload: JWTPayload, config: IdentityProviderConfig, groups: readonly string[]): void {
  const identifiers: [string, unknown][] = [
    ['sub', payload.sub],
    ['sid', payload.sid],
    ['email', payload.email],
    [config.groupsClaim, groups],
    ...(config.riskClaim === undefined ? [] : [[config.riskClaim, claimValue(payload, config.riskClaim)] as [string, unknown]]),
  ];
  for (const [claim, value] of identifiers) {
    const found = findTextProblem(value, 'identifier');
    if (found) throw refuse(`the token's ${quote(claim)} claim ${problemOfMember(found)}`);
  }
  const anywhere = findTextProblem(payload, 'text', 'text');
  if (anywhere) throw refuse(`the token's claim ${quote(anywhere.path)} ${problemOfMember(anywhere)}`);
}

/**
 * The user's groups: an array of strings, or a single string. Anything else refuses the token:
 * read as "no groups", a malformed claim would silently escape policies that forbid by group.
 */
function groupsOf(value: unknown, claim: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value) && value.every((g): g is string => typeof g === 'string')) return [...new Set(value.filter((g) => g !== ''))];
  throw refuse(`the token's ${quote(claim)} claim (the user's groups) must be an array of strings`);
}
