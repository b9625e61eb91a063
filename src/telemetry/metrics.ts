/**
 * What the domains report for metrics, named as the domains name things. Each call is made
 * once the fact it reports is committed (a token's lease, a revocation's transaction), so the
 * counters never run ahead of the audit trail. Labels are bounded by construction: every
 * label value is one of a fixed set, never a user, a SPIFFE ID or a URL.
 */
export interface DomainMetrics {
  /** A task token issued by token exchange (RFC 8693), its lease committed. */
  tokenIssued(token: { readonly chained: boolean; readonly binding: TokenBindingKind }): void;
  /** One Cedar decision: `action` for a tool and action, `delegate` for a chained hop. */
  policyDecision(kind: 'action' | 'delegate' | 'use_grant', allowed: boolean): void;
  /** An X.509-SVID attestation, by the attestor the request named (`unknown` when it named none this broker has). */
  attestation(attestor: string, outcome: Outcome): void;
  /** An X.509-SVID renewal over mTLS. */
  svidRenewal(outcome: Outcome): void;
  /** A JWT-SVID request. */
  jwtSvid(outcome: Outcome): void;
  /** A committed revocation, by the handle it named, and the leases it ended. */
  revoked(handle: RevocationHandle, leases: number): void;
  /** A Shared Signals SET (RFC 8935): once per event it carried when applied, once when replayed or refused. */
  signal(event: SignalEventLabel, outcome: 'applied' | 'replayed' | 'refused'): void;
  /** A group-commit batch written (src/db/group-commit.ts). */
  batchCommitted(queue: GroupCommitQueue, size: number): void;
}

export type Outcome = 'issued' | 'refused';
export type TokenBindingKind = 'mtls' | 'dpop';
export type GroupCommitQueue = 'audit' | 'leases';
/** The handles a revocation names (src/leases/revocations.ts), plus the kill switch and a task's end. */
export type RevocationHandle = 'jti' | 'task_id' | 'user' | 'session' | 'connector' | 'email' | 'audience' | 'user_connector' | 'kill_switch' | 'task_end';
/** A SET event type's last path segment when Writ acts on it (e.g. `session-revoked`), `other` when it does not, `none` for a SET not applied. */
export type SignalEventLabel = string;

/** Reports nothing: the default of every domain service, so that tests and tools need no registry. */
export const noMetrics: DomainMetrics = {
  tokenIssued: () => undefined,
  policyDecision: () => undefined,
  attestation: () => undefined,
  svidRenewal: () => undefined,
  jwtSvid: () => undefined,
  revoked: () => undefined,
  signal: () => undefined,
  batchCommitted: () => undefined,
};
