/**
 * `writ/mcp`: protecting an MCP server built on the official `@modelcontextprotocol/sdk` with
 * Writ access tokens.
 *
 * - {@link writProtection}: Express middleware — JWT verification with Writ's keys, the RFC 8705
 *   certificate binding to the request's TLS client certificate, introspection (revocation
 *   within a second), tools checked against `authorization_details`, RFC 6750 refusals;
 * - {@link grantedToolsOnly}: on the SDK server or transport, `tools/list` lists only granted tools;
 * - {@link protectedResourceMetadataHandler}: RFC 9728 metadata naming Writ;
 * - {@link writIdentityOf}: the user, connector chain, task and tools, in tool callbacks;
 * - {@link tlsFetch}: `fetch` over mutual TLS with an X.509-SVID, e.g. for MCP clients.
 */
export {
  bearerChallenge,
  bearerToken,
  checkCertificateBinding,
  sendBearerError,
  tlsPeerCertificate,
  writProtection,
  type KeyFunction,
  type WritProtection,
  type WritProtectionOptions,
  type WritRequest,
} from './protect';
export { grantedToolsOnly, TOOL_NOT_GRANTED, type McpServerLike } from './granted-tools';
export { actorChain, writClaimsOf, writIdentityOf, type McpAuthInfo, type WritIdentity } from './identity';
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
export { grantedTools, requireTool, toolCalls, toolGranted, type ToolActions } from './tools';
