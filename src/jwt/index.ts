/**
 * The JWT trust kernel: trusted issuers (one configuration type and schema), their key
 * sources (JWK Set files and URIs), and verification with stable failure reasons. Used alike
 * by the oidc attestor, the subject-token verifier, the SET receiver, access-token
 * verification and the MCP middleware. Imports only `core` and libraries.
 *
 * ```ts
 * const issuers = issuerRegistry(trustedIssuersSchema(trustedIssuerSchema({}, () => ({}))).parse(list), { clock }, 'issuer');
 * const issuer = issuers.get(iss);
 * const payload = await verifyJwt(token, issuer.keys, trustedIssuerOptions(issuer.config, clock.now(), ['exp']));
 * ```
 */
export { JwtError, JwksUnavailable, type JwtFailure } from './errors';
export {
  DEFAULT_ALGORITHMS,
  DEFAULT_CLOCK_SKEW,
  forbiddenAlgorithm,
  JWS_ALGORITHMS,
  MAX_CLOCK_SKEW,
  trustedIssuerSchema,
  trustedIssuersSchema,
  type JwsAlgorithm,
  type TrustedIssuer,
} from './issuer';
export { DEFAULT_FETCH_LIMITS, DEFAULT_REMOTE_JWKS, RemoteJwks, StaticJwks, fetchJwks, parseJwks, readJwksFile, type FetchLimits, type KeySource, type RemoteJwksOptions } from './jwks';
export { issuerRegistry, keySourceFor, type IssuerRegistry, type KeySourceDeps, type RegisteredIssuer } from './registry';
export { MAX_TOKEN_LENGTH, trustedIssuerOptions, verifyJwt } from './verify';
export { claimValue } from './claims';
