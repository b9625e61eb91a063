/**
 * The token vault (issue 20): connectors hold no SaaS credential. A user links their account at
 * a downstream provider once (Writ runs the authorization code flow with PKCE as the provider's
 * client and keeps the refresh token sealed, bound to the user at their identity provider); a
 * connector with a live task token of that user then gets a short-lived access token of the
 * provider, under policy, for the task, by RFC 8693 exchange. The refresh token never leaves Writ.
 *
 * ```ts
 * const { url } = await vault.linkFor('notes', { iss, sub: 'alice' }, ['notes:write']);   // the user opens it
 * const released = await vault.release({ provider: 'notes', user, scopes: ['notes:write'], task, connector }); // its access token
 * ```
 */
import { createHash } from 'node:crypto';
import type { AuditIn } from '../audit';
import type { SealedSecret, SecretSealer } from '../ca/secrets';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { REVOCATION_LOCK } from '../leases/ordering';
import type { RevocationSelector } from '../leases/revocations';
import { ProviderClient, type ProviderTokens } from './client';
import { VaultError } from './errors';
import { secretBinding, type DownstreamProvider, type GrantRevokeEvent, type ProviderStore } from './providers';

export { VaultError, type VaultErrorCode } from './errors';
export { ProviderStore, providerPatch, providerRequest, PROVIDER_CLIENT_AUTH, GRANT_REVOKE_EVENTS, type DownstreamProvider, type GrantRevokeEvent, type ProviderClientAuth, type ProviderRequest } from './providers';
export { ProviderClient, type ProviderTokens } from './client';

/** A user at their identity provider. */
export interface VaultUser {
  readonly iss: string;
  readonly sub: string;
}

/** A user's stored grant at a provider, as admins and the user see it (never its token). */
export interface DownstreamGrant {
  readonly id: string;
  readonly provider: string;
  readonly user: VaultUser;
  readonly scopes: readonly string[];
  readonly createdAt: Date;
  readonly refreshedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly revocationReason: string | null;
}

/** A released access token of the provider, and how long it may be used. */
export interface GrantRelease {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Seconds, never beyond the task token's expiry. */
  readonly expiresIn: number;
  readonly scopes: readonly string[];
  readonly grantId: string;
}

/** No grant of the user at the provider covers the request: the user must link (again) at `linkUrl`. */
export class GrantRequired extends VaultError {
  constructor(
    readonly provider: string,
    readonly linkUrl: string,
    readonly linkExpiresAt: Date,
    message: string,
  ) {
    super(403, 'grant-not-found', message);
  }
}

export interface TokenVaultDeps {
  readonly prisma: PrismaClient;
  readonly providers: ProviderStore;
  readonly sealer: SecretSealer;
  readonly clock: Clock;
  readonly random: Random;
  readonly audit: AuditIn;
  /** Writ's public URL (its issuer): links are `<baseUrl>/v1/vault/links/<secret>`, the redirect URI `<baseUrl>/v1/vault/callback`. */
  readonly baseUrl: string;
  /** Seconds a link may wait to be opened, and the sign-in at the provider to finish; 10 minutes by default. */
  readonly linkTtl?: number;
  readonly fetch?: typeof fetch;
}

const hash = (value: string) => createHash('sha256').update(value).digest('hex');
const grantBinding = (id: string) => `grant:${id}:refresh_token`;
const releaseBinding = (id: string) => `release:${id}:access_token`;
const LINK_SECRET = /^[A-Za-z0-9_-]{43}$/;

type GrantRow = NonNullable<Awaited<ReturnType<PrismaClient['downstreamGrant']['findFirst']>>>;
const grantView = (g: GrantRow): DownstreamGrant => ({
  id: g.id, provider: g.providerId, user: { iss: g.subjectIssuer, sub: g.subject }, scopes: g.scopes, createdAt: g.createdAt, refreshedAt: g.refreshedAt, revokedAt: g.revokedAt, revocationReason: g.revocationReason,
});

export class TokenVault {
  readonly #clients = new Map<string, ProviderClient>();
  /** Refreshes of one grant, one at a time in this process (a provider may rotate the refresh token). */
  readonly #refreshing = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: TokenVaultDeps) {}

