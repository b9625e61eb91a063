/**
 * The token exchange's domain pieces (RFC 8693, RFC 9068, RFC 9396, RFC 8705, RFC 8707):
 * OAuth errors, `authorization_details`, the user's subject token, minting and verifying
 * access tokens, and attenuation for chains. Pure: no HTTP, no database.
 */
export * from './errors';
export * from './authorization-details';
export * from './subject-token';
export * from './access-token';
export * from './sign';
export * from './verify';
export * from './attenuate';
export * from './exchange';
export * from './client-assertion';
export {
  DPOP_JWT_TYPE,
  DPOP_SIGNING_ALGORITHMS,
  DpopNonces,
  DpopReplayCache,
  dpopChallenge,
  dpopHeader,
  dpopThumbprint,
  accessTokenHash,
  isDpopError,
  normalizeHtu,
  verifyDpopProof,
  type DpopAlgorithm,
  type DpopErrorCode,
  type DpopExpectation,
  type DpopNonceSource,
  type DpopProof,
  type ReplayOutcome,
} from './dpop';
export { Introspection, type IntrospectionDeps, type IntrospectionResponse } from './introspection';
export { TokenRevocation, type TokenRevocationDeps } from './revocation';
export { ADMIN_CALLER, type OAuthCaller } from './caller';
export { OAuthRefusals } from './refusals';
