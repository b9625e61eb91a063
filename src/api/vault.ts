import { Router, type Response } from 'express';
import { z } from 'zod';
import type { ConsoleSignIn } from '../console';
import { escapeHtml } from '../dev/op';
import { providerPatch, providerRequest, VaultError, type DownstreamGrant, type DownstreamProvider, type ProviderStore, type TokenVault } from '../vault';
import { consoleCookie, cookieOf, principalOf, signedInPerson, Unauthenticated, type AuthDeps } from './auth';
import { parseWith } from './validate';

export interface VaultRouteDeps {
  vault: Pick<TokenVault, 'linkUser' | 'openLink' | 'finishLink' | 'grants' | 'revokeGrant'>;
  providers: Pick<ProviderStore, 'create' | 'update' | 'get' | 'require' | 'list' | 'delete'>;
  /** People's sign-in (WRIT_ADMIN_AUDIENCE): who opens a link. Without it, accounts cannot be linked. */
  signIn?: Pick<ConsoleSignIn, 'session'>;
  /** Who a request is signed in as (bearer sign-in token or console session): a user listing and unlinking their grants. */
  people?: Pick<AuthDeps, 'people' | 'consoleSessions'>;
}

/** The admin API's view of a provider: never its secret. */
export const providerView = (p: DownstreamProvider) => ({
  id: p.id, issuer: p.issuer, client_id: p.clientId, client_auth: p.clientAuth, scopes: p.scopes, classification: p.classification, resource: p.resource, revoke_on: p.revokeOn,
  created_by: p.createdBy, created_at: p.createdAt.toISOString(), updated_at: p.updatedAt.toISOString(),
});
/** A grant as admins see it: never its token. */
export const grantView = (g: DownstreamGrant) => ({ id: g.id, provider: g.provider, user: { iss: g.user.iss, sub: g.user.sub }, scopes: g.scopes, created_at: g.createdAt.toISOString(), refreshed_at: g.refreshedAt?.toISOString() ?? null });

/** Binds the provider's redirect back to the browser that went there (not `__Host-`: its Path is the callback's). */
const LINK_COOKIE = '__Secure-writ-link';

const idParam = z.strictObject({ id: z.string().min(1).max(63) });
export const grantListQuery = z.strictObject({ provider: z.string().min(1).max(63).optional(), issuer: z.string().min(1).max(2048).optional(), subject: z.string().min(1).max(1024).optional() }).refine((q) => (q.issuer === undefined) === (q.subject === undefined), { message: 'issuer and subject go together', path: ['subject'] });
const grantParam = z.strictObject({ id: z.uuid() });
export const reasonQuery = z.strictObject({ reason: z.string().min(1).max(512).optional() });
const linkParam = z.strictObject({ secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'is not a link of this broker') });

