export type { Attestor, AttestationContext, AttestationResult } from './attestor';
export { AttestationError, type AttestationFailure } from './errors';
export { EntryStore, EntryError, entrySchema, type RegistrationEntry, type EntryInput, type EntryLimits, type ConnectorMetadata } from './entries';
export { JoinTokens, JoinTokenAttestor, type IssuedJoinToken } from './join-token';
export { SvidIssuer, type IssuedX509Svid, type IssuedJwtSvid, type PeerSvid, type AttestRequest } from './issuer';
export { selectorProblem, selectorsMatch } from './selectors';
export { OidcAttestor, oidcIssuerSchema, oidcIssuersSchema, type OidcIssuerConfig } from './oidc';
export { X509PopAttestor, x509popConfigSchema, caFingerprint, type X509PopConfig } from './x509pop';
