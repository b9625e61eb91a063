/**
 * Every audit event Writ writes, defined once: what it records, what its subject and actor
 * name, and the fields of its details. A state change and its event commit in one
 * transaction, written by the domain service that made the change (or refused it).
 */
export interface AuditEventDefinition {
  /** What the event records, in one sentence. */
  readonly records: string;
  /** What `subject` names (the person on whose behalf), or undefined when it is never set. */
  readonly subject?: string;
  /** What `actor` names (a SPIFFE ID, "admin", "writ", a signal issuer), or undefined when it is never set. */
  readonly actor?: string;
  /** The fields of `details` (some are optional). */
  readonly details: readonly string[];
}

const WRIT = '"writ" (the broker itself)';
const ADMIN = 'the admin caller: "admin" (the bootstrap token), user:<issuer>#<subject> (a person signed in), or the admin SVID\'s SPIFFE ID';

export const AUDIT_EVENTS = {
  // ── broker start-up and key custody (src/broker.ts, src/ca/)
  'admin_credential.generated': { records: 'an admin token was generated at start-up, shown once and written to a 0600 file until its first use', actor: WRIT, details: [] },
  'admin_credential.file_deleted': { records: 'the generated admin token was used for the first time, so the broker deleted the file that kept it', actor: WRIT, details: ['path'] },
  'authority_key.sealed': { records: 'a CA or JWT key from WRIT_CA_DIR was sealed under the KEK into the database', actor: WRIT, details: ['authority', 'kek', 'from'] },
  'kek.rotated': { records: 'the sealed authority keys were resealed under a new key-encryption key', actor: WRIT, details: ['kek', 'previous', 'resealed'] },
  'ca.created': { records: 'a new X.509 CA was generated', actor: WRIT, details: ['subject', 'notAfter'] },
  'jwt_key.created': { records: 'a new JWT signing key was generated', actor: WRIT, details: ['kid'] },
  'bundle.authority_added': { records: 'an authority was published in the trust bundle', actor: WRIT, details: ['authority', 'spiffeSequence'] },
  'bundle.authority_retired': { records: 'an authority was marked retired in the trust bundle (still trusted during overlap)', actor: WRIT, details: ['authority', 'spiffeSequence'] },
  'bundle.authority_removed': { records: 'an authority was removed from the trust bundle', actor: WRIT, details: ['authority', 'spiffeSequence'] },
  'ca.rotation_requested': { records: 'an operator asked for a CA rotation', actor: ADMIN, details: ['overlap'] },
  'ca.rotation_prepared': { records: 'the next CA and JWT key were prepared and published ahead of activation', actor: WRIT, details: ['x509Authority', 'jwtAuthority', 'activatesAt', 'spiffeSequence'] },
  'ca.rotation_activated': { records: 'the prepared CA and JWT key became active', actor: WRIT, details: ['x509Authority', 'jwtAuthority', 'retired'] },

  // ── SVIDs (src/attestation/issuer.ts, src/broker.ts)
  'svid.issued': { records: 'an X.509-SVID was issued (attestation, renewal, or the broker\'s own)', actor: 'the SVID\'s SPIFFE ID, or "writ" for the broker\'s own', details: ['spiffeId', 'entryId', 'serial', 'notAfter', 'attestor', 'selectors', 'renewed', 'agent'] },
  'svid.refused': { records: 'an attestation, a renewal, or an agent\'s request for a workload SVID was refused', actor: 'the renewing SVID\'s or the agent\'s SPIFFE ID (unset for attestation)', details: ['attestor', 'selectors', 'renew', 'agent', 'entryId', 'reason'] },
  'jwt_svid.issued': { records: 'a JWT-SVID was issued (to its holder, or to the agent serving its workload)', actor: 'the requesting SVID\'s SPIFFE ID', details: ['jti', 'audience', 'expiresAt', 'agent'] },
  'jwt_svid.refused': { records: 'a JWT-SVID request was refused', actor: 'the requesting SVID\'s SPIFFE ID', details: ['audience', 'agent', 'reason'] },

  // ── registration (src/attestation/, src/resources/, src/policy/)
  'entry.created': { records: 'a registration entry was created', actor: ADMIN, details: ['entryId', 'spiffeId', 'selectors', 'admin', 'parentId'] },
  'entry.updated': { records: 'a registration entry was changed', actor: ADMIN, details: ['entryId', 'fields'] },
  'entry.deleted': { records: 'a registration entry was deleted', actor: ADMIN, details: ['entryId'] },
  'join_token.created': { records: 'a one-time join token was issued for an entry (the token itself is never recorded)', actor: ADMIN, details: ['entryId', 'spiffeId', 'expiresAt'] },
  'resource.created': { records: 'a protected resource (MCP server) was registered', actor: ADMIN, details: ['uri', 'spiffeId', 'tools'] },
  'resource.updated': { records: 'a protected resource was changed', actor: ADMIN, details: ['uri', 'fields'] },
  'resource.deleted': { records: 'a protected resource was deleted', actor: ADMIN, details: ['uri'] },
  'role_binding.created': { records: 'an admin role was bound to a group or user of an identity provider', actor: ADMIN, details: ['bindingId', 'role', 'issuer', 'group', 'subject', 'reason'] },
  'role_binding.deleted': { records: 'an admin role binding was removed', actor: ADMIN, details: ['bindingId', 'reason'] },
  'policy.updated': { records: 'a new policy version was stored', actor: `${ADMIN}, or "policy_file" when seeded from WRIT_POLICY_FILE`, details: ['version', 'path', 'reason'] },

  // ── tokens (src/tokens/)
  'token.issued': { records: 'an access token was issued by token exchange (RFC 8693), committed with its lease', subject: 'the user (with subjectIssuer, their identity provider)', actor: 'the connector\'s SPIFFE ID', details: ['client', 'resource', 'user', 'taskId', 'policyVersion', 'decisions', 'taskHistory', 'attenuated', 'jti', 'granted', 'expiresAt', 'claims'] },
  'token.refused': { records: 'a token exchange was refused', subject: 'the user, once the subject token verified (with subjectIssuer, their identity provider)', actor: 'the client\'s SPIFFE ID, once authenticated', details: ['client', 'resource', 'user', 'taskId', 'policyVersion', 'decisions', 'taskHistory', 'attenuated', 'error'] },
  'token.revoked': { records: 'a token was revoked by its connector (RFC 7009)', subject: 'the token\'s user (with subjectIssuer, from its lease)', actor: 'the revoking connector\'s SPIFFE ID', details: ['jti', 'taskId'] },
  'token.revoke_refused': { records: 'a revocation request for a token of another connector was refused (RFC 7009 §2.1)', subject: 'the token\'s user (with subjectIssuer, from its lease)', actor: 'the caller\'s SPIFFE ID', details: ['jti', 'reason'] },
  'introspection.refused': { records: 'an introspection by a caller that is not the token\'s resource was answered inactive (RFC 7662 §4)', subject: 'the token\'s user (with subjectIssuer, from its lease)', actor: 'the caller\'s SPIFFE ID', details: ['jti', 'aud', 'reason'] },
  'access.evaluated': { records: 'a per-call decision was asked over AuthZEN (POST /access/v1/evaluation or /evaluations) and answered', subject: 'the user (with subjectIssuer, their identity provider)', actor: 'the asking PEP\'s SPIFFE ID (an MCP server or a connector)', details: ['taskId', 'tool', 'action', 'decision', 'reason', 'approvalId', 'server', 'connector', 'policyVersion', 'policies', 'taskHistory', 'callId'] },
  'approval.requested': { records: 'a call a permit marks @approval("required") asked for human approval: a request was opened', subject: 'the requesting user (with subjectIssuer)', actor: 'the task\'s connector', details: ['approvalId', 'taskId', 'server', 'tool', 'action', 'classification', 'policies', 'expiresAt', 'reason'] },
  'approval.decided': { records: 'an approver approved or denied a request, or an operator denied it (as: "operator")', subject: 'the requesting user (with subjectIssuer)', actor: 'the approver, as user:<iss>#<sub>', details: ['approvalId', 'taskId', 'server', 'tool', 'action', 'decision', 'approver', 'as', 'reason', 'approvedUntil'] },
  'oauth.refused': { records: 'a request to an OAuth endpoint was refused before any service decided', details: ['endpoint', 'error'] },

  // ── leases, tasks, revocations (src/leases/)
  'task.calls_reported': { records: 'a resource server reported tools/call requests it let through in a task, and how they ended (task history)', subject: 'the task\'s user (with subjectIssuer)', actor: 'the reporting server\'s SPIFFE ID', details: ['taskId', 'server', 'calls'] },
  'task.ended': { records: 'a task was ended by its connector and its leases revoked', actor: 'the connector\'s SPIFFE ID', details: ['taskId', 'revoked'] },
  revocation: { records: 'an operator revoked leases matching a selector', actor: ADMIN, details: ['selector', 'reason', 'revoked', 'taskId', 'jti'] },
  'connector.disabled': { records: 'a connector was disabled (kill switch): its entries disabled and leases revoked', actor: ADMIN, details: ['spiffeId', 'reason', 'entries', 'revoked'] },
  'connector.enabled': { records: 'a disabled connector was enabled again', actor: ADMIN, details: ['spiffeId', 'reason', 'entries'] },

  // ── the token vault (src/vault/)
  'provider.created': { records: 'a downstream provider (a SaaS authorization server the vault is a client of) was registered; its secret sealed', actor: ADMIN, details: ['provider', 'issuer', 'clientId', 'clientAuth', 'scopes'] },
  'provider.updated': { records: 'a downstream provider was changed (a new credential, scopes, resource or revoke_on)', actor: ADMIN, details: ['provider', 'changed'] },
  'provider.deleted': { records: 'a downstream provider was removed, with its grants', actor: ADMIN, details: ['provider', 'grants'] },
  'grant.linked': { records: 'a user linked their account at a provider: the refresh token is stored sealed', subject: 'the user (with subjectIssuer)', actor: 'the user, as user:<iss>#<sub>', details: ['provider', 'grantId', 'scopes', 'replaced', 'taskId'] },
  'grant.released': { records: 'an access token of the user\'s grant was released to a task under policy (RFC 8693 exchange)', subject: 'the user (with subjectIssuer)', actor: 'the connector\'s SPIFFE ID', details: ['provider', 'grantId', 'taskId', 'jti', 'scopes', 'refreshed', 'expiresAt', 'policyVersion', 'policies'] },
  'release.revoked': { records: 'an access token released to a task was revoked at the provider (RFC 7009) because its task token was revoked, its task ended, or its grant was revoked', subject: 'the user (with subjectIssuer)', actor: '"writ"', details: ['provider', 'grantId', 'taskId', 'jti', 'releaseId', 'atProvider'] },
  'vault.resealed': { records: 'the token vault\'s sealed secrets (providers\' client credentials, grants\' refresh tokens, released tokens) were sealed again under the current key-encryption key, after a KEK rotation or a move to a KEK', actor: WRIT, details: ['kek', 'providers', 'grants', 'releases'] },
  'grant.revoked': { records: 'a stored grant was revoked: by its user (unlink), an admin, a risk signal or a kill switch; at the provider too when it says so', subject: 'the user (with subjectIssuer)', actor: `${ADMIN}, the user, or the SET issuer`, details: ['provider', 'grantId', 'reason', 'atProvider'] },

  // ── risk signals (src/signals/)
  'signal.received': { records: 'a Security Event Token was applied (RFC 8935)', subject: 'the user the SET names, if any (with subjectIssuer)', actor: 'the SET issuer', details: ['jti', 'events'] },
  'signal.replayed': { records: 'a Security Event Token already applied was received again', actor: 'the SET issuer', details: ['jti'] },
  'signal.refused': { records: 'a pushed SET was refused (RFC 8935 §2.4)', details: ['err', 'description'] },
} as const satisfies Record<string, AuditEventDefinition>;

/** The type of every audit event Writ writes. */
export type AuditEventType = keyof typeof AUDIT_EVENTS;

/** Every defined event type. */
export const AUDIT_EVENT_TYPES = Object.keys(AUDIT_EVENTS) as AuditEventType[];

/** True when `type` is a defined audit event type. */
export function isAuditEventType(type: string): type is AuditEventType {
  return Object.hasOwn(AUDIT_EVENTS, type);
}
