import type { RequestHandler } from 'express';
import { personPrincipal, roleCovers, type AdminCredentials, type AdminRole, type Person } from '../admin';
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

/** People signing in to Writ (admins, approvers): a token of a configured provider for the admin audience, and the role it holds. */
export interface PeopleAuth {
  /** The person a bearer JWT names, or undefined when it is not a valid sign-in token. */
  person(token: string): Promise<Person | undefined>;
  roleOf(person: Person): Promise<AdminRole | undefined>;
}

/** The session cookie: `__Host-` (Secure, Path=/, no Domain: this origin only), HttpOnly, SameSite=Strict. */
export const CONSOLE_COOKIE = '__Host-writ-console';
/** The header every change from the console carries: the session's CSRF token. */
export const CSRF_HEADER = 'x-writ-csrf';

/** The console cookie's value on a request, if any. */
export function consoleCookie(req: Parameters<RequestHandler>[0]): string | undefined {
  return cookieOf(req, CONSOLE_COOKIE);
}

/** A cookie's value (RFC 6265 §5.4 `Cookie` header), or undefined. */
export function cookieOf(req: Parameters<RequestHandler>[0], name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/** Methods that change nothing: the only ones a console session makes without its CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/**
 * The person a request is signed in as, whatever their role: a sign-in token of a configured
 * provider for WRIT_ADMIN_AUDIENCE as `Authorization: Bearer`, or the console's session cookie
 * (for a change, with its CSRF token: else Forbidden). Undefined when neither.
 */
export async function signedInPerson(req: Parameters<RequestHandler>[0], deps: Pick<AuthDeps, 'people' | 'consoleSessions'>): Promise<Person | undefined> {
  const bearer = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(req.headers.authorization ?? '');
  if (bearer && deps.people) return deps.people.person(bearer[1]!);
  const cookie = req.headers.authorization === undefined ? consoleCookie(req) : undefined;
  const session = cookie !== undefined && deps.consoleSessions ? await deps.consoleSessions.session(cookie) : undefined;
  if (!session) return undefined;
  if (!SAFE_METHODS.has(req.method) && req.headers[CSRF_HEADER] !== session.csrf) throw new Forbidden(`a change from the console carries its ${CSRF_HEADER} header`);
  return session.person;
}

export interface AuthDeps {
  admin: Pick<AdminCredentials, 'verify' | 'disabled'>;
  /** Sign-in by people; without it, only the bootstrap token and admin SVIDs are admins. */
  people?: PeopleAuth;
  /** Console sessions (a person signed in through the console's cookie). */
  consoleSessions?: { session(cookie: string): Promise<{ person: Person; csrf: string } | undefined> };
  entries: EntryStore;
  leases: LeaseStore;
  clock: Clock;
  trustDomain: string;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Who the caller is, once authenticated: "admin" (the bootstrap token), user:<iss>#<sub> (a person), or a SPIFFE ID. */
    principal?: string;
    /** The admin role the caller holds, on admin routes. */
    adminRole?: AdminRole;
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

/** A compact JWS (three base64url parts): a person's sign-in token rather than the bootstrap token. */
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Admin routes, by role (`needed`: the route's, auditor ⊂ operator ⊂ admin):
 * - a person: `Authorization: Bearer <token>`, an ID or access token of a configured identity
 *   provider for `WRIT_ADMIN_AUDIENCE`, holding the role through a role binding (401 for a
 *   token that does not verify, 403 for a role too small or none);
 * - automation: an mTLS SVID whose registration entry has `admin: true` (role admin);
 * - the bootstrap token (compared in constant time; role admin), unless disabled (401).
 * The caller's principal (recorded with what it changes) and role are on the request.
 */
export function requireAdmin(deps: AuthDeps, needed: AdminRole | ((req: Parameters<RequestHandler>[0]) => AdminRole) = 'admin'): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,8192})$/.exec(header);
      const token = m?.[1];
      const person = token !== undefined && JWT.test(token) && deps.people ? await deps.people.person(token) : undefined;
      if (person) {
        req.principal = personPrincipal(person);
        const role = await deps.people!.roleOf(person);
        if (role !== undefined) req.adminRole = role;
      } else if (token !== undefined && token.length <= 512 && deps.admin.verify(token)) {
        req.principal = 'admin';
        req.adminRole = 'admin';
      } else {
        res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"'); // RFC 6750 §3
        throw new Unauthenticated(deps.admin.disabled && token !== undefined && !JWT.test(token) ? 'the bootstrap admin token is disabled (WRIT_ADMIN_BOOTSTRAP_TOKEN); sign in as yourself' : 'the bearer token is neither a sign-in token of a configured identity provider for this broker (WRIT_ADMIN_AUDIENCE) nor the admin credential');
      }
    } else if (consoleCookie(req) !== undefined && deps.consoleSessions && deps.people) {
      // The console: a session cookie (SameSite=Strict), and for a change its CSRF token too.
      const session = await deps.consoleSessions.session(consoleCookie(req)!);
      if (!session) throw new Unauthenticated('the console session has ended; sign in again');
      if (!SAFE_METHODS.has(req.method) && req.headers[CSRF_HEADER] !== session.csrf) throw new Forbidden(`a change from the console carries its ${CSRF_HEADER} header`);
      req.principal = personPrincipal(session.person);
      const role = await deps.people.roleOf(session.person);
      if (role !== undefined) req.adminRole = role;
    } else {
      const live = await liveSvid(req, deps);
      if (!live) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new Unauthenticated('admin routes need a sign-in token, an admin X.509-SVID, or the bootstrap admin token');
      }
      // Admin rights come from the entry this SVID was issued under, as it is now.
      const entry = live.lease.entryId ? await deps.entries.get(live.lease.entryId) : undefined;
      if (!entry || !entry.enabled || !entry.admin) throw new Forbidden(`${live.svid.spiffeId} is not an admin`);
      req.principal = live.svid.spiffeId;
      req.svid = live.svid;
      req.adminRole = 'admin';
    }
    const role = typeof needed === 'function' ? needed(req) : needed;
    if (!roleCovers(req.adminRole, role)) throw new Forbidden(`this needs the ${role} role; ${req.principal} holds ${req.adminRole ?? 'none'}`);
    next();
  };
}