/** The pages a person sees while linking: Writ's own, strict CSP; the form may go on to the provider. */
function page(res: Response, status: number, title: string, body: string, formTo?: string) {
  res.setHeader('Content-Security-Policy', `default-src 'none'; style-src 'self'; form-action 'self'${formTo ? ` ${formTo}` : ''}; frame-ancestors 'none'; base-uri 'none'`);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
  res.status(status).type('text/html; charset=utf-8').send(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><link rel="stylesheet" href="/console/app.css"></head><body><main>${body}</main></body></html>`);
}

/**
 * The token vault over HTTP (issue 20).
 * - Linking, in the user's browser: `GET /v1/vault/links/{secret}` shows what the link is for and
 *   a button; the button (a same-site POST, so the SameSite=Strict session cookie goes with it)
 *   sends a person who is not signed in to sign in first and back, refuses anyone but the user the
 *   link names, and sends that user to the provider. `GET /v1/vault/callback` is the provider's
 *   redirect back: the grant is stored.
 */
export function vaultLinksRouter(deps: Pick<VaultRouteDeps, 'vault' | 'signIn' | 'people'>): Router {
  const router = Router();

  router.get('/v1/vault/links/:secret', async (req, res) => {
    // A person reads this page: a malformed link is answered as an unknown one, in HTML.
    const user = await deps.vault.linkUser(String(req.params.secret));
    if (!user) return page(res, 400, 'Link expired', '<h1>This link is unknown, used, or expired</h1><p>Ask the agent for a new one.</p>');
    page(res, 200, 'Link your account', `<h1>Link your account</h1><p>An agent acting for <strong>${escapeHtml(user.sub)}</strong> (${escapeHtml(user.iss)}) asks to use your account at a service, through Writ. Writ keeps the grant; the agent never sees it.</p><form method="post"><button type="submit" id="continue">Sign in and continue</button></form>`);
  });

  router.post('/v1/vault/links/:secret', async (req, res) => {
    const { secret } = parseWith(linkParam, req.params);
    const user = await deps.vault.linkUser(secret);
    if (!user) throw new VaultError(400, 'link-invalid', 'this link is unknown, used, or expired: ask for a new one');
    if (!deps.signIn) throw new VaultError(400, 'link-invalid', 'accounts are linked by people signed in, and sign-in is off: set WRIT_ADMIN_AUDIENCE');
    const cookie = consoleCookie(req);
    const session = cookie === undefined ? undefined : await deps.signIn.session(cookie);
    if (!session) return void res.status(303).location(`/console/login?${new URLSearchParams({ issuer: user.iss, return_to: `/v1/vault/links/${secret}` })}`).end();
    const opened = await deps.vault.openLink(secret, { iss: session.person.iss, sub: session.person.sub });
    res.setHeader('Cache-Control', 'no-store');
    // SameSite=Lax: the provider's redirect back is a cross-site top-level navigation, which Lax lets through.
    res.setHeader('Set-Cookie', `${LINK_COOKIE}=${opened.browserCookie}; Path=/v1/vault/callback; Secure; HttpOnly; SameSite=Lax; Max-Age=600`);
    res.status(303).location(opened.url).end();
  });

  // A user's own grants, and unlinking one (revoked at the provider too): signed in as themselves.
  const me = async (req: Parameters<Parameters<Router['get']>[1]>[0]) => {
    const person = deps.people ? await signedInPerson(req, deps.people) : undefined;
    if (!person) throw new Unauthenticated('sign in as yourself (a sign-in token for WRIT_ADMIN_AUDIENCE as Authorization: Bearer, or the console)');
    return person;
  };
  router.get('/v1/vault/grants', async (req, res) => {
    const person = await me(req);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ grants: (await deps.vault.grants({ user: { iss: person.iss, sub: person.sub } })).map(grantView) });
  });
  router.delete('/v1/vault/grants/:id', async (req, res) => {
    const person = await me(req);
    const { id } = parseWith(grantParam, req.params);
    await deps.vault.revokeGrant(id, { reason: parseWith(reasonQuery, req.query).reason ?? 'unlinked by its user', actor: `user:${person.iss}#${person.sub}`, user: { iss: person.iss, sub: person.sub } });
    res.status(204).end();
  });

  router.get('/v1/vault/callback', async (req, res) => {
    const grant = await deps.vault.finishLink(new URLSearchParams(req.query as Record<string, string>), cookieOf(req, LINK_COOKIE));
    res.setHeader('Set-Cookie', `${LINK_COOKIE}=; Path=/v1/vault/callback; Secure; HttpOnly; SameSite=Lax; Max-Age=0`);
    page(res, 200, 'Account linked', `<h1 id="linked">Account linked</h1><p>Writ keeps ${escapeHtml(grant.user.sub)}'s grant at ${escapeHtml(grant.provider)} (${escapeHtml(grant.scopes.join(' '))}). You may close this page and go back to the agent.</p>`);
  });

  return router;
}

/** The vault's admin routes (mounted behind the admin check): `/v1/admin/providers` (register, read, change, remove) and `/v1/admin/grants` (read). */
export function vaultAdminRouter(deps: Pick<VaultRouteDeps, 'vault' | 'providers'>): Router {
  const router = Router();
  router.get('/v1/admin/providers', async (_req, res) => {
    res.json({ providers: (await deps.providers.list()).map(providerView) });
  });
  router.post('/v1/admin/providers', async (req, res) => {
    const created = await deps.providers.create(parseWith(providerRequest, req.body), principalOf(req));
    res.status(201).location(`/v1/admin/providers/${created.id}`).json(providerView(created));
  });
  router.get('/v1/admin/providers/:id', async (req, res) => {
    res.json(providerView(await deps.providers.require(parseWith(idParam, req.params).id)));
  });
  router.patch('/v1/admin/providers/:id', async (req, res) => {
    res.json(providerView(await deps.providers.update(parseWith(idParam, req.params).id, parseWith(providerPatch, req.body), principalOf(req))));
  });
  router.delete('/v1/admin/providers/:id', async (req, res) => {
    await deps.providers.delete(parseWith(idParam, req.params).id, principalOf(req));
    res.status(204).end();
  });
  router.delete('/v1/admin/grants/:id', async (req, res) => {
    const { id } = parseWith(grantParam, req.params);
    await deps.vault.revokeGrant(id, { reason: parseWith(reasonQuery, req.query).reason ?? 'revoked by an admin', actor: principalOf(req) });
    res.status(204).end();
  });
  router.get('/v1/admin/grants', async (req, res) => {
    const q = parseWith(grantListQuery, req.query);
    const grants = await deps.vault.grants({ ...(q.provider !== undefined && { provider: q.provider }), ...(q.issuer !== undefined && { user: { iss: q.issuer, sub: q.subject! } }) });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ grants: grants.map(grantView) });
  });
  return router;
}
