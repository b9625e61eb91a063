/**
 * `writ dev`'s SaaS: a stand-in for the GitHub, Google Drive or Salesforce a connector calls
 * for its user, to show and test Writ's token vault (src/vault) against a real OAuth
 * authorization server. It is panva's oidc-provider configured as a SaaS authorization server
 * ("Acme Notes"): one confidential client (Writ's vault: authorization code with PKCE, refresh
 * tokens, `client_secret_basic`), opaque access tokens for one API (RFC 8707 resource
 * `<issuer>/api`) with the scopes `notes:read` and `notes:write`, RFC 7009 revocation and RFC 7662
 * introspection. The API itself is served here too: `GET/POST /api/notes` accepts only access
 * tokens this server issued, checked by introspection at every call (a revoked token is refused at
 * once), and records who posted what.
 *
 * Development only, like the dev OpenID Provider: password-less login, consent granted to the
 * vault client without asking, memory storage, plain HTTP on a loopback address.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MemoryStore, memoryAdapter } from './adapter';
import type { DevOpKeys } from './keys';
import { escapeHtml, listenLoopback, loadOidcProvider, readBody, type OidcProvider, type OidcProviderClass } from './op';
import type { DevUser } from './users';

/** Writ's vault as the SaaS's OAuth client. */
export const SAAS_VAULT_CLIENT_ID = 'writ-vault';
/** The same, authenticating with a private key (RFC 7523 `private_key_jwt`) when `jwtClientJwks` is given. */
export const SAAS_VAULT_JWT_CLIENT_ID = 'writ-vault-jwt';
/** The SaaS's own API, a client of its introspection endpoint (RFC 7662 §2.1 authenticates the caller). */
const API_CLIENT_ID = 'notes-api';
export const SAAS_SCOPES = ['notes:read', 'notes:write'] as const;

export interface DevSaasOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The SaaS's users (its own accounts; the same names as the dev users, by convention). */
  readonly users: ReadonlyMap<string, DevUser>;
  readonly keys: DevOpKeys;
  /** The vault client's secret (registered at Writ as the provider's client_secret). */
  readonly clientSecret: string;
  /** Where the vault client may be sent back to: Writ's `<issuer>/v1/vault/callback`. */
  readonly redirectUris: readonly string[];
  /** The public keys of a second vault client that authenticates with `private_key_jwt`; none when unset. */
  readonly jwtClientJwks?: { readonly keys: readonly Record<string, unknown>[] };
  /** Seconds an access token lives (the vault refreshes after); 300 by default. */
  readonly accessTokenTtl?: number;
  readonly Provider?: OidcProviderClass;
}

/** A note posted through the API: by whom (the account the token was issued for) and with which client. */
export interface SaasNote {
  readonly author: string;
  readonly clientId: string;
  readonly text: string;
  readonly at: string;
}

export interface DevSaas {
  /** `http://127.0.0.1:<port>`: the authorization server's issuer. */
  readonly issuer: string;
  /** The API's resource identifier (RFC 8707): `<issuer>/api`. */
  readonly api: string;
  readonly notes: readonly SaasNote[];
  close(): Promise<void>;
}

