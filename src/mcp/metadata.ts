/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata for an MCP server protected by Writ: the
 * document that names Writ as the authorization server, and the handler that serves it where
 * MCP clients look (the MCP authorization specification, 2025-06-18, "Authorization Server
 * Discovery"): the URL in the `resource_metadata` parameter of `writProtection`'s challenges.
 *
 * ```ts
 * app.use(protectedResourceMetadataHandler({ resource: 'https://mcp.example.com/github', issuer: 'https://writ.example.com' }));
 * // GET https://mcp.example.com/.well-known/oauth-protected-resource/github → the document
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DPOP_SIGNING_ALGORITHMS } from '../tokens/dpop';

export interface ProtectedResourceMetadataOptions {
  /** This resource's URI as registered at Writ (the tokens' `aud`). */
  readonly resource: string;
  /** Writ's issuer identifier (its RFC 8414 `issuer`). */
  readonly issuer: string;
  /** RFC 9728 §2 `resource_name`: a human-readable name for the resource. */
  readonly resourceName?: string;
  /** RFC 9728 §2 `resource_documentation`: a URL of documentation for developers. */
  readonly resourceDocumentation?: string;
}

/** The RFC 9728 §2 members this document carries. */
export interface ProtectedResourceMetadata {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly bearer_methods_supported: readonly ['header'];
  readonly tls_client_certificate_bound_access_tokens: true;
  readonly authorization_details_types_supported: readonly ['mcp_tool'];
  /** RFC 9449 §5.1 (for RFC 9728): DPoP-bound tokens are accepted, with proofs signed by these algorithms. */
  readonly dpop_signing_alg_values_supported: readonly string[];
  /** RFC 9449 §5.1: certificate-bound tokens are accepted too, so DPoP is not required. */
  readonly dpop_bound_access_tokens_required: false;
  readonly resource_name?: string;
  readonly resource_documentation?: string;
}

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * RFC 9728 §3.1: where a resource's metadata lives — `/.well-known/oauth-protected-resource`
 * inserted between the host and the resource's path and query (a terminating slash removed).
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}${WELL_KNOWN}${path}${url.search}`;
}

/**
 * RFC 9728 §2: the resource's metadata document — Writ as the authorization server,
 * bearer tokens in the header only (RFC 6750 §2.1), certificate-bound tokens (RFC 8705 §3.4)
 * or DPoP-bound ones (RFC 9449 §5.1), and `mcp_tool` authorization details (RFC 9396 §10).
 */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): ProtectedResourceMetadata {
  if (!URL.canParse(options.resource)) throw new Error('protectedResourceMetadata: "resource" must be an absolute URI');
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new Error('protectedResourceMetadata: "issuer" is required');
  return {
    resource: options.resource,
    authorization_servers: [options.issuer],
    bearer_methods_supported: ['header'],
    tls_client_certificate_bound_access_tokens: true,
    authorization_details_types_supported: ['mcp_tool'],
    dpop_signing_alg_values_supported: [...DPOP_SIGNING_ALGORITHMS],
    dpop_bound_access_tokens_required: false,
    ...(options.resourceName !== undefined && { resource_name: options.resourceName }),
    ...(options.resourceDocumentation !== undefined && { resource_documentation: options.resourceDocumentation }),
  };
}

export interface ProtectedResourceMetadataHandlerOptions extends ProtectedResourceMetadataOptions {
  /**
   * Also answer at `/.well-known/oauth-protected-resource` itself when the resource URI has a
   * path, for clients that look there when no challenge named the document (true by default).
   * Set false when one host serves several resources.
   */
  readonly serveRoot?: boolean;
}

/**
 * Express middleware (or a `node:http` handler with a `next` callback) that answers `GET` and
 * `HEAD` of the resource's metadata URL ({@link protectedResourceMetadataUrl}) with the
 * document as `application/json`, and 405 to other methods there; every other request goes to
 * `next`. Mount it at the root of the app (it reads `req.url`), before any authentication:
 * the document is public.
 */
export function protectedResourceMetadataHandler(options: ProtectedResourceMetadataHandlerOptions): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  const body = JSON.stringify(protectedResourceMetadata(options));
  const url = new URL(protectedResourceMetadataUrl(options.resource));
  // A resource URI with a query has it in its metadata URL too (§3.1); any other query is ignored.
  const served = (path: string, search: string) =>
    (path === url.pathname && (url.search === '' || search === url.search)) || (options.serveRoot !== false && path === WELL_KNOWN);
  return (req, res, next) => {
    const requested = new URL(req.url ?? '/', 'http://resource.invalid');
    if (!served(requested.pathname, requested.search)) return next();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.statusCode = 405;
      res.setHeader('Allow', 'GET, HEAD');
      res.end();
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
