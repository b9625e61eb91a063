import { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import type { AdminCredentials } from '../admin';
import type { AuditLog } from '../audit';
import type { Clock } from '../core/clock';
import { withDeadline } from '../core/deadline';
import { DomainError } from '../core/errors';
import type { LeaseStore, Revocations } from '../leases';
import type { ResourceStore } from '../resources';
import type { TrustBundle } from '../spiffe/bundle';
import { InvalidClient, InvalidRequest, isOAuthError, OAuthError, oauthError, TOKEN_EXCHANGE_GRANT_TYPE, verifyAccessToken, type TokenExchange } from '../tokens';
import { liveSvid } from './auth';
import { peerLeaf, peerSvid } from './peer';

export interface OAuthDeps {
  issuer: string;
  exchange: TokenExchange;
  leases: LeaseStore;
  revocations: Revocations;
  resources: ResourceStore;
  admin: AdminCredentials;
  audit: AuditLog;
  bundle: { current(): Promise<TrustBundle> };
  clock: Clock;
  trustDomain: string;
  /** The revocation bound: an introspection the database cannot answer within it is answered inactive. None: no deadline. */
  revocationBoundMs?: number;
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

const isBearerAdmin = (req: Request, admin: AdminCredentials) => {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(req.headers.authorization ?? '');
  return m !== null && admin.verify(m[1]!);
};

const tokenParam = (req: Request): string => {
  const token = (req.body as Record<string, unknown> | undefined)?.token;
  if (typeof token !== 'string' || token.length === 0 || token.length > 16 * 1024) throw new InvalidRequest('token is required, once');
  return token;
};

/** The OAuth endpoints: token exchange, introspection, revocation and metadata. */
export function oauthRouter(deps: OAuthDeps): Router {
  const router = Router();

  // RFC 8414 §3.
  router.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.json({
      issuer: deps.issuer,
      token_endpoint: `${deps.issuer}/oauth2/token`,
      introspection_endpoint: `${deps.issuer}/oauth2/introspect`,
      revocation_endpoint: `${deps.issuer}/oauth2/revoke`,
      jwks_uri: `${deps.issuer}/oauth2/jwks`,
      grant_types_supported: [TOKEN_EXCHANGE_GRANT_TYPE],
      token_endpoint_auth_methods_supported: ['tls_client_auth'],
      introspection_endpoint_auth_methods_supported: ['tls_client_auth'], // admins may also use their bearer credential
      revocation_endpoint_auth_methods_supported: ['tls_client_auth'],
      tls_client_certificate_bound_access_tokens: true, // RFC 8705 §3.3
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
    const response = await deps.exchange.exchange(exchangeClient(req, deps.trustDomain), (req.body ?? {}) as Record<string, unknown>);
    noStore(res).json(response);
  });

  // RFC 7662: a resource introspects tokens issued for itself; an admin, any.
  router.post('/oauth2/introspect', async (req, res) => {
    noStore(res);
    try {
      const answer = introspect(req);
      res.json(await (deps.revocationBoundMs === undefined ? answer : withDeadline(answer, deps.revocationBoundMs, 'introspection')));
    } catch (err) {
      if (isOAuthError(err)) throw err;
      // The database or the keys cannot answer: the token is not active (fail closed).
      res.json({ active: false });
    }
  });

  async function introspect(req: Request): Promise<Record<string, unknown>> {
    const isAdmin = isBearerAdmin(req, deps.admin);
    const caller = isAdmin ? undefined : (await liveSvid(req, deps))?.svid;
    if (!isAdmin && !caller) throw new InvalidClient('introspection needs the resource\'s X.509-SVID or the admin token');
    const token = tokenParam(req);
    const keys = (await deps.bundle.current()).jwtAuthorities;
    let claims;
    try {
      claims = await verifyAccessToken(token, keys, { issuer: deps.issuer, clock: deps.clock, errorCode: 'invalid_token' });
    } catch (err) {
      if (!isOAuthError(err)) throw err;
      return { active: false };
    }
    if (!isAdmin) {
      const resource = await deps.resources.get(claims.aud);
      if (!resource || resource.spiffeId !== caller!.spiffeId) {
        await deps.audit.append({ type: 'introspection.refused', subject: claims.sub, actor: caller!.spiffeId, details: { jti: claims.jti, aud: claims.aud, reason: 'not the token\'s resource' } });
        return { active: false };
      }
    }
    // Active only while its lease, and every lease up its chain, is neither expired nor revoked.
    if (!(await deps.leases.tokenAlive(claims.jti, deps.clock.now()))) return { active: false };
    return { active: true, token_type: 'Bearer', ...claims };
  }

  // RFC 7009: by the token's own connector or an admin; 200 for unknown tokens; revoked durably before the answer.
  router.post('/oauth2/revoke', async (req, res) => {
    const isAdmin = isBearerAdmin(req, deps.admin);
    const caller = isAdmin ? undefined : (await liveSvid(req, deps))?.svid;
    if (!isAdmin && !caller) throw new InvalidClient('revocation needs the connector\'s X.509-SVID or the admin token');
    const token = tokenParam(req);
    const keys = (await deps.bundle.current()).jwtAuthorities; // unavailable → 503, never a false 200
    let claims;
    try {
      // An expired token needs no revoking; a forged one names nothing (RFC 7009 §2.2: 200 all the same).
      claims = await verifyAccessToken(token, keys, { issuer: deps.issuer, clock: deps.clock, errorCode: 'invalid_token' });
    } catch (err) {
      if (!isOAuthError(err)) throw err;
      return noStore(res).status(200).end();
    }
    const principal = isAdmin ? 'admin' : caller!.spiffeId;
    if (isAdmin || claims.client_id === caller!.spiffeId) {
      // The revocation and its audit event commit together, before the answer.
      const event = (revoked: number) => (revoked > 0 ? { type: 'token.revoked', subject: claims.sub, actor: principal, details: { jti: claims.jti, taskId: claims.task_id } } : undefined);
      await deps.revocations.revoke({ jti: claims.jti }, `revoked by ${principal}`, undefined, principal, event);
    } else {
      await deps.audit.append({ type: 'token.revoke_refused', subject: claims.sub, actor: principal, details: { jti: claims.jti, reason: 'not the token\'s connector' } });
    }
    return noStore(res).status(200).end();
  });

  return router;
}

/**
 * RFC 6749 §5.2: OAuth endpoints answer `{error, error_description}`, never a stack trace
 * and never a 500. Refusals the token exchange did not audit itself are audited here.
 */
export function oauthErrorHandler(audit: AuditLog): ErrorRequestHandler {
  return async (err, req, res, next) => {
    if (!req.path.startsWith('/oauth2/') || res.headersSent) return next(err);
    const e = isOAuthError(err)
      ? err
      : err instanceof DomainError && err.status < 500
        ? oauthError('invalid_request', err.message)
        : typeof err?.type === 'string' && typeof err?.status === 'number' && err.status < 500
          ? new OAuthError('invalid_request', err.type === 'entity.too.large' ? 'the request body is too large' : 'the request body is malformed', { status: err.status })
          : oauthError('temporarily_unavailable', 'the broker cannot answer now');
    if (!res.locals.audited) {
      await audit.append({ type: 'oauth.refused', details: { endpoint: req.path, error: e.error } }).catch(() => undefined);
    }
    if (e.error === 'invalid_client' && req.headers.authorization) res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
    noStore(res);
    // RFC 6749 §5.2: error_description is printable ASCII without '"' or '\\'.
    const description = e.error_description.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?');
    res.status(e.status).json({ error: e.error, error_description: description });
  };
}
