/**
 * Writ tokens for MCP SDK v2's own bearer middleware: `writTokenVerifier` is an
 * `OAuthTokenVerifier` (`verifyAccessToken(token): Promise<AuthInfo>`) for
 * `requireBearerAuth({ verifier })` from `@modelcontextprotocol/express`, and `writBinding`
 * the Express middleware to mount after it.
 *
 * `writProtection` (`./protect`) remains the recommended path: it fails closed with 503 and
 * `Retry-After` when Writ cannot be reached (here: 400, which `requireBearerAuth` gives every
 * error it does not know), its challenges carry `realm`, its refusals `Cache-Control:
 * no-store`, and it checks the RFC 8705 certificate binding, the 2026-07-28 headers and tool
 * grants itself, in one step. Use this pair only where `requireBearerAuth` is a given.
 *
 * A verifier sees only the token, never the connection it came over, so it cannot check that
 * the token is bound to the request's TLS client certificate (RFC 8705 §3). It therefore fails
 * closed: the `AuthInfo` it returns has no scopes and no identity, only `extra.unboundClaims`
 * — `writIdentityOf` is undefined and `grantedToolsOnly` grants nothing — until
 * `writBinding` has compared the token's `cnf` with the request's client certificate and put
 * the full `AuthInfo` (and `req.writ`) in place.
 *
 * ```ts
 * const options = { resource, issuer, jwksUri, ca: bundlePem, introspect: { url, tls } };
 * app.post('/mcp', express.json(), requireBearerAuth({ verifier: writTokenVerifier(options), resourceMetadataUrl }), writBinding(),
 *   (req, res) => void node(req, res, req.body));
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessTokenClaims } from '../tokens/access-token';
import { InvalidToken, OAuthError, TemporarilyUnavailable } from '../tokens/errors';
import { mcpAuthInfo, unboundAuthInfo, writIdentity, type McpAuthInfo } from './identity';
import { checkCertificateBinding, MissingToken, sendBearerError, tlsPeerCertificate, tokenChecks, type TokenCheckOptions, type WritRequest } from './protect';
import type { ToolActions } from './tools';

/** The options of {@link writTokenVerifier}: those of `writProtection` that concern the token alone. */
export type WritTokenVerifierOptions = TokenCheckOptions;

/** SDK v2's `OAuthTokenVerifier`, structurally. */
export interface WritTokenVerifier {
  verifyAccessToken(token: string): Promise<McpAuthInfo>;
}

/**
 * The SDK v2 error-brand registry (`Symbol.for("mcp.sdk.errorBrands")`): an error carrying the
 * brand `mcp.OAuthError` is `instanceof OAuthError` for every bundled copy of the SDK, which is
 * how `requireBearerAuth` tells a refusal (401 `invalid_token`) from a crash (500) without this
 * module importing the SDK.
 */
const SDK_ERROR_BRANDS = Symbol.for('mcp.sdk.errorBrands');

/** An OAuth error as SDK v2's `OAuthError` looks: `code`, `message`, `toResponseObject()`. */
export class VerifierError extends Error {
  readonly code: string;
  constructor(error: OAuthError) {
    super(error.error_description);
    this.name = 'OAuthError';
    this.code = error.error;
    Object.defineProperty(this, SDK_ERROR_BRANDS, { value: new Set(['mcp.OAuthError']), enumerable: false, configurable: true });
  }
  toResponseObject(): { error: string; error_description: string } {
    return { error: this.code, error_description: this.message };
  }
}

/**
 * An SDK v2 `OAuthTokenVerifier` for Writ access tokens: checks 2 and 4 of `writProtection`
 * (signature, `iss`, `aud`, `exp`; introspection), with the same code. Resolves to an
 * `AuthInfo` whose binding is not checked yet (see the module comment); rejects with an error
 * `requireBearerAuth` answers: 401 `invalid_token`, or (Writ unreachable) 400
 * `temporarily_unavailable` — never a pass.
 */
export function writTokenVerifier(options: WritTokenVerifierOptions): WritTokenVerifier {
  const checks = tokenChecks(options, 'writTokenVerifier');
  return {
    async verifyAccessToken(token: string): Promise<McpAuthInfo> {
      try {
        const claims = await checks.signed(token);
        await checks.active(token, claims);
        return unboundAuthInfo(token, claims, checks.challenge.resourceMetadataUrl);
      } catch (err) {
        throw new VerifierError(err instanceof OAuthError ? err : new TemporarilyUnavailable('the token cannot be checked now', { cause: err }));
      }
    },
  };
}

export interface WritBindingOptions {
  /** As `writProtection`'s: the DER of the request's client certificate; the TLS peer certificate by default. */
  readonly clientCertificate?: (req: IncomingMessage) => Uint8Array | undefined;
  /** As `writProtection`'s: the actions each tool needs, for the identity's `tools`. */
  readonly toolActions?: ToolActions;
  /** RFC 6750 §3 `realm` and RFC 9728 §5.1 `resource_metadata` of the 401 challenge. */
  readonly realm?: string;
  readonly resourceMetadataUrl?: string;
  /** Called with every refusal; the response is already decided. */
  readonly onRefusal?: (error: OAuthError, req: IncomingMessage) => void;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Express middleware after `requireBearerAuth({ verifier: writTokenVerifier(…) })`: checks the
 * RFC 8705 §3 binding of `req.auth`'s token to this request's TLS client certificate, then
 * replaces `req.auth` with the full `AuthInfo` (identity in `extra.writ`) and sets `req.writ`.
 * A request without such an `AuthInfo`, or over another certificate, gets 401 `invalid_token`
 * (fail closed). A request `writProtection` already admitted passes unchanged.
 */
export function writBinding(options: WritBindingOptions = {}): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const writReq = req as WritRequest;
    const auth: unknown = writReq.auth;
    const refuse = (error: OAuthError) => {
      options.onRefusal?.(error, req);
      sendBearerError(res, error, { ...(options.realm !== undefined && { realm: options.realm }), resourceMetadataUrl: options.resourceMetadataUrl ?? (isRecord(auth) && typeof auth.resourceMetadataUrl === 'string' ? auth.resourceMetadataUrl : undefined) });
    };
    if (!isRecord(auth) || typeof auth.token !== 'string') return refuse(new MissingToken());
    const extra = isRecord(auth.extra) ? auth.extra : {};
    if (writReq.writ !== undefined && extra.writ === writReq.writ) return next();
    const claims = extra.unboundClaims as AccessTokenClaims | undefined;
    if (!isRecord(claims) || !isRecord(claims.cnf)) return refuse(new InvalidToken('the token was not verified by writTokenVerifier'));
    try {
      checkCertificateBinding(claims, (options.clientCertificate ?? tlsPeerCertificate)(req));
    } catch (err) {
      return refuse(err instanceof OAuthError ? err : new InvalidToken('the certificate binding cannot be checked'));
    }
    writReq.writ = writIdentity(claims, options.toolActions);
    writReq.auth = mcpAuthInfo(auth.token, writReq.writ, typeof auth.resourceMetadataUrl === 'string' ? auth.resourceMetadataUrl : undefined);
    next();
  };
}
