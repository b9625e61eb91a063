/**
 * The middleware that protects an MCP server with Writ tokens: JWT verification with Writ's
 * keys, the RFC 8705 certificate binding to the request's TLS client certificate,
 * introspection for revocation, and tools checked against `authorization_details`.
 */
export * from './protect';
