export { CertificateAuthority, type X509Svid, type X509SvidRequest } from './authority';
export {
  loadOrCreateCertificateAuthority,
  loadOrCreateJwtSigningKey,
  parseCertificateAuthority,
  CA_CERT_FILE,
  CA_KEY_FILE,
  JWT_KEY_FILE,
  type JwtSigningKey,
  type CaStoreOptions,
} from './store';
export { BundleCache } from './bundle-cache';
export { BundleStore, type AuthorityRecord, type BundleStoreOptions, type PublishResult } from './bundle-store';
export { ServerSvid, SERVER_SVID_PATH, type TlsCredentials } from './server-svid';
export { parseCsr, MAX_CSR_PEM_LENGTH, MIN_RSA_MODULUS_BITS, type VerifiedCsr, type CsrKeyType } from './csr';
export { CaError, BundleUnavailable, SvidRequestRejected, CsrRejected, type CsrRejection } from './errors';
export { x509 } from './x509';
export { CaRotator, x509Record, jwtRecord, type SigningAuthorities, type PreparedRotation, type RotatorOptions } from './rotator';
export { recoverInterruptedActivation, loadPreparedSlot, loadActiveSlot, type AuthoritySlot } from './slots';
export { RotationRefused } from './errors';
export { FileCustody, SealedCustody, type KeyCustody, type SealedStart } from './custody';
export { readKek, sealKey, openKey, kekId, type Kek, type SealedKey, type AuthorityBinding } from './kek';
export { SecretSealer, loadOrCreateSecretsKey, type SealedSecret } from './secrets';
export { openKeyCustody, RETIRED_GRACE_MARGIN, type CustodyAudit, type KeyCustodyDeps, type KeyCustodySettings, type PendingCustody, type StartedCustody } from './startup';
export { ServerRotator, systemScheduler, MAINTENANCE_INTERVAL_MS, type Scheduler, type ServerRotatorOptions } from './server-rotator';
