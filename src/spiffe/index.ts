export { BROKER_PATH, isBrokerPath, parseSpiffeId, parseTrustDomain, spiffeIdOf, trustDomainProblem, type SpiffeId } from './id';
export {
  toSpiffeBundleDocument,
  toPemBundle,
  certificateToPem,
  certificatePublicJwk,
  type TrustBundle,
  type JwtAuthority,
  type SpiffeBundleDocument,
  type BundleJwk,
} from './bundle';
export { InvalidSpiffeId } from './errors';
