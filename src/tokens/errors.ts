/**
 * OAuth errors of the token endpoints, one class per error code, in the protocol's own words
 * (after node-oidc-provider's `lib/helpers/errors.js`). `type` is the bare code that goes in
 * the `error` member of the RFC 6749 §5.2 response, `message` is its `error_description`
 * (safe to show the client), and internal detail for logs goes in `cause`, never to callers.
 *
 * ```ts
 * throw new InvalidGrant('the subject token has expired ("exp", RFC 7519 §4.1.4)');
 * // → 400 {"error":"invalid_grant","error_description":"the subject token has expired …"}
 * ```
 */
import { DomainError } from '../core/errors';

/**
 * The error codes Writ's OAuth endpoints answer with: RFC 6749 §5.2 (token endpoint), RFC 8693
 * §2.2.2 (token exchange), RFC 8707 §2 (`invalid_target`), RFC 9396 §5
 * (`invalid_authorization_details`), RFC 6750 §3.1 (resource servers: `invalid_token`,
 * `insufficient_scope`), RFC 7009 §2.2.1 (`unsupported_token_type`), RFC 9449 §12.2
 * (`invalid_dpop_proof`, `use_dpop_nonce`), and OpenID Connect Core §3.1.2.6
 * (`interaction_required`: the token vault needs the user to link an account).
 */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'invalid_authorization_details',
  'access_denied',
  'temporarily_unavailable',
  'invalid_token',
  'insufficient_scope',
  'unsupported_token_type',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'interaction_required',
] as const;
export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number];

/**
 * HTTP status per code: 400 unless a specification says otherwise. RFC 6749 §5.2 allows 401
 * for `invalid_client`; `temporarily_unavailable` (RFC 6749 §4.1.2.1) is answered 503 on the
 * token endpoint so that clients and load balancers retry; RFC 6750 §3.1 gives 401 for
 * `invalid_token` and 403 for `insufficient_scope`.
 */
export const OAUTH_ERROR_STATUS: Readonly<Record<OAuthErrorCode, number>> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  invalid_authorization_details: 400,
  access_denied: 400,
  temporarily_unavailable: 503,
  invalid_token: 401,
  insufficient_scope: 403,
  unsupported_token_type: 400,
  invalid_dpop_proof: 400, // RFC 9449 §5 at the token endpoint (a resource server answers 401, §7.1)
  use_dpop_nonce: 400, // RFC 9449 §8 at the token endpoint (a resource server answers 401, §9)
  interaction_required: 400,
};

/**
 * RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E — printable ASCII without
 * `"` or `\`. Descriptions cite RFC sections, so "§" is written "section"; a `"` becomes `'`,
 * and anything else outside the set (attacker text is quoted with `quote` before it gets here) `?`.
 */
export function oauthText(description: string): string {
  return description
    .replace(/§ ?/g, 'section ')
    .replace(/"/g, "'")
    .replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

/** The body of an error response (RFC 6749 §5.2). */
export interface OAuthErrorBody {
  readonly error: OAuthErrorCode;
  readonly error_description: string;
}

/** An OAuth error: `type` is the bare RFC 6749 §5.2 `error` code, `message` the `error_description`. */
export class OAuthError extends DomainError {
  readonly type: OAuthErrorCode;
  readonly status: number;

  constructor(code: OAuthErrorCode, description: string, options?: { cause?: unknown; status?: number }) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause });
    this.type = code;
    this.status = options?.status ?? OAUTH_ERROR_STATUS[code];
  }

  /** The `error` member of the response. */
  get error(): OAuthErrorCode {
    return this.type;
  }

  /** The `error_description` member of the response. */
  get error_description(): string {
    return this.message;
  }

  /** The response body, RFC 6749 §5.2. */
  toJSON(): OAuthErrorBody {
    return { error: this.type, error_description: this.message };
  }
}

type Options = { cause?: unknown };

/** RFC 6749 §5.2: a parameter is missing, repeated, unsupported or malformed. */
export class InvalidRequest extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_request', description, options);
  }
}

/** RFC 6749 §5.2 / RFC 8705 §2: client authentication failed (no or bad client certificate, unknown or disabled entry). 401. */
export class InvalidClient extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_client', description, options);
  }
}

/** RFC 6749 §5.2 / RFC 8693 §2.2.2: the subject token is invalid, expired, foreign, or was issued to another client. */
export class InvalidGrant extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_grant', description, options);
  }
}

/** RFC 6749 §5.2: the authenticated client may not use this grant type. */
export class UnauthorizedClient extends OAuthError {
  constructor(description: string, options?: Options) {
    super('unauthorized_client', description, options);
  }
}

/** RFC 6749 §5.2: the grant type is not supported. */
export class UnsupportedGrantType extends OAuthError {
  constructor(description: string, options?: Options) {
    super('unsupported_grant_type', description, options);
  }
}

/** RFC 6749 §5.2: the requested scope is invalid or unknown. */
export class InvalidScope extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_scope', description, options);
  }
}

/** RFC 8707 §2 / RFC 8693 §2.2.2: the `resource` is not an absolute URI, is more than one, or is not registered. */
export class InvalidTarget extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_target', description, options);
  }
}

/** RFC 9396 §5: `authorization_details` is malformed, names an unknown type, or asks for unknown tools. */
export class InvalidAuthorizationDetails extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_authorization_details', description, options);
  }
}

