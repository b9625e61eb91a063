/**
 * Signing in to the console (issue 19): Writ is an OpenID Connect relying party of the company's
 * identity provider, as its own client (`WRIT_ADMIN_AUDIENCE`), with the authorization code flow
 * and PKCE (RFC 7636 S256, OIDC Core §3.1), `state` (RFC 6749 §10.12), `nonce` (OIDC Core
 * §3.1.2.1) and the `iss` response parameter (RFC 9207). A login under way and a session are
 * rows keyed by the SHA-256 of their state or cookie, so any replica finishes a login or serves
 * a session, and a database reader holds nothing a browser could present. The person's role is
 * read from the bindings on every request, so a removed binding takes effect at once.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import type { Random } from '../core/random';
import type { PrismaClient } from '../db/generated/client';
import type { Person } from '../admin';

export class ConsoleSignInError extends DomainError {
  readonly type = problemType('sign-in-failed');
  readonly status = 400;
}

export interface ConsoleSignInDeps {
  readonly prisma: PrismaClient;
  readonly clock: Clock;
  readonly random: Random;
  /** Writ's public URL (its issuer): the redirect URI is `<baseUrl>/console/callback`. */
  readonly baseUrl: string;
  /** Writ's client at the identity provider (WRIT_ADMIN_AUDIENCE). */
  readonly clientId: string;
  /** The identity providers people may sign in at. */
  readonly issuers: readonly string[];
  /** Verifies an ID token for the client id: the person, its expiry and its nonce. */
  readonly verify: (idToken: string) => Promise<{ person: Person; expiresAt: Date; nonce: unknown }>;
  readonly fetch?: typeof fetch;
  /** Longest session, in seconds (never past the ID token); 8 hours by default. */
  readonly sessionTtl?: number;
  /** Seconds a session may go unused before it ends; 30 minutes by default. */
  readonly idleTimeout?: number;
}

/** A signed-in person, and the token the console sends with every change (CSRF). */
export interface ConsoleSession {
  readonly person: Person;
  readonly csrf: string;
  readonly expiresAt: Date;
}

const LOGIN_TTL_MS = 10 * 60_000;
/** Where a sign-in may return to besides the console: an account link (never another site: no open redirect). */
const RETURN_TO = /^\/v1\/vault\/links\/[A-Za-z0-9_-]{43}$/;
/** A session's last use is written at most this often (not on every request). */
const SEEN_RESOLUTION_MS = 60_000;
const hash = (value: string) => createHash('sha256').update(value).digest('hex');
const random64 = (random: Random, bytes = 32) => Buffer.from(random.bytes(bytes)).toString('base64url');

interface Discovery {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
}

export class ConsoleSignIn {
  readonly #discovery = new Map<string, Promise<Discovery>>();

  constructor(private readonly deps: ConsoleSignInDeps) {}

  get redirectUri(): string {
    return `${this.deps.baseUrl.replace(/\/+$/, '')}/console/callback`;
  }

