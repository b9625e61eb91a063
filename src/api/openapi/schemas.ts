import { z } from 'zod';
import { SET_ERROR_CODES } from '../../signals/errors';
import { ACTIONS, CLASSIFICATIONS, MCP_TOOL_TYPE } from '../../tokens/authorization-details';
import { TOKEN_TYPE } from '../../tokens/rfc8693';

/**
 * Response bodies (and the OAuth form bodies, which the token services read by hand) as zod
 * schemas, for the OpenAPI document only: the routers build these objects, these describe them.
 */

const time = z.string().describe('RFC 3339 date-time');
const nullable = <T extends z.ZodType>(s: T) => s.nullable();

/** RFC 9457 §3.1: `application/problem+json`. */
export const problem = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.unknown()).optional(),
});

/** RFC 6749 §5.2. */
export const oauthError = z.strictObject({ error: z.string(), error_description: z.string().optional(), link_uri: z.string().optional().describe('interaction_required (the token vault): where the user links their account'), link_expires_in: z.number().int().optional() });

/** RFC 8935 §2.4. */
export const setError = z.strictObject({ err: z.enum(SET_ERROR_CODES), description: z.string() });

export const entry = z.strictObject({
  id: z.string(),
  spiffe_id: z.string(),
  /** The agent that serves this workload entry (absent for an entry the broker attests). */
  parent_id: z.string().optional(),
  selectors: z.array(z.string()),
  x509_svid_ttl: z.number().int(),
  jwt_svid_ttl: z.number().int(),
  dns_names: z.array(z.string()),
  admin: z.boolean(),
  enabled: z.boolean(),
  metadata: z.record(z.string(), z.unknown()),
  created_at: time,
  updated_at: time,
});
export const entryList = z.strictObject({ entries: z.array(entry), next_after: z.string().optional() });

export const joinToken = z.strictObject({ token: z.string(), expires_at: time, entry_id: z.string(), spiffe_id: z.string() });

const tool = z.strictObject({ name: z.string(), actions: z.array(z.enum(ACTIONS)), classification: z.enum(CLASSIFICATIONS), egress: z.boolean().optional().describe('the tool sends data out: policy sees resource.egress'), per_call: z.boolean().optional().describe('every call needs a per-call decision from Writ (the access token lists it in per_call)') });
export const resource = z.strictObject({ uri: z.string(), spiffe_id: z.string(), tools: z.array(tool), created_at: time, updated_at: time });
export const resourceList = z.strictObject({ resources: z.array(resource) });

export const policySet = z.union([
  z.strictObject({ version: z.number().int().min(1), policies: z.string(), created_at: time, created_by: z.string() }),
  z.strictObject({ version: z.literal(0), policies: z.literal('') }),
]);
export const policyVersion = z.strictObject({ version: z.number().int(), created_at: time });
const policyVersionSummary = { version: z.number().int(), sha256: z.string(), created_at: time, created_by: z.string(), reason: nullable(z.string()) };
export const policyHistory = z.strictObject({ versions: z.array(z.strictObject(policyVersionSummary)), next_before: z.number().int().optional() });
export const policyVersionText = z.strictObject({ ...policyVersionSummary, policies: z.string() });

const blastRadius = z.strictObject({
  dry_run: z.literal(true),
  leases: z.number().int(),
  sample: z.array(
    z.strictObject({ jti: z.string(), kind: z.string(), spiffe_id: z.string(), subject: nullable(z.string()), task_id: nullable(z.string()), audience: z.array(z.string()), expires_at: time }),
  ),
  byUser: z.record(z.string(), z.number().int()),
  byConnector: z.record(z.string(), z.number().int()),
  byTask: z.record(z.string(), z.number().int()),
  byAudience: z.record(z.string(), z.number().int()),
});
export const revocationResult = z.union([z.strictObject({ revoked: z.number().int() }), blastRadius]);

