/**
 * `writ/sdk`: the client library for connectors and agents that use Writ, shaped after
 * go-spiffe.
 *
 * - {@link X509Source}: attests, keeps an X.509-SVID renewed at half-life and the trust bundle
 *   current, and reports itself stale rather than serve an expired SVID.
 * - {@link tlsClientOptions}, {@link mtlsAgent}, {@link mtlsConnector}, {@link tlsServerOptions},
 *   {@link createTlsServer}, {@link createHttpsServer}: mutual TLS between workloads with the
 *   current SVID and bundle, peers authorized by SPIFFE ID ({@link authorizeId},
 *   {@link authorizeOneOf}, {@link authorizeMemberOf}, {@link authorizeAny}).
 * - {@link JwtSource}: cached JWT-SVIDs per audience set.
 * - {@link WorkloadApiSource}: SVIDs, bundles and JWT-SVIDs from a SPIFFE Workload API agent (`writ agent`, SPIRE's).
 * - {@link TaskTokenClient}: per-task access tokens by RFC 8693 token exchange, chaining, task end;
 *   {@link TaskTokenClient.taskFetch}: a `fetch` for MCP clients that follows per-tool step-up.
 * - {@link DpopKey}: DPoP (RFC 9449) proofs, for tokens bound to a key rather than the SVID's certificate.
 *
 * @example
 * import { X509Source, TaskTokenClient, mtlsAgent, authorizeId } from 'writ/sdk';
 *
 * const source = await X509Source.create({
 *   server: 'https://writ.example.com:8443',
 *   bundle: readFileSync('bundle.pem'),
 *   attestation: { joinToken: process.env.WRIT_JOIN_TOKEN! },
 * });
 * const tokens = new TaskTokenClient(source);
 * const { accessToken, taskId } = await tokens.exchange({
 *   subjectToken: userIdToken,
 *   resource: 'https://mcp.example.com/github',
 *   tools: [{ name: 'search', actions: ['read'] }],
 * });
 * const agent = mtlsAgent(source, authorizeId('spiffe://writ.local/mcp/github'));
 * // … call the MCP server with `Authorization: Bearer ${accessToken}` through `agent` …
 * await tokens.endTask(taskId);
 * await source.close();
 *
 * @packageDocumentation
 */
export {
  X509Source,
  type Attestation,
  type BackoffOptions,
  type BackgroundFailure,
  type X509SourceEvents,
  type X509SourceOptions,
  type X509SourceUpdate,
} from './x509-source';
export type { JwtAuthority, SpiffeId, X509Bundle, X509Svid } from './svid';
export { authorizeAny, authorizeId, authorizeMemberOf, authorizeOneOf, type Authorizer } from './authorize';
export {
  createHttpsServer,
  createTlsServer,
  mtlsAgent,
  mtlsConnector,
  peerId,
  tlsClientOptions,
  tlsServerOptions,
  type Connector,
  type ConnectorOptions,
  type TlsClientOptions,
  type TlsServerOptions,
} from './tls';
export { JwtSource, type JwtSvid } from './jwt-source';
export { WorkloadApiError, WorkloadApiSource, type WorkloadApiSourceOptions, type WorkloadApiUpdate, type WorkloadJwtSvid } from './workload-api';
export {
  TaskTokenClient,
  ApprovalNotGranted,
  type ApprovalStatus,
  type TaskTokenClientOptions,
  type TaskFetch,
  type TaskFetchOptions,
  type StepUpEvent,
  type ChainRequest,
  type DataClassification,
  type EndedTask,
  type ExchangeRequest,
  type McpToolGrant,
  type TaskToken,
  type ProviderToken,
  type ToolAction,
  type ToolRequest,
} from './task-tokens';
export { DpopKey, type DpopProofRequest } from './dpop';
export { systemClock, systemTimers, type Clock, type Timers } from './time';
export {
  AccessDeniedError,
  InvalidAuthorizationDetailsError,
  InvalidClientError,
  InvalidGrantError,
  InteractionRequiredError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  PeerNotAuthorizedError,
  SourceClosedError,
  SvidExpiredError,
  TemporarilyUnavailableError,
  UnauthorizedClientError,
  UnsupportedGrantTypeError,
  WritError,
  WritOAuthError,
  WritProblemError,
  WritProtocolError,
  WritUnavailableError,
  type ProblemDetails,
} from './errors';
