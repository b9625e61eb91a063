import type { RequestHandler } from 'express';
import type { AdminCredentials } from '../admin';
import type { EntryStore } from '../attestation/entries';
import type { PeerSvid } from '../attestation/issuer';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import { liveSvidLease, type Lease, type LeaseStore } from '../leases';
import { peerSvid } from './peer';

/** 401: no credentials, or credentials that do not verify. */
export class Unauthenticated extends DomainError {
  readonly type = problemType('unauthenticated');
  readonly status = 401;
}

/** 403: a verified caller that may not do this. */
export class Forbidden extends DomainError {
  readonly type = problemType('forbidden');
  readonly status = 403;
}

export interface AuthDeps {
  admin: AdminCredentials;
  entries: EntryStore;
  leases: LeaseStore;
  clock: Clock;
  trustDomain: string;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Who the caller is, once authenticated: "admin" (bearer) or a SPIFFE ID. */
    principal?: string;
    /** The caller's verified, live X.509-SVID on mTLS routes. */
    svid?: PeerSvid;
  }
}

/** Who the authenticated caller is, as recorded with what it changes: "admin" (bearer) or its SPIFFE ID. */
export const principalOf = (req: Parameters<RequestHandler>[0]): string => req.principal ?? 'admin';

/**
 * A verified client SVID that is also live: this exact certificate (serial and
 * fingerprint) was issued by this broker and its lease is neither expired nor revoked.
 */
async function liveSvid(req: Parameters<RequestHandler>[0], deps: Omit<AuthDeps, 'admin' | 'entries'>): Promise<{ svid: PeerSvid; lease: Lease } | undefined> {
  const svid = peerSvid(req, deps.trustDomain);
  if (!svid) return undefined;
  const lease = await liveSvidLease(deps.leases, svid, deps.clock.now());
  return lease ? { svid, lease } : undefined;
}

/** mTLS routes: the caller must present a current, unrevoked X.509-SVID of this broker. */
export function requireSvid(deps: Omit<AuthDeps, 'admin' | 'entries'>): RequestHandler {
  return async (req, _res, next) => {
    const live = await liveSvid(req, deps);
    if (!live) throw new Unauthenticated('this route needs a current X.509-SVID of this trust domain as the TLS client certificate');
    req.svid = live.svid;
    req.principal = live.svid.spiffeId;
    next();
  };
}

/**
 * Admin routes: `Authorization: Bearer <admin token>` (compared in constant time), or
 * an mTLS SVID whose registration entry has `admin: true`. No credentials or a bad
 * token: 401. A verified SVID that is not an admin: 403.
 */
export function requireAdmin(deps: AuthDeps): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
      if (!m || !deps.admin.verify(m[1]!)) {
        res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"'); // RFC 6750 §3
        throw new Unauthenticated('the bearer token is not the admin credential');
      }
      req.principal = 'admin';
      return next();
    }
    const live = await liveSvid(req, deps);
    if (!live) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new Unauthenticated('admin routes need the admin bearer token or an admin X.509-SVID');
    }
    // Admin rights come from the entry this SVID was issued under, as it is now.
    const entry = live.lease.entryId ? await deps.entries.get(live.lease.entryId) : undefined;
    if (!entry || !entry.enabled || !entry.admin) throw new Forbidden(`${live.svid.spiffeId} is not an admin`);
    req.principal = live.svid.spiffeId;
    req.svid = live.svid;
    next();
  };
}