export const lease = z.strictObject({
  jti: z.string(),
  kind: z.string(),
  spiffe_id: z.string(),
  subject: nullable(z.string()),
  subject_issuer: nullable(z.string()),
  sid: nullable(z.string()),
  task_id: nullable(z.string()),
  audience: z.array(z.string()),
  serial: nullable(z.string()),
  issued_at: time,
  expires_at: time,
  revoked_at: nullable(time),
  revocation_reason: nullable(z.string()),
});
export const leaseList = z.strictObject({ leases: z.array(lease), next_before: z.string().optional() });

export const connectorDisabled = z.strictObject({ spiffe_id: z.string(), entries_disabled: z.number().int(), leases_revoked: z.number().int() });
export const connectorEnabled = z.strictObject({ spiffe_id: z.string(), entries_enabled: z.number().int() });
export const connectorReason = z.strictObject({ reason: z.string().min(1).max(512).optional() });

/** src/api/admin/audit.ts `auditEventView`. */
export const auditEvent = z.strictObject({
  seq: z.number().int(),
  at: time,
  type: z.string(),
  subject: nullable(z.string()),
  subject_issuer: nullable(z.string()).describe('The identity provider that names `subject`'),
  actor: nullable(z.string()),
  details: z.record(z.string(), z.unknown()),
  prev_hash: z.string(),
  hash: z.string(),
});
export const auditList = z.strictObject({ events: z.array(auditEvent), next_before: z.number().int().optional() });
export const leaseDetail = lease.extend({
  claims: nullable(z.record(z.string(), z.unknown())).describe('The access token\'s claims as issued (RFC 9068 §2.2), from its token.issued audit event; null for SVIDs'),
  policy_version: nullable(z.number().int()).describe('The policy version that decided the exchange'),
  decisions: z.array(z.record(z.string(), z.unknown())).describe('The decision for each tool asked, at issuance'),
  events: z.array(auditEvent).describe('Audit events naming the token, and its task\'s newest'),
});
export const auditVerify = z.union([
  z.strictObject({ ok: z.literal(true), events: z.number().int(), head: z.string() }),
  z.strictObject({ ok: z.literal(false), broken_at: z.number().int(), reason: z.string(), events_checked: z.number().int() }),
]);
const seq = z.string().regex(/^[1-9][0-9]{0,15}$/);
const auditFilters = {
  type: z.string().min(1).max(200).describe('An event type, or a prefix ending in `*`').optional(),
  subject: z.string().min(1).max(2048).optional(),
  subject_issuer: z.string().min(1).max(2048).describe('The identity provider that names the subject').optional(),
  actor: z.string().min(1).max(2048).optional(),
  task_id: z.uuid().describe('Events of this task').optional(),
  jti: z.string().min(1).max(200).describe('Events naming this token or credential').optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
};
export const auditListQuery = z.strictObject({ ...auditFilters, limit: z.coerce.number().int().min(1).max(1000).default(100), before: seq.optional() });
export const auditExportQuery = z.strictObject({ ...auditFilters, after: seq.optional(), before: seq.optional() });

export const caRotation = z.strictObject({ x509_authority: z.string(), jwt_authority: z.string(), activates_at: time, spiffe_sequence: z.number().int() });

