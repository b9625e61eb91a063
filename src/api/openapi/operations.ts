import { z } from 'zod';
import { entrySchema } from '../../attestation/entries';
import { leaseListingSchema, revocationSelectorSchema } from '../../leases';
import { resourceSchema } from '../../resources';
import { rotateRequest } from '../admin/ca';
import { entryListQuery } from '../admin/entries';
import { joinTokenRequest } from '../admin/join-tokens';
import { policyBody, policyHistoryQuery, policyPutBody } from '../admin/policies';
import { revocationRequest } from '../admin/revocations';
import { attestRequest, jwtSvidRequest, renewRequest } from '../svid';
import { workloadJwtSvidRequest, workloadX509SvidRequest } from '../agent';
import { evaluationRequestSchema, evaluationsRequestSchema } from '../../authzen';
import { taskEventsSchema } from '../tasks';
import { approvalSchemas } from '../approvals';
import { grantListQuery, reasonQuery } from '../vault';
import { providerPatch, providerRequest } from '../../vault';
import * as s from './schemas';
import { roleBindingCreateRequest, roleBindingDeleteQuery, type AdminRole } from '../../admin';

/** Who may call an operation: nobody in particular, an SVID over mTLS (RFC 8705), or an admin (bearer token or admin SVID). */
export type Caller = 'public' | 'svid' | 'admin' | 'oauth-client' | 'approver' | 'approver-reader';

/** The media type of an error answer: RFC 9457 problems, RFC 6749 §5.2 OAuth errors, RFC 8935 §2.4 SET errors. */
export type ErrorKind = 'problem' | 'oauth' | 'set';

export interface Response {
  readonly description: string;
  /** Media type → schema; none: no body. */
  readonly content?: Readonly<Record<string, z.ZodType | { readonly type: 'string'; readonly format?: string }>>;
}

export interface Operation {
  readonly method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** As Express writes it (`:param`). */
  readonly path: string;
  readonly operationId: string;
  readonly tag: 'oauth' | 'svid' | 'bundle' | 'tasks' | 'approvals' | 'vault' | 'signals' | 'admin' | 'meta';
  readonly summary: string;
  readonly caller: Caller;
  /** The admin role an admin route needs (auditor ⊂ operator ⊂ admin); every admin route names one. */
  readonly role?: AdminRole;
  readonly pathParams?: Readonly<Record<string, string>>;
  readonly query?: z.ZodType;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: { readonly type: string; readonly schema: z.ZodType | { readonly type: 'string' }; readonly required?: boolean };
  /** Success answers. */
  readonly responses: Readonly<Record<number, Response>>;
  /** Error answers, by status (description only; the body is `errors`' kind). */
  readonly errors: Readonly<Record<number, string>>;
  readonly errorKind: ErrorKind;
}

/** Schema limits as the default configuration sets them (WRIT_X509_SVID_MAX_TTL, WRIT_JWT_SVID_MAX_TTL). */
const LIMITS = { trustDomain: 'example.org', x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 };

const json = (schema: z.ZodType, description: string): Response => ({ description, content: { 'application/json': schema } });
const jsonBody = (schema: z.ZodType, required = true) => ({ type: 'application/json', schema, required });
const form = (schema: z.ZodType) => ({ type: 'application/x-www-form-urlencoded', schema, required: true });

/** Answers any route may give: a malformed request or a Client-Cert header from a peer that is not a trusted proxy (RFC 9440 §4), a body it cannot read (bodies are parsed on every route), a broker failure. */
const BASE = { 400: 'The request is malformed, or carries Client-Cert from a peer that is not a trusted proxy (RFC 9440 §4)', 413: 'The body is over 64 KiB (RFC 9110 §15.5.14)', 415: 'The body encoding or charset is not supported', 500: 'Internal error (detail in the log only)', 503: 'The broker cannot answer now' };
/** BASE, for a page that answers a bad request itself (in HTML). */
const { 400: _pageAnswers400, ...BASE_BUT_400 } = BASE;
/** Answers every route with a body may give as well: a body that does not fit, is oversized or is in an unsupported encoding. */
const COMMON = { ...BASE, 400: 'The request does not fit the schema (the detail names the field)', 413: 'The body is over 64 KiB (RFC 9110 §15.5.14)', 415: 'The body encoding or charset is not supported', 500: 'Internal error (detail in the log only)', 503: 'The broker cannot answer now' };
const ADMIN_ERRORS = { ...COMMON, 401: 'No admin bearer token or admin SVID, or a wrong token (RFC 6750 §3)', 403: 'A verified SVID whose entry is not an admin' };
const SVID_ERRORS = { ...COMMON, 401: 'No current X.509-SVID of this trust domain as the TLS client certificate' };

