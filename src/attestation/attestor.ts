/**
 * Attestors verify evidence that a workload presents and answer with selectors: typed
 * facts such as `oidc:sub:system:serviceaccount:ns:sa` or `x509pop:subject_cn:db-1`.
 * Registration entries say which selectors make which SPIFFE ID. (SPIRE's node/workload
 * attestor plugins have this shape.)
 */

/** What the transport knows about the caller. */
export interface AttestationContext {
  /** The TLS client certificate chain, DER, leaf first; empty when none was presented. */
  readonly peerCertificates: readonly Uint8Array[];
}

export interface AttestationResult {
  /** Selectors proven by the evidence, each `<attestor>:<type>:<value>`. */
  readonly selectors: readonly string[];
  /** join_token only: the registration entry the token was created for. */
  readonly entryId?: string;
}

export interface Attestor {
  /** The attestor's name as used in `POST /v1/attest {attestor}` and as the selector prefix. */
  readonly name: string;
  /** Verifies `evidence` (already shape-checked as an object); throws AttestationError when it does not hold. */
  attest(evidence: Record<string, unknown>, context: AttestationContext): Promise<AttestationResult>;
}