export const x509Svid = z.strictObject({ spiffe_id: z.string(), svid: z.string().describe('PEM chain'), expires_at: time, bundle: z.string().describe('PEM trust bundle') });
export const jwtSvid = z.strictObject({ token: z.string(), spiffe_id: z.string(), expires_at: time });
/** The approval a decision depends on (AuthZEN Access Request and Approval Profile's shape where it fits). */
const approvalContext = z.strictObject({
  id: z.string(),
  status: z.enum(['pending', 'approved', 'denied']),
  url: z.string().describe('what approvers open'),
  expires_at: time.optional(),
  approved_at: time.optional(),
  approved_until: time.optional(),
});
export const evaluationResponse = z.strictObject({
  decision: z.boolean(),
  context: z.strictObject({ reason: z.string().optional().describe('why not; approval_required while an approver has not decided'), policies: z.array(z.string()).optional(), approval: approvalContext.optional() }).optional(),
});
export const evaluationsResponse = z.strictObject({ evaluations: z.array(evaluationResponse) });
export const authzenConfiguration = z.strictObject({ policy_decision_point: z.string(), access_evaluation_endpoint: z.string(), access_evaluations_endpoint: z.string() });
export const agentEntries = z.strictObject({
  entries: z.array(z.strictObject({ id: z.string(), spiffe_id: z.string(), selectors: z.array(z.string()), x509_svid_ttl: z.number().int(), jwt_svid_ttl: z.number().int(), dns_names: z.array(z.string()), updated_at: time })),
  revoked_serials: z.array(z.string()).describe('serials of revoked, unexpired X.509-SVIDs of these entries'),
});
export const approval = z.strictObject({
  id: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'revoked']),
  task_id: z.string(),
  user: z.strictObject({ sub: z.string(), iss: z.string() }),
  connector: z.string(),
  server: z.string(),
  tool: z.string(),
  action: z.string(),
  classification: z.string(),
  reason: z.string().optional(),
  policies: z.array(z.string()),
  requested_at: time,
  expires_at: time,
  decided_at: time.optional(),
  decided_by: z.strictObject({ sub: z.string(), iss: z.string().nullable() }).optional(),
  decision_reason: z.string().optional(),
  approved_until: time.optional(),
  url: z.string().describe('what approvers open: this resource'),
});
export const approvalList = z.strictObject({ approvals: z.array(approval) });
export const roleBinding = z.strictObject({ id: z.string(), role: z.enum(['auditor', 'operator', 'admin']), issuer: z.string(), group: z.string().optional(), subject: z.string().optional(), created_by: z.string().describe('"config", or who created it') });
export const roleBindingList = z.strictObject({ role_bindings: z.array(roleBinding) });
export const signIn = z.strictObject({ client_id: z.string(), issuers: z.array(z.string()) });
export const consoleSession = z.strictObject({ user: z.string(), issuer: z.string(), role: z.enum(['auditor', 'operator', 'admin']).optional(), csrf: z.string(), expires_at: time });
export const policyValidation = z.union([z.strictObject({ valid: z.literal(true) }), z.strictObject({ valid: z.literal(false), errors: z.array(z.string()) })]);
export const taskEventsRecorded = z.strictObject({ recorded: z.number().int() });
export const taskEnded = z.strictObject({ task_id: z.string(), revoked: z.number().int() });

const jwk = z.looseObject({ kty: z.string() });
/** SPIFFE Trust Domain and Bundle §4: a JWK Set with `spiffe_sequence` and `spiffe_refresh_hint`. */
export const spiffeBundle = z.looseObject({ keys: z.array(jwk), spiffe_sequence: z.number().int().optional(), spiffe_refresh_hint: z.number().int().optional() });
/** RFC 7517 §5. */
export const jwkSet = z.strictObject({ keys: z.array(jwk) });

/** RFC 8414 §2. */
export const authorizationServerMetadata = z.looseObject({
  issuer: z.string(),
  token_endpoint: z.string(),
  introspection_endpoint: z.string(),
  revocation_endpoint: z.string(),
  jwks_uri: z.string(),
  grant_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint_auth_methods_supported: z.array(z.string()),
  revocation_endpoint_auth_methods_supported: z.array(z.string()),
  tls_client_certificate_bound_access_tokens: z.boolean(),
  dpop_signing_alg_values_supported: z.array(z.string()),
  authorization_details_types_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
});

const mcpTool = z.strictObject({ type: z.literal(MCP_TOOL_TYPE), tools: z.array(z.string()), actions: z.array(z.enum(ACTIONS)), data_classification: z.enum(CLASSIFICATIONS).optional() });

