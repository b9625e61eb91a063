/**
 * The errors the SDK throws and emits, one class per way a call can fail, so callers branch
 * with `instanceof` rather than on message text:
 *
 * - {@link WritOAuthError} and its subclasses: an OAuth endpoint refused (RFC 6749 §5.2 body
 *   `{error, error_description}`), e.g. {@link AccessDeniedError} when policy allows nothing.
 * - {@link WritProblemError}: any other endpoint refused with `application/problem+json` (RFC 9457).
 * - {@link WritUnavailableError}: the broker could not be reached or did not answer (network,
 *   TLS, timeout, a 5xx that is not Writ's own).
 * - {@link WritProtocolError}: the broker answered something the SDK cannot read.
 * - {@link SvidExpiredError}: the X.509-SVID expired before it could be renewed; nothing is served.
 * - {@link SourceClosedError}: the source was closed.
 * - {@link PeerNotAuthorizedError}: a TLS peer's SPIFFE ID was refused by an authorizer.
 *
 * @example
 * try {
 *   await tokens.exchange({ subjectToken, resource, tools });
 * } catch (err) {
 *   if (err instanceof AccessDeniedError) console.log('denied:', err.error_description);
 *   else throw err;
 * }
 */

/** The base of every error the SDK throws or emits. */
export class WritError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/**
 * The broker could not be reached or did not answer: connection refused or reset, DNS, a TLS
 * handshake that failed (e.g. the broker's certificate does not verify against the bundle), a
 * timeout, or a 5xx answer that carries no Writ error body. Safe to retry later.
 */
export class WritUnavailableError extends WritError {
  /** The HTTP status, when an answer came (a 5xx without a Writ body). */
  readonly status: number | undefined;
  /** The system or TLS error code of the cause (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, …), when there is one. */
  readonly code: string | undefined;

  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.status = options?.status;
    const code = (options?.cause as { code?: unknown } | undefined)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** The broker answered something the SDK cannot read (not JSON, missing members). */
export class WritProtocolError extends WritError {
  /** The HTTP status of the answer. */
  readonly status: number;

  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

/** An RFC 9457 problem details object, as Writ's non-OAuth endpoints answer refusals. */
export interface ProblemDetails {
  /** A `urn:writ:problem:<reason>` URI (e.g. `urn:writ:problem:entry-disabled`). */
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  /** Extension members (RFC 9457 §3.2). */
  readonly [extension: string]: unknown;
}

/**
 * A non-OAuth endpoint (attestation, renewal, JWT-SVIDs, bundle, task end) refused with
 * `application/problem+json` (RFC 9457). `type` is the machine-readable reason.
 */
export class WritProblemError extends WritError {
  /** The problem type URI, e.g. `urn:writ:problem:token-unusable`. */
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string | undefined;
  /** The whole problem object, extension members included. */
  readonly problem: ProblemDetails;

  constructor(problem: ProblemDetails) {
    super(problem.detail ? `${problem.title}: ${problem.detail} (${problem.type})` : `${problem.title} (${problem.type})`);
    this.type = problem.type;
    this.title = problem.title;
    this.status = problem.status;
    this.detail = problem.detail;
    this.problem = problem;
  }

  /** The reason after `urn:writ:problem:` (e.g. `entry-disabled`), or the whole type for foreign ones. */
  get reason(): string {
    return this.type.startsWith('urn:writ:problem:') ? this.type.slice('urn:writ:problem:'.length) : this.type;
  }
}

/**
 * An OAuth endpoint refused (RFC 6749 §5.2). `error` is the code, `error_description` the
 * broker's explanation (safe to log and show), `status` the HTTP status. Codes without a
 * class of their own arrive as a plain `WritOAuthError`.
 */
export class WritOAuthError extends WritError {
  /** The RFC 6749 §5.2 `error` code, e.g. `access_denied`. */
  readonly error: string;
  /** The RFC 6749 §5.2 `error_description`; "" when the broker sent none. */
  readonly error_description: string;
  /** The HTTP status of the answer. */
  readonly status: number;