const entryBody = entrySchema(LIMITS);
const resourceBody = resourceSchema(LIMITS.trustDomain);
const revocationBody = z.union(revocationSelectorSchema.options.map((o) => o.extend(revocationRequest.shape)) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]);

/** One connector named by its percent-encoded SPIFFE ID. */
const SPIFFE_ID_PARAM = { spiffe_id: 'The connector\'s SPIFFE ID, percent-encoded' };

/** Every API operation: the OpenAPI document is built from this table; a test checks it against the routers. */
export const OPERATIONS: readonly Operation[] = [
  // --- OAuth (RFC 8414, RFC 8693, RFC 7662, RFC 7009, RFC 7517) ---
  {
    method: 'get', path: '/.well-known/oauth-authorization-server', operationId: 'getAuthorizationServerMetadata', tag: 'oauth', caller: 'public',
    summary: 'Authorization server metadata (RFC 8414 §3).',
    responses: { 200: json(s.authorizationServerMetadata, 'The metadata') }, errors: BASE, errorKind: 'problem',
  },
  {
    method: 'post', path: '/oauth2/token', operationId: 'exchangeToken', tag: 'oauth', caller: 'oauth-client',
    summary: 'Token exchange (RFC 8693 §2): a user\'s subject token for an access token for one MCP server, bound to the client certificate (RFC 8705 §3) or a DPoP key (RFC 9449); or, with `audience` a provider of the token vault and `scope`, the connector\'s task token for the provider\'s access token.',
    headers: { DPoP: 'A DPoP proof (RFC 9449 §4); the token is then DPoP-bound' },
    body: form(s.tokenForm),
    responses: { 200: json(z.union([s.tokenResponse, s.grantReleaseResponse]), 'The access token (Cache-Control: no-store)') },
    errors: { 400: 'invalid_request, invalid_grant, invalid_target, invalid_scope, unsupported_grant_type, invalid_authorization_details, invalid_dpop_proof, use_dpop_nonce (RFC 6749 §5.2, RFC 9396 §5, RFC 9449 §7), or interaction_required with link_uri (the token vault: the user links their account first)', 401: 'invalid_client: no live SVID or client assertion', 403: 'access_denied: policy refused', 413: 'The body is over 64 KiB', 415: 'The body encoding is not supported', 503: 'temporarily_unavailable' },
    errorKind: 'oauth',
  },
  {
    method: 'post', path: '/oauth2/introspect', operationId: 'introspectToken', tag: 'oauth', caller: 'oauth-client',
    summary: 'Token introspection (RFC 7662 §2): by the token\'s resource (its SVID) or an admin; anything else is answered inactive.',
    body: form(s.introspectionForm),
    responses: { 200: json(s.introspectionResponse, 'Active with the token\'s claims, or `{"active": false}`') },
    errors: { 400: 'invalid_request (RFC 6749 §5.2)', 401: 'invalid_client: neither the resource\'s SVID nor the admin token', 413: 'The body is over 64 KiB', 415: 'The body encoding is not supported', 503: 'temporarily_unavailable' },
    errorKind: 'oauth',
  },
  {
    method: 'post', path: '/oauth2/revoke', operationId: 'revokeToken', tag: 'oauth', caller: 'oauth-client',
    summary: 'Token revocation (RFC 7009 §2): by the token\'s connector or an admin; 200 for unknown tokens, once durable.',
    body: form(s.revocationForm),
    responses: { 200: { description: 'Revoked, or nothing to revoke (RFC 7009 §2.2)' } },
    errors: { 400: 'invalid_request (RFC 6749 §5.2)', 401: 'invalid_client: neither the connector\'s SVID nor the admin token', 413: 'The body is over 64 KiB', 415: 'The body encoding is not supported', 503: 'temporarily_unavailable' },
    errorKind: 'oauth',
  },
  {
    method: 'get', path: '/oauth2/jwks', operationId: 'getJwks', tag: 'oauth', caller: 'public',
    summary: 'The JWT signing keys as a JWK Set (RFC 7517 §5; RFC 8414 `jwks_uri`).',
    responses: { 200: { description: 'The JWK Set', content: { 'application/jwk-set+json': s.jwkSet } } }, errors: BASE, errorKind: 'problem',
  },
  // --- Trust bundle and SVIDs (SPIFFE) ---
  {
    method: 'get', path: '/v1/bundle', operationId: 'getBundle', tag: 'bundle', caller: 'public',
    summary: 'The trust bundle: a SPIFFE bundle (SPIFFE Trust Domain and Bundle §4) or PEM, by Accept.',
    responses: { 200: { description: 'The bundle', content: { 'application/json': s.spiffeBundle, 'application/x-pem-file': { type: 'string' } } } },
    errors: { ...BASE, 406: 'Neither application/json nor application/x-pem-file is acceptable', 503: 'The trust bundle cannot be read now' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/attest', operationId: 'attest', tag: 'svid', caller: 'public',
    summary: 'Node attestation: evidence for an attestor (join_token, x509pop, k8s_psat, oidc) and a CSR, for an X.509-SVID.',
    body: jsonBody(attestRequest),
    responses: { 201: json(s.x509Svid, 'The X.509-SVID and the bundle (Cache-Control: no-store)') },
    errors: { ...COMMON, 401: 'The evidence does not verify', 403: 'The evidence names no enabled entry', 404: 'No registration entry matches' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/svid/renew', operationId: 'renewSvid', tag: 'svid', caller: 'svid',
    summary: 'A new X.509-SVID for the caller\'s current one, for a CSR.',
    body: jsonBody(renewRequest),
    responses: { 201: json(s.x509Svid, 'The renewed X.509-SVID (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 403: 'The entry is disabled' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/jwt-svid', operationId: 'issueJwtSvid', tag: 'svid', caller: 'svid',
    summary: 'A JWT-SVID for the caller, for one or more audiences (SPIFFE JWT-SVID §3).',
    body: jsonBody(jwtSvidRequest),
    responses: { 201: json(s.jwtSvid, 'The JWT-SVID (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 403: 'The entry is disabled' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/svid-denylist', operationId: 'getSvidDenylist', tag: 'svid', caller: 'public',
    summary: 'The revoked, unexpired X.509-SVID serials, signed (a JWS, RFC 7515).',
    responses: { 200: { description: 'The signed list', content: { 'application/jwt': { type: 'string' } } } }, errors: BASE, errorKind: 'problem',
  },
  // --- Per-call decisions (OpenID AuthZEN Authorization API 1.0) ---
  {
    method: 'get', path: '/.well-known/authzen-configuration', operationId: 'getAuthzenConfiguration', tag: 'meta', caller: 'public',
    summary: 'The PDP\'s metadata (AuthZEN §9).',
    responses: { 200: json(s.authzenConfiguration, 'The metadata') }, errors: BASE, errorKind: 'problem',
  },
  {
    method: 'post', path: '/access/v1/evaluation', operationId: 'evaluateAccess', tag: 'svid', caller: 'svid',
    summary: 'One access evaluation (AuthZEN §6): may this user, in this task, perform this action on this tool now? A denial is 200 with decision false.',
    body: jsonBody(evaluationRequestSchema),
    responses: { 200: json(s.evaluationResponse, 'The decision (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 400: 'The request cannot be evaluated as asked (the member is named)' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/access/v1/evaluations', operationId: 'evaluateAccessMany', tag: 'svid', caller: 'svid',
    summary: 'Several access evaluations (AuthZEN §7), with options.evaluations_semantic.',
    body: jsonBody(evaluationsRequestSchema),
    responses: { 200: json(s.evaluationsResponse, 'The decisions, in order (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 400: 'The request is malformed' }, errorKind: 'problem',
  },
  // --- The node agent (writ agent) ---
  {
    method: 'get', path: '/v1/agent/entries', operationId: 'listAgentEntries', tag: 'svid', caller: 'svid',
    summary: 'The enabled workload entries the calling agent serves (parent_id = its SPIFFE ID), with their workload selectors.',
    responses: { 200: json(s.agentEntries, 'The entries (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 403: 'The agent\'s entry is disabled' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/agent/x509-svid', operationId: 'issueWorkloadX509Svid', tag: 'svid', caller: 'svid',
    summary: 'An X.509-SVID for a workload entry under the calling agent, for a CSR made on the agent\'s node.',
    body: jsonBody(workloadX509SvidRequest),
    responses: { 201: json(s.x509Svid, 'The X.509-SVID and the bundle (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 403: 'No enabled entry with this id is under the calling agent' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/agent/jwt-svid', operationId: 'issueWorkloadJwtSvid', tag: 'svid', caller: 'svid',
    summary: 'A JWT-SVID for a workload entry under the calling agent (SPIFFE JWT-SVID §3).',
    body: jsonBody(workloadJwtSvidRequest),
    responses: { 201: json(s.jwtSvid, 'The JWT-SVID (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 403: 'No enabled entry with this id is under the calling agent' }, errorKind: 'problem',
  },
  // --- Tasks and signals ---
  {
    method: 'post', path: '/v1/tasks/:id/end', operationId: 'endTask', tag: 'tasks', caller: 'svid',
    summary: 'Ends a task of the calling connector; every token of the task is revoked first.',
    pathParams: { id: 'The task id' },
    responses: { 200: json(s.taskEnded, 'The task and how many leases were revoked') },
    errors: { ...SVID_ERRORS, 403: 'Another connector\'s task', 404: 'No such task' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/task-events', operationId: 'reportTaskEvents', tag: 'tasks', caller: 'svid',
    summary: 'A resource server (by its X.509-SVID) reports the tools/call requests it let through and how they ended: the task history policy reads as context.task. Durable and audited before the answer; a call reported again (same task, server and call_id) updates its row.',
    body: jsonBody(taskEventsSchema),
    responses: { 200: json(s.taskEventsRecorded, 'How many calls were recorded (Cache-Control: no-store)') },
    errors: { ...SVID_ERRORS, 400: 'A report names no task, a tool the server does not have, or an action it does not register (the event is named)' }, errorKind: 'problem',
  },
  // --- Role bindings (issue 19) ---
  {
    method: 'get', path: '/v1/admin/role-bindings', operationId: 'listRoleBindings', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'The admin role bindings: from the configuration (WRIT_ADMIN_ROLES, ids config-<n>) and from this API.',
    responses: { 200: json(s.roleBindingList, 'The bindings') },
    errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/role-bindings', operationId: 'createRoleBinding', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Binds a role (auditor, operator, admin) to a group or a user of an identity provider. Audited.',
    body: jsonBody(roleBindingCreateRequest),
    responses: { 201: json(s.roleBinding, 'The binding') },
    errors: { ...ADMIN_ERRORS, 409: 'The same binding exists' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/admin/role-bindings/:id', operationId: 'deleteRoleBinding', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Removes a binding made through the API (configured ones are removed from the configuration). Audited.',
    pathParams: { id: 'The binding id' }, query: roleBindingDeleteQuery,
    responses: { 204: { description: 'Removed' } },
    errors: { ...ADMIN_ERRORS, 404: 'No such binding', 409: 'A configured binding' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/sign-in', operationId: 'signIn', tag: 'meta', caller: 'public',
    summary: 'Where people sign in to this broker: the identity providers and Writ\'s client there (WRIT_ADMIN_AUDIENCE), for writ login --device.',
    responses: { 200: json(s.signIn, 'The client id and the issuers (Cache-Control: max-age=300)') },
    errors: { ...BASE, 404: 'Sign-in is off (WRIT_ADMIN_AUDIENCE is not set)' }, errorKind: 'problem',
  },
  // --- The console (issue 19): pages, and its sign-in (authorization code flow with PKCE) ---
  ...([['', 'consolePage', 'text/html', 'The console (strict CSP: its own script and style only)'], ['app.js', 'consoleScript', 'text/javascript', 'The console\'s script'], ['app.css', 'consoleStyle', 'text/css', 'The console\'s style']] as const).map(
    ([file, operationId, type, description]): Operation => ({ method: 'get', path: `/console/${file}`, operationId, tag: 'meta', caller: 'public', summary: description, responses: { 200: { description, content: { [type]: { type: 'string' } } } }, errors: BASE, errorKind: 'problem' }),
  ),
  {
    method: 'get', path: '/console/login', operationId: 'consoleLogin', tag: 'meta', caller: 'public',
    summary: 'Starts a sign-in at the identity provider (authorization code flow with PKCE, state and nonce), as Writ\'s client (WRIT_ADMIN_AUDIENCE).',
    responses: { 302: { description: 'To the provider\'s authorization endpoint' } },
    errors: { ...BASE, 400: 'issuer names no configured provider' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/console/callback', operationId: 'consoleCallback', tag: 'meta', caller: 'public',
    summary: 'The provider\'s redirect: exchanges the code, verifies the ID token (audience, nonce, RFC 9207 iss), and sets the session cookie (HttpOnly, Secure, SameSite=Strict).',
    responses: { 302: { description: 'To /console/, with the session cookie' } },
    errors: { ...BASE, 400: 'The sign-in cannot be finished (state unknown or used, a refusal, an ID token that does not verify)' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/console/api/session', operationId: 'consoleSession', tag: 'meta', caller: 'public',
    summary: 'Who is signed in to the console (the session cookie), their role, and the CSRF token every change must carry in X-Writ-CSRF.',
    responses: { 200: json(s.consoleSession, 'The session (Cache-Control: no-store)') },
    errors: { ...BASE, 401: 'Not signed in' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/console/logout', operationId: 'consoleLogout', tag: 'meta', caller: 'public',
    summary: 'Ends the console session (with its CSRF token).',
    responses: { 204: { description: 'Signed out; the cookie is cleared' } },
    errors: { ...BASE, 403: 'No CSRF token' }, errorKind: 'problem',
  },
  // --- The token vault (issue 20): linking a user's account at a provider, in their browser ---
  {
    method: 'get', path: '/v1/vault/links/:secret', operationId: 'showLink', tag: 'vault', caller: 'public',
    summary: 'The page of an account link Writ handed out (single use, for one user): what it is for, and a button to sign in and continue.', pathParams: { secret: 'The link\'s secret' },
    responses: { 200: { description: 'The page', content: { 'text/html': { type: 'string' } } }, 400: { description: 'The link is unknown, used or expired (a page)', content: { 'text/html': { type: 'string' } } } },
    errors: BASE_BUT_400, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/vault/links/:secret', operationId: 'openLink', tag: 'vault', caller: 'public',
    summary: 'Opens the link: a person not signed in signs in first (and comes back); only the user the link names goes on to the provider (authorization code flow with PKCE and state).', pathParams: { secret: 'The link\'s secret' },
    responses: { 303: { description: 'To sign in, or to the provider\'s authorization endpoint' } },
    errors: { ...BASE, 400: 'The link is unknown, used or expired, or sign-in is off', 403: 'The link was made for another user' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/vault/callback', operationId: 'vaultCallback', tag: 'vault', caller: 'public',
    summary: 'The provider\'s redirect back: state (once) and RFC 9207 iss checked, the code redeemed, the refresh token stored sealed.',
    responses: { 200: { description: 'The account is linked', content: { 'text/html': { type: 'string' } } } },
    errors: { ...BASE, 400: 'No linking under way with this state, or the provider refused', 502: 'The provider failed' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/vault/grants', operationId: 'listMyGrants', tag: 'vault', caller: 'approver-reader',
    summary: 'The signed-in person\'s own grants the vault holds (never their tokens).',
    responses: { 200: json(s.grantList, 'The grants') }, errors: { ...BASE, 401: 'Not signed in as a person' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/vault/grants/:id', operationId: 'unlinkGrant', tag: 'vault', caller: 'approver',
    summary: 'Unlinks one of the signed-in person\'s grants: Writ stops using it at once, and revokes it at the provider (RFC 7009). Audited.', pathParams: { id: 'The grant id' }, query: reasonQuery,
    responses: { 204: { description: 'Unlinked' } }, errors: { ...BASE, 401: 'Not signed in as a person', 403: 'A console change without its CSRF token', 404: 'No live grant of yours with this id' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/admin/grants/:id', operationId: 'revokeGrant', tag: 'admin', caller: 'admin', role: 'operator',
    summary: 'Revokes a user\'s grant: Writ stops using it at once, and revokes it at the provider (RFC 7009). Audited.', pathParams: { id: 'The grant id' }, query: reasonQuery,
    responses: { 204: { description: 'Revoked' } }, errors: { ...ADMIN_ERRORS, 404: 'No live grant with this id' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/providers', operationId: 'listProviders', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'The token vault\'s downstream providers (never their secrets).',
    responses: { 200: json(s.providerList, 'The providers') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/providers', operationId: 'createProvider', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Registers a downstream provider: its issuer (discovery), Writ\'s client there and its secret or private key (sealed, never returned), scopes, classification. Audited.',
    body: jsonBody(providerRequest),
    responses: { 201: json(s.provider, 'The provider') }, errors: { ...ADMIN_ERRORS, 409: 'A provider with this id exists' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/providers/:id', operationId: 'getProvider', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'One provider.', pathParams: { id: 'The provider id' },
    responses: { 200: json(s.provider, 'The provider') }, errors: { ...ADMIN_ERRORS, 404: 'No such provider' }, errorKind: 'problem',
  },
  {
    method: 'patch', path: '/v1/admin/providers/:id', operationId: 'updateProvider', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Changes a provider: a new secret or key (rotation), scopes, classification, resource, revoke_on. Audited.', pathParams: { id: 'The provider id' },
    body: jsonBody(providerPatch),
    responses: { 200: json(s.provider, 'The provider') }, errors: { ...ADMIN_ERRORS, 404: 'No such provider' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/admin/providers/:id', operationId: 'deleteProvider', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Removes a provider and the grants the vault holds there. Audited.', pathParams: { id: 'The provider id' },
    responses: { 204: { description: 'Removed' } }, errors: { ...ADMIN_ERRORS, 404: 'No such provider' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/grants', operationId: 'listGrants', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'The users\' live grants the vault holds, by provider or user (never their tokens).',
    query: grantListQuery,
    responses: { 200: json(s.grantList, 'The grants') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  // --- Approvals (a permit marked @approval("required")) ---
  {
    method: 'get', path: '/v1/approvals', operationId: 'listApprovals', tag: 'approvals', caller: 'approver-reader',
    summary: 'Approval requests, newest first: an approver sees those it may decide (its group, never its own), the admin all.',
    query: approvalSchemas.listQuery,
    responses: { 200: json(s.approvalList, 'The requests (Cache-Control: no-store)') },
    errors: { ...BASE, 401: 'Neither an approver\'s ID token nor the admin credential', 403: 'A verified SVID whose entry is not an admin' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/approvals/:id', operationId: 'getApproval', tag: 'approvals', caller: 'approver-reader',
    summary: 'One approval request: for its approvers, the admin, and the task\'s connector (by its X.509-SVID). The URL approvers are given.',
    pathParams: { id: 'The approval id' },
    responses: { 200: json(s.approval, 'The request (Cache-Control: no-store)') },
    errors: { ...BASE, 401: 'No credentials', 403: 'Not an approver of this request', 404: 'No such request' }, errorKind: 'problem',
  },
  ...(['approve', 'deny'] as const).map((d): Operation => ({
    method: 'post', path: `/v1/approvals/:id/${d}`, operationId: `${d}Approval`, tag: 'approvals', caller: 'approver',
    summary: d === 'approve' ? 'Approves a pending request: the call may run, in that task, for valid_for seconds (at most WRIT_APPROVAL_VALIDITY). Audited with the approver.' : 'Denies a pending request: the call is refused. Audited with the approver.',
    pathParams: { id: 'The approval id' },
    body: jsonBody(approvalSchemas.decisionBody, false),
    responses: { 200: json(s.approval, 'The decided request') },
    errors: { ...COMMON, 401: 'No ID token of the approvers\' identity provider', 403: 'Not an approver of this request (another group, or the requesting user)', 404: 'No such request', 409: 'The request is no longer pending (decided, expired, or its task ended)' }, errorKind: 'problem',
  })),
  {
    method: 'post', path: '/v1/signals', operationId: 'receiveSignal', tag: 'signals', caller: 'public',
    summary: 'Push delivery of a Security Event Token (RFC 8935 §2; CAEP and RISC events from a configured transmitter).',
    body: { type: 'application/secevent+jwt', schema: { type: 'string' }, required: true },
    responses: { 202: { description: 'Applied durably, or a replay (RFC 8935 §2.2)' } },
    errors: { 400: 'The SET is refused (RFC 8935 §2.4)', 413: 'The SET is over 64 KiB' }, errorKind: 'set',
  },
  // --- Admin: registration entries ---
  {
    method: 'get', path: '/v1/admin/entries', operationId: 'listEntries', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Registration entries, by SPIFFE ID prefix, selector and state; `after` cursor.',
    query: entryListQuery,
    responses: { 200: json(s.entryList, 'A page of entries; `next_after` when there may be more') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/entries', operationId: 'createEntry', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Registers an entry.',
    body: jsonBody(entryBody),
    responses: { 201: json(s.entry, 'The entry (Location names it)') }, errors: { ...ADMIN_ERRORS, 409: 'An entry with these selectors exists' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/entries/:id', operationId: 'getEntry', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'One entry.', pathParams: { id: 'The entry id' },
    responses: { 200: json(s.entry, 'The entry') }, errors: { ...ADMIN_ERRORS, 404: 'No such entry' }, errorKind: 'problem',
  },
  {
    method: 'patch', path: '/v1/admin/entries/:id', operationId: 'updateEntry', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Changes the fields sent.', pathParams: { id: 'The entry id' },
    body: jsonBody(entryBody.partial()),
    responses: { 200: json(s.entry, 'The entry as changed') }, errors: { ...ADMIN_ERRORS, 404: 'No such entry', 409: 'The change conflicts with another entry' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/admin/entries/:id', operationId: 'deleteEntry', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Deletes an entry.', pathParams: { id: 'The entry id' },
    responses: { 204: { description: 'Deleted' } }, errors: { ...ADMIN_ERRORS, 404: 'No such entry' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/join-tokens', operationId: 'issueJoinToken', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'A one-time join token for an entry, shown once.',
    body: jsonBody(joinTokenRequest),
    responses: { 201: json(s.joinToken, 'The token (Cache-Control: no-store)') }, errors: { ...ADMIN_ERRORS, 404: 'No such entry' }, errorKind: 'problem',
  },
  // --- Admin: resources ---
  {
    method: 'get', path: '/v1/admin/resources', operationId: 'listResources', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Protected resources (MCP servers) and their tools.',
    responses: { 200: json(s.resourceList, 'Every resource, by URI') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/resources', operationId: 'createResource', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Registers a resource, named by its URI (RFC 8707 §2).',
    body: jsonBody(resourceBody),
    responses: { 201: json(s.resource, 'The resource (Location names it)') }, errors: { ...ADMIN_ERRORS, 409: 'The URI is registered already' }, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/resources/:uri', operationId: 'getResource', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'One resource.', pathParams: { uri: 'The resource URI, percent-encoded' },
    responses: { 200: json(s.resource, 'The resource') }, errors: { ...ADMIN_ERRORS, 404: 'No such resource' }, errorKind: 'problem',
  },
  {
    method: 'patch', path: '/v1/admin/resources/:uri', operationId: 'updateResource', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Changes `spiffe_id` and/or `tools`.', pathParams: { uri: 'The resource URI, percent-encoded' },
    body: jsonBody(resourceBody.omit({ uri: true }).partial()),
    responses: { 200: json(s.resource, 'The resource as changed') }, errors: { ...ADMIN_ERRORS, 404: 'No such resource' }, errorKind: 'problem',
  },
  {
    method: 'delete', path: '/v1/admin/resources/:uri', operationId: 'deleteResource', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Deletes a resource.', pathParams: { uri: 'The resource URI, percent-encoded' },
    responses: { 204: { description: 'Deleted' } }, errors: { ...ADMIN_ERRORS, 404: 'No such resource' }, errorKind: 'problem',
  },
  // --- Admin: policies ---
  {
    method: 'get', path: '/v1/admin/policies', operationId: 'getPolicies', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'The Cedar policy set in force (version 0: none yet).',
    responses: { 200: json(s.policySet, 'The latest version') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'put', path: '/v1/admin/policies', operationId: 'putPolicies', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'A new version of the policy set, validated against the schema first (400 with Cedar\'s errors); `reason` is recorded with it.',
    body: jsonBody(policyPutBody),
    responses: { 200: json(s.policyVersion, 'The new version') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/policies/validate', operationId: 'validatePolicies', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Validates a policy set against the schema (strict) and changes nothing: valid, or Cedar\'s errors with their policy, line and column.',
    body: jsonBody(policyBody),
    responses: { 200: json(s.policyValidation, 'Whether it is valid, and why not') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/policies/versions', operationId: 'listPolicyVersions', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'The policy set\'s history, newest first: each version\'s author, time, SHA-256 and reason; `before` cursor.',
    query: policyHistoryQuery,
    responses: { 200: json(s.policyHistory, 'A page of versions; `next_before` when there may be more') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/policies/versions/:version', operationId: 'getPolicyVersion', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'One version of the policy set, its text included.', pathParams: { version: 'The version number' },
    responses: { 200: json(s.policyVersionText, 'The version') }, errors: { ...ADMIN_ERRORS, 404: 'No such version' }, errorKind: 'problem',
  },
  // --- Admin: revocations, leases, connectors ---
  {
    method: 'post', path: '/v1/admin/revocations', operationId: 'revoke', tag: 'admin', caller: 'admin', role: 'operator',
    summary: 'Revokes every lease a selector names, chained descendants included, durably before the answer; `dry_run` shows the blast radius instead.',
    body: jsonBody(revocationBody),
    responses: { 200: json(s.revocationResult, 'How many leases were revoked, or the blast radius') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/leases', operationId: 'listLeases', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Leases by one handle (jti; task_id; issuer+sid; issuer+subject (+connector); connector; audience), newest first; `before` cursor.',
    query: leaseListingSchema,
    responses: { 200: json(s.leaseList, 'A page of leases; `next_before` when there may be more') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/leases/:jti', operationId: 'getLease', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'One lease: the claims its token was issued with, the policy decisions behind them, and the audit events of the token and of its task (per-call decisions, approvals).',
    pathParams: { jti: 'The lease id (a token\'s jti)' },
    responses: { 200: json(s.leaseDetail, 'The lease') }, errors: { ...ADMIN_ERRORS, 404: 'No such lease' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/connectors/:spiffe_id/disable', operationId: 'disableConnector', tag: 'admin', caller: 'admin', role: 'operator',
    summary: 'The kill switch: disables the connector\'s entries and revokes every lease it holds.', pathParams: SPIFFE_ID_PARAM,
    body: jsonBody(s.connectorReason, false),
    responses: { 200: json(s.connectorDisabled, 'What was disabled and revoked') }, errors: { ...ADMIN_ERRORS, 404: 'No entry has this SPIFFE ID' }, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/connectors/:spiffe_id/enable', operationId: 'enableConnector', tag: 'admin', caller: 'admin', role: 'operator',
    summary: 'Enables the connector\'s entries again (revoked leases stay revoked).', pathParams: SPIFFE_ID_PARAM,
    body: jsonBody(s.connectorReason, false),
    responses: { 200: json(s.connectorEnabled, 'What was enabled') }, errors: { ...ADMIN_ERRORS, 404: 'No entry has this SPIFFE ID' }, errorKind: 'problem',
  },
  // --- Admin: audit, CA ---
  {
    method: 'get', path: '/v1/admin/audit', operationId: 'listAuditEvents', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Audit events, newest first, by type (or `prefix*`), subject, subject_issuer, actor and time; `before` cursor.',
    query: s.auditListQuery,
    responses: { 200: json(s.auditList, 'A page of events; `next_before` when there may be more') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/audit/verify', operationId: 'verifyAudit', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Walks the audit hash chain and says where it breaks, if it does.',
    responses: { 200: json(s.auditVerify, 'The outcome') }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'get', path: '/v1/admin/audit/export', operationId: 'exportAudit', tag: 'admin', caller: 'admin', role: 'auditor',
    summary: 'Streams events in chain order as JSON Lines, one event (as in the listing) per line; `after`/`before` seq bounds.',
    query: s.auditExportQuery,
    responses: { 200: { description: 'One JSON event per line', content: { 'application/x-ndjson': { type: 'string' } } } }, errors: ADMIN_ERRORS, errorKind: 'problem',
  },
  {
    method: 'post', path: '/v1/admin/ca/rotate', operationId: 'rotateCa', tag: 'admin', caller: 'admin', role: 'admin',
    summary: 'Prepares the next X.509 and JWT authorities now; they sign after `overlap` seconds.',
    body: jsonBody(rotateRequest, false),
    responses: { 202: json(s.caRotation, 'The prepared authorities and when they activate') }, errors: { ...ADMIN_ERRORS, 409: 'A rotation is prepared already' }, errorKind: 'problem',
  },
  // --- This document ---
  {
    method: 'get', path: '/openapi.json', operationId: 'getOpenApi', tag: 'meta', caller: 'public',
    summary: 'This OpenAPI 3.1 document.',
    responses: { 200: { description: 'The document', content: { 'application/json': z.looseObject({ openapi: z.string() }) } } }, errors: BASE, errorKind: 'problem',
  },
];
