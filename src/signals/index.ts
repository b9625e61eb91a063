/**
 * Shared Signals (OpenID SSF, CAEP, RISC): Security Event Tokens pushed to Writ (RFC 8417,
 * RFC 8935), verified against the configured transmitters and turned into revocation
 * intents. Pure domain: no HTTP, no database; replay detection (by `iss` and `jti`) and
 * applying the intents belong to the caller.
 */
export { SET_ERROR_CODES, SetError, TransmitterKeysUnavailable, isSetError, type SetErrorBody, type SetErrorCode } from './errors';
export {
  MAX_JTI_LENGTH,
  SET_MEDIA_TYPE,
  SET_TYP,
  SetReceiver,
  signalTransmitterSchema,
  signalTransmittersSchema,
  type EventPayload,
  type SetReceiverDeps,
  type SignalTransmitterConfig,
  type SignalTransmitterInput,
  type VerifiedSet,
} from './set';
export {
  EVENT_TYPE,
  RISK_LEVELS,
  intentsOf,
  type IgnoredIntent,
  type Intent,
  type RevokeSessionIntent,
  type RevokeUserIntent,
  type RiskLevel,
  type RiskLevelIntent,
  type SubjectRef,
  type UnresolvableIntent,
  type UserRef,
} from './events';
export { SignalApplier, type AppliedIntent, type SignalOutcome } from './apply';
export { UserRisks } from './risk';
export { SignalIntake } from './intake';
