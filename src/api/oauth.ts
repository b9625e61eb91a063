import { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import { personPrincipal, roleCovers, type AdminCredentials, type AdminRole } from '../admin';
import { DomainError } from '../core/errors';
import {
  ADMIN_CALLER,
  InvalidClient,
  InvalidRequest,
  isOAuthError,
  OAuthError,
  oauthError,
  oauthText,
  TOKEN_EXCHANGE_GRANT_TYPE,
  DPOP_SIGNING_ALGORITHMS,
  JWT_SPIFFE_AUTH_METHOD,
  UseDpopNonce,
  type Introspection,
  type OAuthCaller,
  type OAuthRefusals,
  type TokenExchange,
  type TokenRevocation,
} from '../tokens';
import type { PeopleAuth } from './auth';
import { noteRefusal } from './logging';
import { peerLeaf, peerSvid } from './peer';

export interface OAuthDeps {
  issuer: string;
  exchange: Pick<TokenExchange, 'exchange'>;
  introspection: Pick<Introspection, 'introspect'>;
  revocation: Pick<TokenRevocation, 'revoke'>;
  admin: Pick<AdminCredentials, 'verify'>;
  trustDomain: string;
  /** People signed in (WRIT_ADMIN_AUDIENCE): an auditor introspects any token, an operator revokes any. */
  people?: PeopleAuth;
}

/** RFC 6749 §5.1: token responses are never cached. */
const noStore = (res: Response) => res.setHeader('Cache-Control', 'no-store').setHeader('Pragma', 'no-cache');

/** The connector's verified client certificate, as the token endpoint needs it (RFC 8705 §2). */
function exchangeClient(req: Request, trustDomain: string) {
  const svid = peerSvid(req, trustDomain);
  const leaf = peerLeaf(req);
  if (!svid || !leaf) return undefined;
  return { ...svid, certificateDer: leaf.der, notAfter: leaf.notAfter };
}

const isBearerAdmin = (req: Request, admin: Pick<AdminCredentials, 'verify'>) => {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(req.headers.authorization ?? '');
  return m !== null && admin.verify(m[1]!);
};

const formOf = (req: Request) => (req.body ?? {}) as Record<string, unknown>;

/** The OAuth endpoints: token exchange, introspection, revocation and metadata. */
export function oauthRouter(deps: OAuthDeps): Router {
  const router = Router();
  /**
   * The admin (the bootstrap credential, or a person's sign-in token with at least `needed`), or
   * the TLS client's SVID; the services check that the SVID is live. A sign-in token with a role
   * too small, or none, is refused rather than read as no credential.
   */
  const callerOf = async (req: Request, needed: AdminRole): Promise<OAuthCaller> => {
    if (isBearerAdmin(req, deps.admin)) return ADMIN_CALLER;
    const bearer = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
    const person = bearer && deps.people ? await deps.people.person(bearer[1]!) : undefined;
    if (person) {
      if (!roleCovers(await deps.people!.roleOf(person), needed)) throw new InvalidClient(`${personPrincipal(person)} does not hold the ${needed} role`);
      return { admin: true, principal: personPrincipal(person) };
    }
    return { admin: false, svid: peerSvid(req, deps.trustDomain) };
  };

  // RFC 8414 §3.
  router.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.json({
      issuer: deps.issuer,
      token_endpoint: `${deps.issuer}/oauth2/token`,
      introspection_endpoint: `${deps.issuer}/oauth2/introspect`,
      revocation_endpoint: `${deps.issuer}/oauth2/revoke`,
      jwks_uri: `${deps.issuer}/oauth2/jwks`,
      grant_types_supported: [TOKEN_EXCHANGE_GRANT_TYPE],
      // RFC 8705 §2.1.1; draft-ietf-oauth-spiffe-client-auth (a JWT-SVID as client_assertion).
      token_endpoint_auth_methods_supported: ['tls_client_auth', JWT_SPIFFE_AUTH_METHOD],
      introspection_endpoint_auth_methods_supported: ['tls_client_auth'], // admins and people with a role may also use a bearer token
      revocation_endpoint_auth_methods_supported: ['tls_client_auth'],
      tls_client_certificate_bound_access_tokens: true, // RFC 8705 §3.3
      dpop_signing_alg_values_supported: [...DPOP_SIGNING_ALGORITHMS], // RFC 9449 §5.1
      authorization_details_types_supported: ['mcp_tool'], // RFC 9396 §10
      response_types_supported: [],
    });
  });

  // RFC 6749 §3.2, RFC 8693 §2.1, RFC 7662 §2.1, RFC 7009 §2.1: the endpoints take form-encoded bodies only.
  router.post('/oauth2/*path', (req, _res, next) => {
    if (!req.is('application/x-www-form-urlencoded')) {
      const given = (req.headers['content-type'] ?? 'none').split(';')[0]!.trim().slice(0, 64);
      throw new InvalidRequest(`content type ${given} is not accepted: send the parameters as application/x-www-form-urlencoded`);
    }
    next();
  });

  router.post('/oauth2/token', async (req, res) => {
    res.locals.audited = true; // the exchange audits its own refusals, with its decisions
    // RFC 9449 §4.1: the DPoP header goes to the exchange unparsed, so that its refusals are audited with the rest.
    const response = await deps.exchange.exchange(exchangeClient(req, deps.trustDomain), formOf(req), { dpop: req.headers.dpop });
    noStore(res).json(response);
  });

  // RFC 7662: a resource introspects tokens issued for itself; an admin, any.
  router.post('/oauth2/introspect', async (req, res) => {
    noStore(res).json(await deps.introspection.introspect(await callerOf(req, 'auditor'), formOf(req)));
  });

  // RFC 7009: by the token's own connector or an admin; 200 for unknown tokens; revoked durably before the answer.
  router.post('/oauth2/revoke', async (req, res) => {
    await deps.revocation.revoke(await callerOf(req, 'operator'), formOf(req));
    noStore(res).status(200).end();
  });

  return router;
}

/**
 * RFC 6749 §5.2: OAuth endpoints answer `{error, error_description}`, never a stack trace
 * and never a 500. Refusals the token exchange did not audit itself are recorded by `refusals`.
 */
export function oauthErrorHandler(refusals: Pick<OAuthRefusals, 'refused'>): ErrorRequestHandler {
  return async (err, req, res, next) => {
    if (!req.path.startsWith('/oauth2/') || res.headersSent) return next(err);
    const e = isOAuthError(err)
      ? err
      : err instanceof DomainError && err.status < 500
        ? oauthError('invalid_request', err.message)
        : typeof err?.type === 'string' && typeof err?.status === 'number' && err.status < 500
          ? new OAuthError('invalid_request', err.type === 'entity.too.large' ? 'the request body is too large' : 'the request body is malformed', { status: err.status })
          : oauthError('temporarily_unavailable', 'the broker cannot answer now');
    if (!res.locals.audited) await refusals.refused(req.path, e.error);
    if (e.error === 'invalid_client' && req.headers.authorization) res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
    // RFC 9449 §8: use_dpop_nonce carries the nonce to use in the DPoP-Nonce header.
    if (e instanceof UseDpopNonce && e.nonce !== '') res.setHeader('DPoP-Nonce', e.nonce);
    noStore(res);
    noteRefusal(res, e.error);
    res.status(e.status).json({ ...e.toJSON(), error_description: oauthText(e.error_description) });
  };
}