/** RFC 6749 §4.1.2.1: policy denied every requested tool and action, or the chain is too deep. */
export class AccessDenied extends OAuthError {
  constructor(description: string, options?: Options) {
    super('access_denied', description, options);
  }
}

/**
 * The token vault has no grant of the user that covers the request: the user must link their
 * account at the provider first, at `link_uri` (single use, until `link_expires_in` seconds from
 * now, only for that user). The name is OpenID Connect Core §3.1.2.6's; the two members are Writ's.
 */
export class InteractionRequired extends OAuthError {
  constructor(
    description: string,
    readonly linkUri?: string,
    readonly linkExpiresIn?: number,
  ) {
    super('interaction_required', description);
  }

  override toJSON(): OAuthErrorBody & { link_uri?: string; link_expires_in?: number } {
    return { ...super.toJSON(), ...(this.linkUri !== undefined && { link_uri: this.linkUri }), ...(this.linkExpiresIn !== undefined && { link_expires_in: this.linkExpiresIn }) };
  }
}

/** RFC 6749 §4.1.2.1: Writ cannot answer now (the lease could not be committed); no token was issued. 503. */
export class TemporarilyUnavailable extends OAuthError {
  constructor(description: string, options?: Options) {
    super('temporarily_unavailable', description, options);
  }
}

/** RFC 6750 §3.1: the access token presented to a resource server is expired, revoked or malformed. 401. */
export class InvalidToken extends OAuthError {
  constructor(description: string, options?: Options) {
    super('invalid_token', description, options);
  }
}

/** RFC 6750 §3.1: the access token does not allow this tool or action. 403. */
export class InsufficientScope extends OAuthError {
  constructor(description: string, options?: Options) {
    super('insufficient_scope', description, options);
  }
}

/** RFC 7009 §2.2.1: revocation of this token type is not supported. */
export class UnsupportedTokenType extends OAuthError {
  constructor(description: string, options?: Options) {
    super('unsupported_token_type', description, options);
  }
}

/** Token endpoint 400 (RFC 9449 §5, §8); a resource server answers 401 (§7.1, §9). */
const dpopStatus = (resource: boolean): number => (resource ? 401 : 400);

/** RFC 9449 §5 / §7.1: the DPoP proof is missing, malformed, or fails a check of §4.3. 400 (`forResource()`: 401). */
export class InvalidDpopProof extends OAuthError {
  readonly dpopError = 'invalid_dpop_proof' as const;

  constructor(description: string, options?: { cause?: unknown; resource?: boolean }) {
    super('invalid_dpop_proof', description, { status: dpopStatus(options?.resource ?? false), ...(options?.cause === undefined ? {} : { cause: options.cause }) });
  }

  /** The same refusal as a resource server answers it: 401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (RFC 9449 §7.1). */
  forResource(): InvalidDpopProof {
    return new InvalidDpopProof(this.message, { resource: true, ...(this.cause === undefined ? {} : { cause: this.cause }) });
  }
}

/**
 * RFC 9449 §8 / §9: the server requires a nonce and the proof has none, or not the current
 * one. `nonce` is the fresh value to send in the `DPoP-Nonce` response header (exactly one, §8).
 * 400 at the token endpoint; `forResource()`: 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
 */
export class UseDpopNonce extends OAuthError {
  readonly dpopError = 'use_dpop_nonce' as const;

  constructor(
    readonly nonce: string,
    description: string,
    options?: { resource?: boolean },
  ) {
    super('use_dpop_nonce', description, { status: dpopStatus(options?.resource ?? false) });
  }

  /** The same refusal as a resource server answers it (RFC 9449 §9). */
  forResource(): UseDpopNonce {
    return new UseDpopNonce(this.nonce, this.message, { resource: true });
  }
}

const CLASSES: Record<OAuthErrorCode, (description: string, options?: Options) => OAuthError> = {
  invalid_request: (d, o) => new InvalidRequest(d, o),
  invalid_client: (d, o) => new InvalidClient(d, o),
  invalid_grant: (d, o) => new InvalidGrant(d, o),
  unauthorized_client: (d, o) => new UnauthorizedClient(d, o),
  unsupported_grant_type: (d, o) => new UnsupportedGrantType(d, o),
  invalid_scope: (d, o) => new InvalidScope(d, o),
  invalid_target: (d, o) => new InvalidTarget(d, o),
  invalid_authorization_details: (d, o) => new InvalidAuthorizationDetails(d, o),
  access_denied: (d, o) => new AccessDenied(d, o),
  temporarily_unavailable: (d, o) => new TemporarilyUnavailable(d, o),
  invalid_token: (d, o) => new InvalidToken(d, o),
  insufficient_scope: (d, o) => new InsufficientScope(d, o),
  unsupported_token_type: (d, o) => new UnsupportedTokenType(d, o),
  invalid_dpop_proof: (d, o) => new InvalidDpopProof(d, o),
  // Built from its code alone it has no nonce to hand out: the HTTP layer sends `DPoP-Nonce` only for a non-empty one.
  use_dpop_nonce: (d) => new UseDpopNonce('', d),
  interaction_required: (d) => new InteractionRequired(d),
};

/** The error class for a code: `oauthError('invalid_grant', '…')` is an {@link InvalidGrant}. */
export function oauthError(code: OAuthErrorCode, description: string, options?: Options): OAuthError {
  return CLASSES[code](description, options);
}

export const isOAuthError = (err: unknown): err is OAuthError => err instanceof OAuthError;