  get redirectUri(): string {
    return `${this.deps.baseUrl.replace(/\/+$/, '')}/v1/vault/callback`;
  }

  #random64(): string {
    return Buffer.from(this.deps.random.bytes(32)).toString('base64url');
  }

  async #client(id: string): Promise<ProviderClient> {
    const provider = await this.deps.providers.require(id);
    const cached = this.#clients.get(id);
    if (cached && cached.provider.updatedAt.getTime() === provider.updatedAt.getTime()) return cached;
    const client = new ProviderClient(provider, () => this.deps.providers.credential(id), this.deps.fetch);
    this.#clients.set(id, client);
    return client;
  }

  /**
   * A link for `user` to link their account at `provider` for `scopes` (⊆ the provider's): single
   * use, for `linkTtl`, and only the user it names can use it (they sign in first).
   */
  async linkFor(providerId: string, user: VaultUser, scopes: readonly string[], taskId?: string): Promise<{ url: string; expiresAt: Date }> {
    const provider = await this.deps.providers.require(providerId);
    const extra = scopes.filter((s) => !provider.scopes.includes(s));
    if (extra.length > 0) throw new VaultError(400, 'invalid-provider', `scope: ${providerId} does not grant ${extra.join(' ')}`);
    const secret = this.#random64();
    const now = this.deps.clock.now();
    const expiresAt = new Date(now.getTime() + (this.deps.linkTtl ?? 600) * 1000);
    await this.deps.prisma.grantLink.create({ data: { id: hash(secret), providerId, subjectIssuer: user.iss, subject: user.sub, scopes: [...new Set(scopes.length > 0 ? scopes : provider.scopes)], taskId: taskId ?? null, createdAt: now, expiresAt } });
    await this.deps.prisma.grantLink.deleteMany({ where: { expiresAt: { lte: now } } });
    return { url: `${this.deps.baseUrl.replace(/\/+$/, '')}/v1/vault/links/${secret}`, expiresAt };
  }

  /** Who a link is for (to ask them to sign in), without using it; undefined for an unknown or spent link. */
  async linkUser(secret: string): Promise<VaultUser | undefined> {
    if (!LINK_SECRET.test(secret)) return undefined;
    const link = await this.deps.prisma.grantLink.findUnique({ where: { id: hash(secret) } });
    return link && link.usedAt === null && link.expiresAt > this.deps.clock.now() ? { iss: link.subjectIssuer, sub: link.subject } : undefined;
  }

  /**
   * The signed-in `person` opens a link: it must be the user the link names. The link is spent,
   * and the browser goes to the provider's authorization endpoint (PKCE, `state`).
   */
  async openLink(secret: string, person: VaultUser): Promise<{ url: string; browserCookie: string }> {
    const id = LINK_SECRET.test(secret) ? hash(secret) : undefined;
    const link = id === undefined ? null : await this.deps.prisma.grantLink.findUnique({ where: { id } });
    const now = this.deps.clock.now();
    if (!link || link.usedAt !== null || link.expiresAt <= now) throw new VaultError(400, 'link-invalid', 'this link is unknown, used, or expired: ask for a new one');
    // Nobody links an account to someone else: the person signed in is the user the link was made for.
    if (link.subjectIssuer !== person.iss || link.subject !== person.sub) throw new VaultError(403, 'link-forbidden', 'this link was made for another user');
    const client = await this.#client(link.providerId);
    const state = this.#random64();
    const verifier = this.#random64();
    // The callback must come back to this browser (its cookie): a sign-in at the provider that someone
    // else started cannot land a grant under this user's name, nor this one under theirs (RFC 6749 §10.12).
    const browserCookie = this.#random64();
    const spent = await this.deps.prisma.grantLink.updateMany({ where: { id: link.id, usedAt: null }, data: { usedAt: now, state: hash(state), verifier, browser: hash(browserCookie) } });
    if (spent.count !== 1) throw new VaultError(400, 'link-invalid', 'this link was used meanwhile');
    return { url: await client.authorizationUrl({ redirectUri: this.redirectUri, state, codeVerifier: verifier, scopes: link.scopes }), browserCookie };
  }

  /**
   * The provider's redirect back (RFC 6749 §4.1.2): the sign-in the `state` names (once), the
   * code redeemed, and the refresh token stored sealed, replacing the user's earlier grant there.
   */
  async finishLink(callback: URLSearchParams, browserCookie: string | undefined): Promise<DownstreamGrant> {
    const state = callback.get('state');
    const now = this.deps.clock.now();
    const link = state === null ? null : await this.deps.prisma.grantLink.findUnique({ where: { state: hash(state) } });
    // Used once: the row goes whatever happens next (RFC 6749 §10.12); a replayed state finds nothing.
    if (link) await this.deps.prisma.grantLink.deleteMany({ where: { id: link.id } });
    if (!link || link.expiresAt <= now || link.verifier === null) throw new VaultError(400, 'link-invalid', 'state: no account linking under way with this state (it expired, or was used)');
    if (browserCookie === undefined || link.browser === null || hash(browserCookie) !== link.browser) throw new VaultError(400, 'link-invalid', 'this sign-in at the provider was started in another browser: open the link again here');
    const client = await this.#client(link.providerId);
    const tokens = await client.redeem(callback, { state: state!, codeVerifier: link.verifier, redirectUri: this.redirectUri, scopes: link.scopes });
    if (tokens.refreshToken === undefined) throw new VaultError(502, 'provider-failed', `${link.providerId} issued no refresh token: register Writ's client there for the refresh_token grant (offline access)`);
    const id = this.deps.random.uuid();
    const sealed = this.deps.sealer.seal(grantBinding(id), Buffer.from(tokens.refreshToken, 'utf8'));
    const scopes = tokens.scopes.filter((s) => link.scopes.includes(s));
    const user = { iss: link.subjectIssuer, sub: link.subject };
    return this.deps.prisma.$transaction(async (tx) => {
      const replaced = await tx.downstreamGrant.updateMany({ where: { providerId: link.providerId, subjectIssuer: user.iss, subject: user.sub, revokedAt: null }, data: { revokedAt: now, revocationReason: 'replaced by a new link' } });
      const row = await tx.downstreamGrant.create({
        data: { id, providerId: link.providerId, subjectIssuer: user.iss, subject: user.sub, scopes, tokenKekId: sealed.kekId, tokenNonce: Uint8Array.from(sealed.nonce), tokenCiphertext: Uint8Array.from(sealed.ciphertext), createdAt: now },
      });
      await this.deps.audit(tx, { type: 'grant.linked', subject: user.sub, subjectIssuer: user.iss, actor: `user:${user.iss}#${user.sub}`, details: { provider: link.providerId, grantId: id, scopes, replaced: replaced.count, ...(link.taskId !== null && { taskId: link.taskId }) } });
      return grantView(row);
    });
  }

  /** The user's live grant at the provider, if any. */
  async grantOf(providerId: string, user: VaultUser): Promise<DownstreamGrant | undefined> {
    const row = await this.deps.prisma.downstreamGrant.findFirst({ where: { providerId, subjectIssuer: user.iss, subject: user.sub, revokedAt: null } });
    return row ? grantView(row) : undefined;
  }

  async grants(filter: { user?: VaultUser; provider?: string } = {}): Promise<DownstreamGrant[]> {
    const rows = await this.deps.prisma.downstreamGrant.findMany({
      where: { revokedAt: null, ...(filter.user && { subjectIssuer: filter.user.iss, subject: filter.user.sub }), ...(filter.provider !== undefined && { providerId: filter.provider }) },
      orderBy: { createdAt: 'desc' },
      take: 1000,
    });
    return rows.map(grantView);
  }

  /**
   * An access token of the user's grant for one task (the exchange has authenticated the
   * connector, verified the task token and asked policy). The provider is asked for a fresh
   * access token for exactly `scopes`; its life is capped by the task token's; the release
   * commits, audited, only while the task token's lease is live and its task not ended (under the
   * revocation lock, as a lease does), else the fresh token is revoked at the provider and refused.
   */
  async release(req: { provider: DownstreamProvider; user: VaultUser; scopes: readonly string[]; connector: string; taskId: string; jti: string; taskTokenExpiresAt: Date; audit: Record<string, unknown> }): Promise<GrantRelease> {
    const grant = await this.deps.prisma.downstreamGrant.findFirst({ where: { providerId: req.provider.id, subjectIssuer: req.user.iss, subject: req.user.sub, revokedAt: null } });
    const missing = !grant ? 'has not linked an account' : req.scopes.filter((s) => !grant.scopes.includes(s));
    if (missing === 'has not linked an account' || (Array.isArray(missing) && missing.length > 0)) {
      const scopes = [...new Set([...(grant?.scopes ?? []), ...req.scopes])];
      const link = await this.linkFor(req.provider.id, req.user, scopes, req.taskId);
      throw new GrantRequired(req.provider.id, link.url, link.expiresAt, typeof missing === 'string' ? `${req.user.sub} ${missing} at ${req.provider.id}: they link it at the link given` : `${req.user.sub}'s grant at ${req.provider.id} does not cover ${missing.join(' ')}: they link again at the link given`);
    }
    const tokens = await this.#refresh(grant!, req.scopes);
    const now = this.deps.clock.now();
    const providerExpiry = tokens.expiresIn === undefined ? req.taskTokenExpiresAt : new Date(now.getTime() + tokens.expiresIn * 1000);
    const expiresAt = new Date(Math.min(providerExpiry.getTime(), req.taskTokenExpiresAt.getTime()));
    const id = this.deps.random.uuid();
    const sealed = this.deps.sealer.seal(releaseBinding(id), Buffer.from(tokens.accessToken, 'utf8'));
    const scopes = [...(tokens.scopes.length > 0 ? tokens.scopes : req.scopes)];
    const committed = await this.deps.prisma.$transaction(async (tx) => {
      // As a lease commits: a revocation in flight either revoked the task token before this reads it, or sees this release after.
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock_shared(${REVOCATION_LOCK})`);
      const lease = await tx.lease.findUnique({ where: { id: req.jti }, select: { revokedAt: true, expiresAt: true } });
      const task = await tx.task.findUnique({ where: { id: req.taskId }, select: { endedAt: true } });
      if (!lease || lease.revokedAt !== null || lease.expiresAt <= now || !task || task.endedAt !== null) return false;
      await tx.grantRelease.create({ data: { id, grantId: grant!.id, taskId: req.taskId, jti: req.jti, connector: req.connector, scopes, tokenKekId: sealed.kekId, tokenNonce: Uint8Array.from(sealed.nonce), tokenCiphertext: Uint8Array.from(sealed.ciphertext), createdAt: now, expiresAt } });
      await this.deps.audit(tx, { type: 'grant.released', subject: req.user.sub, subjectIssuer: req.user.iss, actor: req.connector, details: { ...req.audit, provider: req.provider.id, grantId: grant!.id, taskId: req.taskId, jti: req.jti, scopes, expiresAt: expiresAt.toISOString() } });
      return true;
    });
    if (!committed) {
      await (await this.#client(req.provider.id)).revoke(tokens.accessToken, 'access_token').catch(() => undefined);
      throw new VaultError(403, 'link-forbidden', 'the task token was revoked, or its task ended, while the grant was being used');
    }
    return { accessToken: tokens.accessToken, tokenType: tokens.tokenType, expiresIn: Math.max(1, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)), scopes, grantId: grant!.id };
  }

  /**
   * Revokes stored grants in the caller's transaction (its audit event with it): one grant by id
   * (its user unlinking, an admin), or every grant of a user, or every grant a connector holds a
   * live release of, for an `event` (the providers whose `revoke_on` names it only, unless `always`).
   * Writ stops using them at once; the refresh token is revoked at the provider after the commit
   * (RFC 7009, by {@link reap}, retried until done). Returns how many grants it revoked.
   */
  async revokeGrantsIn(
    tx: Prisma.TransactionClient,
    which: { grantId: string } | { user: VaultUser } | { connector: string },
    opts: { event?: GrantRevokeEvent; reason: string; actor: string },
  ): Promise<number> {
    const now = this.deps.clock.now();
    const where: Prisma.DownstreamGrantWhereInput = {
      revokedAt: null,
      ...('grantId' in which && { id: which.grantId }),
      ...('user' in which && { subjectIssuer: which.user.iss, subject: which.user.sub }),
      ...('connector' in which && { releases: { some: { connector: which.connector, revokedAt: null, expiresAt: { gt: now } } } }),
      ...(opts.event !== undefined && { provider: { revokeOn: { has: opts.event } } }),
    };
    const grants = await tx.downstreamGrant.findMany({ where, select: { id: true, providerId: true, subject: true, subjectIssuer: true } });
    for (const g of grants) {
      const changed = await tx.downstreamGrant.updateMany({ where: { id: g.id, revokedAt: null }, data: { revokedAt: now, revocationReason: opts.reason, revokeAtProvider: true } });
      if (changed.count === 1) await this.deps.audit(tx, { type: 'grant.revoked', subject: g.subject, subjectIssuer: g.subjectIssuer, actor: opts.actor, details: { provider: g.providerId, grantId: g.id, reason: opts.reason, atProvider: true, ...(opts.event !== undefined && { event: opts.event }) } });
    }
    return grants.length;
  }

  /**
   * The vault's part in a revocation (in its transaction): the grants of the user it names (or of
   * the users holding the session or email it names), or those a connector's kill switch reaches,
   * at providers whose `revoke_on` names `cause`.
   */
  async revokeForRevocation(tx: Prisma.TransactionClient, selector: RevocationSelector, cause: GrantRevokeEvent, reason: string, actor: string): Promise<number> {
    const opts = { event: cause, reason, actor };
    if ('connector' in selector && !('user' in selector)) return this.revokeGrantsIn(tx, { connector: selector.connector }, opts);
    if ('user' in selector) return this.revokeGrantsIn(tx, { user: { iss: selector.user.issuer, sub: selector.user.subject } }, opts);
    const held = 'session' in selector ? { subjectIssuer: selector.session.issuer, sid: selector.session.sid } : 'email' in selector ? { subjectIssuer: selector.email.issuer, subjectEmail: selector.email.email } : undefined;
    if (!held) return 0;
    // A session or an email names users through the tokens issued to them.
    const users = await tx.lease.findMany({ where: { ...held, subject: { not: null } }, distinct: ['subject'], select: { subject: true, subjectIssuer: true }, take: 100 });
    let revoked = 0;
    for (const u of users) revoked += await this.revokeGrantsIn(tx, { user: { iss: u.subjectIssuer!, sub: u.subject! } }, opts);
    return revoked;
  }

  /** One grant revoked (its user unlinks it, or an admin revokes it), at the provider too; VaultError 404 when there is no live one. */
  async revokeGrant(grantId: string, opts: { reason: string; actor: string; user?: VaultUser }): Promise<void> {
    const revoked = await this.deps.prisma.$transaction(async (tx) => {
      const grant = await tx.downstreamGrant.findFirst({ where: { id: grantId, revokedAt: null, ...(opts.user && { subjectIssuer: opts.user.iss, subject: opts.user.sub }) }, select: { id: true } });
      if (!grant) throw new VaultError(404, 'grant-not-found', `no live grant ${grantId.slice(0, 64)}${opts.user ? ' of yours' : ''}`);
      return this.revokeGrantsIn(tx, { grantId }, { reason: opts.reason, actor: opts.actor });
    });
    if (revoked > 0) this.reapSoon();
  }

  /**
   * Revokes at the provider (RFC 7009) the access tokens released to tasks whose task token was
   * revoked or expired, whose task ended, or whose grant was revoked: a released token ends with
   * its task token, not at its own (possibly later) expiry at the provider. A provider that fails is asked again at the
   * next sweep; one without a revocation endpoint is recorded as such (its tokens live until they
   * expire: keep their lifetime short there). Returns how many releases it ended.
   */
  async reap(limit = 100): Promise<number> {
    const now = this.deps.clock.now();
    const due = await this.deps.prisma.$queryRaw<{ id: string; grant_id: string; provider_id: string; task_id: string; jti: string; subject: string; subject_issuer: string; token_kek_id: string; token_nonce: Uint8Array; token_ciphertext: Uint8Array }[]>`
      SELECT r.id, r.grant_id, g.provider_id, r.task_id, r.jti, g.subject, g.subject_issuer, r.token_kek_id, r.token_nonce, r.token_ciphertext
      FROM grant_release r
      JOIN downstream_grant g ON g.id = r.grant_id
      LEFT JOIN lease l ON l.id = r.jti
      LEFT JOIN task t ON t.id = r.task_id
      WHERE r.revoked_at IS NULL
        AND (r.expires_at <= ${now} OR l.id IS NULL OR l.revoked_at IS NOT NULL OR t.ended_at IS NOT NULL OR g.revoked_at IS NOT NULL)
      ORDER BY r.expires_at
      LIMIT ${limit}`;
    let ended = await this.#revokeGrantsAtProviders(limit);
    for (const r of due) {
      const result = await this.#revokeAtProvider(r.provider_id, releaseBinding(r.id), { kekId: r.token_kek_id, nonce: r.token_nonce, ciphertext: r.token_ciphertext }, 'access_token');
      if (result === undefined) continue;
      await this.deps.prisma.$transaction(async (tx) => {
        const marked = await tx.grantRelease.updateMany({ where: { id: r.id, revokedAt: null }, data: { revokedAt: this.deps.clock.now(), revocationResult: result } });
        if (marked.count === 1) await this.deps.audit(tx, { type: 'release.revoked', subject: r.subject, subjectIssuer: r.subject_issuer, actor: 'writ', details: { provider: r.provider_id, grantId: r.grant_id, taskId: r.task_id, jti: r.jti, releaseId: r.id, atProvider: result === 'revoked' } });
      });
      ended += 1;
    }
    return ended;
  }

  /** Grants revoked here whose refresh token is still to be revoked at the provider: asked now, again at the next sweep if it fails. */
  async #revokeGrantsAtProviders(limit: number): Promise<number> {
    const due = await this.deps.prisma.downstreamGrant.findMany({ where: { revokeAtProvider: true, providerResult: null, revokedAt: { not: null } }, take: limit });
    let done = 0;
    for (const g of due) {
      const result = await this.#revokeAtProvider(g.providerId, grantBinding(g.id), { kekId: g.tokenKekId, nonce: g.tokenNonce, ciphertext: g.tokenCiphertext }, 'refresh_token');
      if (result === undefined) continue;
      await this.deps.prisma.downstreamGrant.updateMany({ where: { id: g.id, providerResult: null }, data: { providerResult: result } });
      done += 1;
    }
    return done;
  }

  /**
   * RFC 7009 at the provider for a sealed token: "revoked", "no revocation endpoint", or undefined
   * when it could not be done now (the provider did not answer): asked again at the next sweep.
   */
  async #revokeAtProvider(providerId: string, binding: string, sealed: SealedSecret, hint: 'access_token' | 'refresh_token'): Promise<string | undefined> {
    try {
      const token = this.deps.sealer.open(binding, sealed).toString('utf8');
      return (await (await this.#client(providerId)).revoke(token, hint)) ? 'revoked' : 'no revocation endpoint';
    } catch {
      return undefined;
    }
  }

  /**
   * What the vault keeps sealed under a key other than the current one (the previous KEK during a
   * KEK rotation, or WRIT_CA_DIR's secrets key on the first start with a KEK) is sealed again under
   * the current key, with its audit event in the same transaction, so that the old key can be
   * destroyed. Rows under a key this replica does not hold (a newer KEK, during a rolling update)
   * are left to a replica that holds it.
   */
  async resealSecrets(): Promise<{ providers: number; grants: number; releases: number }> {
    const { sealer } = this.deps;
    const current = sealer.kekId;
    const again = (binding: string, sealed: SealedSecret) => {
      const next = sealer.seal(binding, sealer.open(binding, sealed));
      return { kekId: next.kekId, nonce: Uint8Array.from(next.nonce), ciphertext: Uint8Array.from(next.ciphertext) };
    };
    return this.deps.prisma.$transaction(
      async (tx) => {
        let providers = 0;
        for (const r of await tx.downstreamProvider.findMany({ where: { secretKekId: { not: current } }, select: { id: true, secretKekId: true, secretNonce: true, secretCiphertext: true } })) {
          if (!sealer.holds(r.secretKekId)) continue;
          const next = again(secretBinding(r.id), { kekId: r.secretKekId, nonce: r.secretNonce, ciphertext: r.secretCiphertext });
          providers += (await tx.downstreamProvider.updateMany({ where: { id: r.id, secretKekId: r.secretKekId }, data: { secretKekId: next.kekId, secretNonce: next.nonce, secretCiphertext: next.ciphertext } })).count;
        }
        let grants = 0;
        for (const r of await tx.downstreamGrant.findMany({ where: { tokenKekId: { not: current } }, select: { id: true, tokenKekId: true, tokenNonce: true, tokenCiphertext: true } })) {
          if (!sealer.holds(r.tokenKekId)) continue;
          const next = again(grantBinding(r.id), { kekId: r.tokenKekId, nonce: r.tokenNonce, ciphertext: r.tokenCiphertext });
          grants += (await tx.downstreamGrant.updateMany({ where: { id: r.id, tokenKekId: r.tokenKekId }, data: { tokenKekId: next.kekId, tokenNonce: next.nonce, tokenCiphertext: next.ciphertext } })).count;
        }
        let releases = 0;
        for (const r of await tx.grantRelease.findMany({ where: { tokenKekId: { not: current } }, select: { id: true, tokenKekId: true, tokenNonce: true, tokenCiphertext: true } })) {
          if (!sealer.holds(r.tokenKekId)) continue;
          const next = again(releaseBinding(r.id), { kekId: r.tokenKekId, nonce: r.tokenNonce, ciphertext: r.tokenCiphertext });
          releases += (await tx.grantRelease.updateMany({ where: { id: r.id, tokenKekId: r.tokenKekId }, data: { tokenKekId: next.kekId, tokenNonce: next.nonce, tokenCiphertext: next.ciphertext } })).count;
        }
        if (providers + grants + releases > 0) await this.deps.audit(tx, { type: 'vault.resealed', actor: 'writ', details: { kek: current, providers, grants, releases } });
        return { providers, grants, releases };
      },
      { timeout: 60_000 },
    );
  }

  /** Runs {@link reap} soon (once for any number of calls meanwhile): after a revocation or a task's end commits. */
  reapSoon(onError: (err: unknown) => void = () => undefined): void {
    if (this.#reapQueued) return;
    this.#reapQueued = true;
    setImmediate(() => {
      this.#reapQueued = false;
      this.reap().catch(onError);
    });
  }

  #reapQueued = false;
  #reapTimer: ReturnType<typeof setInterval> | undefined;

  /** Reaps every `intervalMs` as well: revocations committed on other replicas, and providers that failed before. */
  startReaping(intervalMs: number, onError: (err: unknown) => void): void {
    this.#reapTimer ??= setInterval(() => this.reapSoon(onError), intervalMs);
    this.#reapTimer.unref?.();
  }

  stopReaping(): void {
    if (this.#reapTimer) clearInterval(this.#reapTimer);
    this.#reapTimer = undefined;
  }

  /** A refresh of `grant` for `scopes`; a rotated refresh token is stored (sealed) before the access token is used. */
  async #refresh(grant: GrantRow, scopes: readonly string[]): Promise<ProviderTokens> {
    const before = this.#refreshing.get(grant.id) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(async () => {
      // Read again: another refresh (here or on another replica) may have rotated it.
      const row = await this.deps.prisma.downstreamGrant.findUnique({ where: { id: grant.id } });
      if (!row || row.revokedAt !== null) throw new VaultError(403, 'grant-not-found', 'the grant was revoked');
      const refreshToken = this.deps.sealer.open(grantBinding(row.id), { kekId: row.tokenKekId, nonce: row.tokenNonce, ciphertext: row.tokenCiphertext }).toString('utf8');
      const tokens = await (await this.#client(row.providerId)).refresh(refreshToken, scopes);
      const rotated = tokens.refreshToken !== undefined && tokens.refreshToken !== refreshToken ? this.deps.sealer.seal(grantBinding(row.id), Buffer.from(tokens.refreshToken, 'utf8')) : undefined;
      await this.deps.prisma.downstreamGrant.updateMany({
        where: { id: row.id, revokedAt: null },
        data: { refreshedAt: this.deps.clock.now(), ...(rotated && { tokenKekId: rotated.kekId, tokenNonce: Uint8Array.from(rotated.nonce), tokenCiphertext: Uint8Array.from(rotated.ciphertext) }) },
      });
      return tokens;
    });
    this.#refreshing.set(grant.id, run);
    try {
      return await run;
    } finally {
      if (this.#refreshing.get(grant.id) === run) this.#refreshing.delete(grant.id);
    }
  }
}