  constructor(error: string, errorDescription: string, status: number) {
    super(errorDescription ? `${error}: ${errorDescription}` : error);
    this.error = error;
    this.error_description = errorDescription;
    this.status = status;
  }
}

/** RFC 6749 §5.2 `invalid_request`: a parameter is missing, repeated or malformed (e.g. an unknown task id). */
export class InvalidRequestError extends WritOAuthError {}
/** RFC 6749 §5.2 / RFC 8705 §2 `invalid_client`: the client certificate is missing, not a live SVID, or its entry is disabled. */
export class InvalidClientError extends WritOAuthError {}
/** RFC 8693 §2.2.2 `invalid_grant`: the subject token is invalid, expired, revoked or foreign, or the task has ended. */
export class InvalidGrantError extends WritOAuthError {}
/** RFC 6749 §5.2 `unauthorized_client`: this client may not use this grant. */
export class UnauthorizedClientError extends WritOAuthError {}
/** RFC 6749 §5.2 `unsupported_grant_type`. */
export class UnsupportedGrantTypeError extends WritOAuthError {}
/** RFC 6749 §5.2 `invalid_scope`. */
export class InvalidScopeError extends WritOAuthError {}
/** RFC 8707 §2 `invalid_target`: the resource is not an absolute URI or is not registered. */
export class InvalidTargetError extends WritOAuthError {}
/** RFC 9396 §5 `invalid_authorization_details`: an unknown tool, or an action the tool does not perform. */
export class InvalidAuthorizationDetailsError extends WritOAuthError {}
/** RFC 6749 §4.1.2.1 `access_denied`: policy allows none of the requested tools and actions now. */
export class AccessDeniedError extends WritOAuthError {}
/** RFC 6749 §4.1.2.1 `temporarily_unavailable`: the broker cannot decide now (503); retry later. */
export class TemporarilyUnavailableError extends WritOAuthError {}

/**
 * `interaction_required` from the token vault: the user has not linked their account at the
 * provider (or not for this scope). `linkUri` is where they do (single use, for them only, for
 * `linkExpiresIn` seconds); show it to them, then ask again.
 */
export class InteractionRequiredError extends WritOAuthError {
  /** Where the user links their account; undefined when the broker gave none. */
  readonly linkUri: string | undefined;
  readonly linkExpiresIn: number | undefined;

  constructor(error: string, description: string, status: number, body: Record<string, unknown> = {}) {
    super(error, description, status);
    this.linkUri = typeof body.link_uri === 'string' ? body.link_uri : undefined;
    this.linkExpiresIn = typeof body.link_expires_in === 'number' ? body.link_expires_in : undefined;
  }
}

const OAUTH_CLASSES: Readonly<Record<string, new (error: string, description: string, status: number, body?: Record<string, unknown>) => WritOAuthError>> = {
  invalid_request: InvalidRequestError,
  invalid_client: InvalidClientError,
  invalid_grant: InvalidGrantError,
  unauthorized_client: UnauthorizedClientError,
  unsupported_grant_type: UnsupportedGrantTypeError,
  invalid_scope: InvalidScopeError,
  invalid_target: InvalidTargetError,
  invalid_authorization_details: InvalidAuthorizationDetailsError,
  access_denied: AccessDeniedError,
  temporarily_unavailable: TemporarilyUnavailableError,
  interaction_required: InteractionRequiredError,
};

/** The error class for an RFC 6749 §5.2 body. */
export function oauthErrorFrom(error: string, description: string, status: number, body?: Record<string, unknown>): WritOAuthError {
  const Class = Object.hasOwn(OAUTH_CLASSES, error) ? OAUTH_CLASSES[error]! : WritOAuthError;
  return new Class(error, description, status, body);
}

/**
 * The source's X.509-SVID expired and could not be renewed in time (X509-SVID §4: a peer must
 * refuse an expired certificate, so it is never served). The source recovers by itself if it can
 * attest again (an OIDC token file or x509pop) and the broker answers.
 */
export class SvidExpiredError extends WritError {
  /** The SPIFFE ID of the expired SVID. */
  readonly spiffeId: string;
  /** Its `notAfter`. */
  readonly expiredAt: Date;

  constructor(spiffeId: string, expiredAt: Date) {
    super(`the X.509-SVID of ${spiffeId} expired at ${expiredAt.toISOString()} and was not renewed`);
    this.spiffeId = spiffeId;
    this.expiredAt = expiredAt;
  }
}

/** The source (or a client built on it) was closed. */
export class SourceClosedError extends WritError {
  constructor() {
    super('the X509Source is closed');
  }
}

/**
 * A TLS peer was refused after its certificate chain verified: it presented no valid
 * X.509-SVID (exactly one `spiffe://` URI SAN on an end-entity certificate, X509-SVID §2, §4.1),
 * or the authorizer refused its SPIFFE ID.
 */
export class PeerNotAuthorizedError extends WritError {
  /** The peer's SPIFFE ID, when it presented one. */
  readonly peerId: string | undefined;

  constructor(message: string, peerId?: string) {
    super(message);
    this.peerId = peerId;
  }
}