  /**
   * Starts a login at `issuer` (the only provider when there is one): the URL to send the browser
   * to. `returnTo`: a path of this broker to come back to (an account link), else the console.
   */
  async begin(issuer?: string, returnTo?: string): Promise<string> {
    if (returnTo !== undefined && !RETURN_TO.test(returnTo)) throw new ConsoleSignInError('return_to: only an account link of this broker (/v1/vault/links/…)');
    const chosen = issuer ?? (this.deps.issuers.length === 1 ? this.deps.issuers[0] : undefined);
    if (chosen === undefined || !this.deps.issuers.includes(chosen)) throw new ConsoleSignInError(`issuer: sign in at one of ${this.deps.issuers.join(', ') || '(no identity provider is configured)'}`);
    const meta = await this.#meta(chosen);
    const state = random64(this.deps.random);
    const nonce = random64(this.deps.random);
    const verifier = random64(this.deps.random);
    const now = this.deps.clock.now();
    await this.deps.prisma.consoleSession.create({ data: { id: hash(state), kind: 'login', issuer: chosen, verifier, nonce, expiresAt: new Date(now.getTime() + LOGIN_TTL_MS), createdAt: now, returnTo: returnTo ?? null } });
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({
      client_id: this.deps.clientId,
      response_type: 'code',
      redirect_uri: this.redirectUri,
      scope: 'openid groups email',
      state,
      nonce,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    return url.href;
  }

  /** Finishes a login from the callback's parameters: a new session's cookie value and lifetime. Each login is used once. */
  async finish(params: Record<string, unknown>): Promise<{ cookie: string; maxAgeSeconds: number; person: Person; returnTo: string }> {
    const str = (k: string) => (typeof params[k] === 'string' ? (params[k] as string) : undefined);
    const state = str('state');
    if (state === undefined) throw new ConsoleSignInError('state: the callback carries no state');
    const now = this.deps.clock.now();
    // Used once: the row goes whatever happens next (RFC 6749 §10.12).
    const login = await this.deps.prisma.consoleSession.findUnique({ where: { id: hash(state) } });
    await this.deps.prisma.consoleSession.deleteMany({ where: { id: hash(state) } });
    if (!login || login.kind !== 'login' || login.expiresAt <= now) throw new ConsoleSignInError('state: no sign-in under way with this state (it expired, or was used)');
    if (str('error') !== undefined) throw new ConsoleSignInError(`the identity provider refused: ${str('error')!.slice(0, 64)}`);
    const meta = await this.#meta(login.issuer);
    if (str('iss') !== undefined && str('iss') !== meta.issuer) throw new ConsoleSignInError('iss: the callback names another issuer (RFC 9207 §2.4)');
    const code = str('code');
    if (code === undefined) throw new ConsoleSignInError('code: the callback carries no code');
    const res = await (this.deps.fetch ?? fetch)(meta.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: this.redirectUri, client_id: this.deps.clientId, code_verifier: login.verifier! }).toString(),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown };
    if (!res.ok || typeof body.id_token !== 'string') throw new ConsoleSignInError(`the identity provider's token endpoint answered ${res.status}${typeof body.error === 'string' ? ` ${body.error}` : ''}`);
    let verified: Awaited<ReturnType<ConsoleSignInDeps['verify']>>;
    try {
      verified = await this.deps.verify(body.id_token);
    } catch (err) {
      throw new ConsoleSignInError(`the ID token does not verify: ${(err as Error).message.slice(0, 200)}`);
    }
    if (verified.person.iss !== login.issuer) throw new ConsoleSignInError('the ID token is from another identity provider');
    if (verified.nonce !== login.nonce) throw new ConsoleSignInError('nonce: the ID token was not issued for this sign-in (OIDC Core §3.1.3.7)');
    const cookie = random64(this.deps.random);
    const expiresAt = new Date(Math.min(verified.expiresAt.getTime(), now.getTime() + (this.deps.sessionTtl ?? 8 * 3600) * 1000));
    await this.deps.prisma.consoleSession.create({
      data: { id: hash(cookie), kind: 'session', issuer: verified.person.iss, subject: verified.person.sub, groups: [...verified.person.groups], csrf: random64(this.deps.random), expiresAt, createdAt: now, lastSeenAt: now },
    });
    await this.deps.prisma.consoleSession.deleteMany({ where: { expiresAt: { lte: now } } });
    return { cookie, maxAgeSeconds: Math.max(1, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)), person: verified.person, returnTo: login.returnTo ?? '/console/' };
  }

  /** The session a cookie names, while it lasts and has not been idle for longer than the idle timeout. */
  async session(cookie: string): Promise<ConsoleSession | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(cookie)) return undefined;
    const id = hash(cookie);
    const row = await this.deps.prisma.consoleSession.findUnique({ where: { id } });
    const now = this.deps.clock.now();
    if (!row || row.kind !== 'session' || row.expiresAt <= now) return undefined;
    const seen = row.lastSeenAt ?? row.createdAt;
    if (now.getTime() - seen.getTime() >= this.idleTimeoutMs) {
      await this.deps.prisma.consoleSession.deleteMany({ where: { id } });
      return undefined;
    }
    if (now.getTime() - seen.getTime() >= SEEN_RESOLUTION_MS) await this.deps.prisma.consoleSession.updateMany({ where: { id }, data: { lastSeenAt: now } });
    return { person: { sub: row.subject!, iss: row.issuer, groups: row.groups }, csrf: row.csrf!, expiresAt: row.expiresAt };
  }

  get idleTimeoutMs(): number {
    return (this.deps.idleTimeout ?? 30 * 60) * 1000;
  }

  async end(cookie: string): Promise<void> {
    await this.deps.prisma.consoleSession.deleteMany({ where: { id: hash(cookie), kind: 'session' } });
  }

  #meta(issuer: string): Promise<Discovery> {
    let meta = this.#discovery.get(issuer);
    if (!meta) {
      meta = (async () => {
        const res = await (this.deps.fetch ?? fetch)(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) });
        const doc = (await res.json()) as Partial<Discovery>;
        if (!res.ok || doc.issuer !== issuer || typeof doc.authorization_endpoint !== 'string' || typeof doc.token_endpoint !== 'string') throw new Error(`${issuer} has no usable OpenID configuration`);
        return doc as Discovery;
      })();
      this.#discovery.set(issuer, meta);
      meta.catch(() => this.#discovery.delete(issuer));
    }
    return meta;
  }
}