export async function startDevSaas(options: DevSaasOptions): Promise<DevSaas> {
  const Provider = options.Provider ?? loadOidcProvider();
  const { server, port, serve } = await listenLoopback(options.host, options.port, 'the dev SaaS');
  const issuer = `http://${options.host}:${port}`;
  const api = `${issuer}/api`;
  const apiSecret = Buffer.from(options.keys.cookies[0] ?? 'notes-api').toString('base64url') + '-api';
  const notes: SaasNote[] = [];
  const provider = new Provider(issuer, configuration(options, api, apiSecret, new MemoryStore()));
  const callback = provider.callback();
  serve((req, res) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    const interaction = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(path);
    const work = interaction ? interact(provider, options.users, req, res, interaction[2] !== undefined) : path === '/api/notes' ? notesApi(req, res) : undefined;
    if (!work) return callback(req, res);
    void work.catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`failed: ${(err as Error).message}\n`);
    });
  });

  /** The API: a bearer token this server issued for it, live (introspected now), with the scope the call needs (RFC 6750 §3.1 errors). */
  async function notesApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const deny = (status: number, error: string) => {
      res.writeHead(status, { 'www-authenticate': `Bearer error="${error}"`, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error }));
    };
    const token = /^Bearer ([\x21-\x7e]+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token) return deny(401, 'invalid_request');
    const answer = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${API_CLIENT_ID}:${apiSecret}`).toString('base64')}` },
      body: new URLSearchParams({ token }).toString(),
    });
    const info = (await answer.json()) as { active?: boolean; aud?: string | string[]; scope?: string; sub?: string; client_id?: string };
    const audience = Array.isArray(info.aud) ? info.aud : [info.aud];
    if (!info.active || !audience.includes(api) || typeof info.sub !== 'string') return deny(401, 'invalid_token');
    const scopes = new Set((info.scope ?? '').split(' '));
    const needed = req.method === 'POST' ? 'notes:write' : 'notes:read';
    if (!scopes.has(needed)) return deny(403, 'insufficient_scope');
    if (req.method === 'POST') {
      const body = JSON.parse((await readBody(req)) || '{}') as { text?: unknown };
      if (typeof body.text !== 'string' || body.text.length === 0 || body.text.length > 2000) return deny(400, 'invalid_request');
      const note = { author: info.sub, clientId: String(info.client_id), text: body.text, at: new Date().toISOString() };
      notes.push(note);
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(note));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ notes: notes.filter((n) => n.author === info.sub) }));
  }

  return {
    issuer,
    api,
    notes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function configuration(options: DevSaasOptions, api: string, apiSecret: string, store: MemoryStore): Record<string, unknown> {
  return {
    adapter: memoryAdapter(store),
    clients: [
      {
        client_id: SAAS_VAULT_CLIENT_ID,
        client_secret: options.clientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [...options.redirectUris],
        id_token_signed_response_alg: 'ES256',
      },
      ...(options.jwtClientJwks
        ? [{ client_id: SAAS_VAULT_JWT_CLIENT_ID, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [...options.jwtClientJwks.keys] }, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [...options.redirectUris], id_token_signed_response_alg: 'ES256' }]
        : []),
      // The API introspects the tokens it is shown; it signs no one in.
      { client_id: API_CLIENT_ID, client_secret: apiSecret, token_endpoint_auth_method: 'client_secret_basic', grant_types: [], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256' },
    ],
    jwks: { keys: options.keys.signing },
    cookies: { keys: options.keys.cookies },
    scopes: ['openid', 'offline_access', ...SAAS_SCOPES],
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    pkce: { required: () => true },
    ttl: { AuthorizationCode: 60, Interaction: 600, Session: 8 * 3600, Grant: 30 * 86400, AccessToken: options.accessTokenTtl ?? 300, RefreshToken: 30 * 86400, IdToken: 3600 },
    // A refresh token for the vault whenever it may use the grant (no offline_access prompt dance for a confidential client).
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: false },
      // RFC 7009 §2.1: a client revokes its own tokens only; RFC 7662 §4: only the API may introspect.
      revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) => token.clientId === client.clientId },
      introspection: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }) => client.clientId === API_CLIENT_ID },
      resourceIndicators: {
        enabled: true,
        // One API: a request naming no resource is for it, and a refresh keeps it (RFC 8707 §2.2).
        defaultResource: async () => api,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          if (indicator !== api) throw new Error(`unknown resource ${indicator}`);
          return { scope: SAAS_SCOPES.join(' '), audience: api, accessTokenTTL: options.accessTokenTtl ?? 300, accessTokenFormat: 'opaque' };
        },
      },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, id: string) => (options.users.has(id) ? { accountId: id, claims: () => ({ sub: id }) } : undefined),
    renderError: (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${out.error ?? 'error'}: ${out.error_description ?? ''}\n`;
    },
  };
}

interface SaasInteraction {
  uid: string;
  prompt: { name: string; details?: { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

/** The login form (GET), the login (POST …/login), and consent granted to the vault client for what it asked. */
async function interact(provider: OidcProvider, users: ReadonlyMap<string, DevUser>, req: IncomingMessage, res: ServerResponse, login: boolean): Promise<void> {
  const details = (await provider.interactionDetails(req, res)) as unknown as SaasInteraction;
  if (details.prompt.name === 'consent') {
    const clientId = details.params.client_id;
    if ((clientId !== SAAS_VAULT_CLIENT_ID && clientId !== SAAS_VAULT_JWT_CLIENT_ID) || !details.session?.accountId) throw new Error('consent is granted to the Writ vault clients only');
    const Grant = provider.Grant as unknown as (new (init: { clientId: string; accountId: string }) => SaasGrant) & { find(id: string): Promise<SaasGrant | undefined> };
    const grant = details.grantId ? await Grant.find(details.grantId) : new Grant({ clientId, accountId: details.session.accountId });
    if (!grant) throw new Error('the grant is gone');
    if (details.prompt.details?.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(details.prompt.details?.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    return;
  }
  if (!login) {
    const list = [...users.keys()].map((u) => `<option>${escapeHtml(u)}</option>`).join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><title>Acme Notes sign-in</title><h1>Acme Notes (writ dev's SaaS): sign in</h1><form method="post" action="/interaction/${escapeHtml(details.uid)}/login"><select name="username">${list}</select> <button>Sign in</button></form>`);
    return;
  }
  if (req.method !== 'POST') throw new Error('the login is a POST');
  const username = new URLSearchParams(await readBody(req)).get('username') ?? '';
  if (!users.has(username)) throw new Error(`no user ${JSON.stringify(username.slice(0, 64))}`);
  await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

interface SaasGrant {
  addOIDCScope(scope: string): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}