/** RFC 8693 §2.2.1, with RFC 9396 §7 `authorization_details`. */
export const tokenResponse = z.strictObject({
  access_token: z.string(),
  issued_token_type: z.literal(TOKEN_TYPE.ACCESS_TOKEN),
  token_type: z.enum(['Bearer', 'DPoP']),
  expires_in: z.number().int(),
  task_id: z.string(),
  authorization_details: z.array(mcpTool),
});
/** RFC 8693 §2.2.1 from the token vault: the provider's own access token (`audience` a provider, `scope` what the task needs). */
export const grantReleaseResponse = z.strictObject({
  access_token: z.string().describe('The provider\'s access token'),
  issued_token_type: z.literal(TOKEN_TYPE.ACCESS_TOKEN),
  token_type: z.string().describe('The provider\'s (RFC 6749 §7.1)'),
  expires_in: z.number().int().describe('Never beyond the task token'),
  scope: z.string(),
});

interface ActShape {
  sub: string;
  act?: ActShape;
}
const act: z.ZodType<ActShape> = z.lazy(() => z.looseObject({ sub: z.string(), act: act.optional() }));

/** RFC 7662 §2.2 (claims as signed, RFC 9068 §2.2). */
export const introspectionResponse = z.union([
  z.strictObject({ active: z.literal(false) }),
  z.looseObject({
    active: z.literal(true),
    token_type: z.enum(['Bearer', 'DPoP']),
    iss: z.string(),
    sub: z.string(),
    aud: z.string(),
    client_id: z.string(),
    act,
    cnf: z.union([z.strictObject({ 'x5t#S256': z.string() }), z.strictObject({ jkt: z.string() })]),
    authorization_details: z.array(mcpTool),
    task_id: z.string(),
    sid: z.string().optional(),
    iat: z.number().int(),
    exp: z.number().int(),
    jti: z.string(),
  }),
]);

/** RFC 8693 §2.1 (RFC 9396 §6.1 `authorization_details`; RFC 7521 §4.2 client assertions). */
export const tokenForm = z.looseObject({
  grant_type: z.literal('urn:ietf:params:oauth:grant-type:token-exchange'),
  subject_token: z.string(),
  subject_token_type: z.string().describe('An RFC 8693 §3 token type URI'),
  resource: z.string().optional().describe('The MCP server (RFC 8707); not with the token vault'),
  authorization_details: z.string().optional().describe('A JSON array of `mcp_tool` objects (RFC 9396); required with resource'),
  audience: z.string().optional().describe('The token vault: a provider\'s id (then subject_token is the connector\'s task token)'),
  scope: z.string().optional().describe('The token vault: the scopes the task needs at the provider'),
  task_id: z.string().optional(),
  requested_token_type: z.string().optional(),
  client_assertion_type: z.string().optional(),
  client_assertion: z.string().optional().describe('A JWT-SVID, when not authenticating with the client certificate'),
});
/** RFC 7662 §2.1. */
export const introspectionForm = z.looseObject({ token: z.string(), token_type_hint: z.string().optional() });
/** RFC 7009 §2.1. */
export const revocationForm = z.looseObject({ token: z.string(), token_type_hint: z.string().optional() });

// --- The token vault (issue 20) ---
export const provider = z.strictObject({
  id: z.string().describe('Its name in Writ: the audience a connector asks for'),
  issuer: z.string(),
  client_id: z.string(),
  client_auth: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt']),
  scopes: z.array(z.string()).describe('The scopes it may grant'),
  classification: z.enum(['public', 'internal', 'confidential', 'restricted']),
  resource: nullable(z.string()),
  revoke_on: z.array(z.enum(['user', 'session', 'account', 'connector'])),
  created_by: z.string(),
  created_at: time,
  updated_at: time,
}).describe('A downstream provider; its client secret or private key is never returned');
export const providerList = z.strictObject({ providers: z.array(provider) });
export const grant = z.strictObject({ id: z.string(), provider: z.string(), user: z.strictObject({ iss: z.string(), sub: z.string() }), scopes: z.array(z.string()), created_at: time, refreshed_at: nullable(time) }).describe('A user\'s grant at a provider; its refresh token is never returned');
export const grantList = z.strictObject({ grants: z.array(grant) });
