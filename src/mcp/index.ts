/**
 * `writ/mcp`: protecting an MCP server built on the official MCP TypeScript SDK, v1
 * (`@modelcontextprotocol/sdk`) or v2 (`@modelcontextprotocol/server`), with Writ access
 * tokens. Imports no SDK package: its types are declared structurally.
 *
 * - {@link writProtection}: Express middleware — JWT verification with Writ's keys, the RFC 8705
 *   certificate binding to the request's TLS client certificate, introspection (revocation
 *   within a second), tools checked against `authorization_details`, RFC 6750 refusals;
 * - {@link grantedToolsOnly}: on the SDK server or transport, `tools/list` lists only granted tools;
 * - {@link protectedResourceMetadataHandler}: RFC 9728 metadata naming Writ;
 * - {@link writIdentityOf}: the user, connector chain, task and tools, in tool callbacks;
 * - {@link tlsFetch}: `fetch` over mutual TLS with an X.509-SVID, e.g. for MCP clients;
 * - {@link writTokenVerifier} + {@link writBinding}: for SDK v2's `requireBearerAuth` (weaker; prefer `writProtection`);
 * - {@link checkMcpHeaders}: the 2026-07-28 `Mcp-Method`/`Mcp-Name` check `writProtection` runs.
 */
export {
  bearerChallenge,
  bearerToken,
  type ChallengeOptions,
  checkCertificateBinding,
  sendBearerError,
  tlsPeerCertificate,
  writProtection,
  type KeyFunction,
  type WritProtection,
  type WritProtectionOptions,
  type WritRequest,
} from './protect';
export {
  grantedToolsOnly,
  listTtlMs,
  TOOL_NOT_GRANTED,
  type GrantedToolsOptions,
  type JsonRpcMessageLike,
  type McpServerLike,
  type MessageExtraLike,
  type TransportLike,
} from './granted-tools';
export {
  actorChain,
  authInfoOf,
  writClaimsOf,
  writIdentityOf,
  type AuthInfoLike,
  type McpAuthInfo,
  type WritAuthExtra,
  type WritAuthSource,
  type WritIdentity,
} from './identity';
export {
  checkMcpHeaders,
  decodeMcpHeaderValue,
  HEADER_MISMATCH,
  HeaderMismatch,
  headerMismatchBody,
  HEADERS_REQUIRED_FROM,
  sendHeaderMismatch,
  type HeaderMismatchDetail,
} from './headers';
export { TaskEventReporter, type ReportingOptions, type CallReport } from './reporter';
export { outcomesOf, observeOutcomes, type CallOutcome } from './outcomes';
export { VerifierError, writBinding, writTokenVerifier, type WritBindingOptions, type WritTokenVerifier, type WritTokenVerifierOptions } from './verifier';
export { formatStepUpChallengeParams, parseStepUpChallenge, STEP_UP_DETAILS_PARAM, type StepUpChallenge, type StepUpDetail } from '../tokens/step-up';
export { MAX_INTROSPECTION_CACHE_MS, type IntrospectionOptions } from './introspection';
export {
  protectedResourceMetadata,
  protectedResourceMetadataHandler,
  protectedResourceMetadataUrl,
  type ProtectedResourceMetadata,
  type ProtectedResourceMetadataHandlerOptions,
  type ProtectedResourceMetadataOptions,
} from './metadata';
export { tlsFetch, type PemInput, type TlsClientOptions } from './tls-fetch';
export { APPROVAL_STATE_PREFIX, ApprovalPending, CALL_DENIED, CallDenied, NO_DECISION, needsDecision, acceptsUrlElicitation, type DecisionOptions, type DecidedCall, type PendingApproval } from './decisions';
export { grantedTools, requireTool, toolCalls, toolGranted, ToolNotGranted, type ToolActions } from './tools';
export { AccountLinkRequired, ProviderTokenRefused, linkRequiredResult, writVault, type ProviderToken, type WritVault, type WritVaultOptions } from './vault';
