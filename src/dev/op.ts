/**
 * `writ dev`'s OpenID Provider: panva's certified oidc-provider with a few test users, one
 * public client (`writ-dev`: authorization code with PKCE, RFC 7636) and a development-only
 * password-less login: the interaction page takes a user name from the users file, and
 * consent is granted to the dev client without asking. ID tokens are ES256 and carry the
 * user's `groups` (Writ's default groups_claim) and the session's `sid`.
 *
 * Served over plain HTTP on a loopback address only: Writ accepts an http:// `jwks_uri` for
 * 127.0.0.1 and localhost alone (src/jwt/issuer.ts), so no certificate is needed.
 *
 * ```ts
 * const op = await startDevOp({ host: '127.0.0.1', port: 9400, users, keys });
 * console.log(`${op.issuer}/.well-known/openid-configuration`); await op.close();
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { MemoryStore, memoryAdapter } from './adapter';
import type { DevOpKeys } from './keys';
import type { DevUser } from './users';

/** The dev client: public (no secret), so PKCE protects its code (RFC 7636; RFC 8252 §8.1). */
export const DEV_CLIENT_ID = 'writ-dev';
/** RFC 8252 §7.3 loopback redirect; `writ dev id-token` reads the code from the redirect without listening there. */
export const DEV_REDIRECT_URI = 'http://127.0.0.1/writ-dev/callback';
/** The second client: Writ's own sign-in for people (admins, approvers; WRIT_ADMIN_AUDIENCE), never the subject tokens' audience. */
export const DEV_CONSOLE_CLIENT_ID = 'writ-console';
/** The scopes the dev client asks for: `groups` brings the groups claim. */
export const DEV_SCOPE = 'openid groups email';
/** OIDC Core §5.5: the session ID (`sid`, Back-Channel Logout §2.4) in the ID token. */
export const DEV_CLAIMS_REQUEST = JSON.stringify({ id_token: { sid: { essential: true } } });

/** The part of oidc-provider's Provider that `writ dev` uses (the package ships no types). */
export interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): void;
  readonly Grant: GrantClass;
}
interface InteractionDetails {
  uid: string;
  prompt: { name: string; details?: { missingOIDCScope?: unknown } };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}
interface GrantInstance {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}
type GrantClass = (new (init: { clientId: string; accountId: string }) => GrantInstance) & { find(id: string): Promise<GrantInstance | undefined> };
export type OidcProviderClass = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

/**
 * oidc-provider's Provider class. The package is ESM-only; Node 20.19+ loads it with require()
 * (require(esm)). It warns once that Node 20 is not a runtime it supports (it checks for an LTS
 * release from 22 on); the flows `writ dev` uses work on Node 20 (test/dev runs them), so that one
 * notice is dropped, and any other warning passes through.
 */
export function loadOidcProvider(): OidcProviderClass {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime.')) return;
    warn(...args);
  };
  try {
    return (require('oidc-provider') as { Provider: OidcProviderClass }).Provider;
  } finally {
    console.warn = warn;
  }
}

export interface DevOpOptions {
  /** A loopback address: the provider is served over plain HTTP. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly users: ReadonlyMap<string, DevUser>;
  readonly keys: DevOpKeys;
  /** oidc-provider's Provider class: {@link loadOidcProvider} by default. */
  readonly Provider?: OidcProviderClass;
  /** Where the console client may be sent back to: Writ's `<issuer>/console/callback` (the loopback URI of the CLI always). */
  readonly consoleRedirectUris?: readonly string[];
}

export interface DevOp {
  /** `http://127.0.0.1:<port>`: the `iss` of its ID tokens. */
  readonly issuer: string;
  /**
   * Key rotation at the provider: from now on it signs with `keys.signing[0]` and publishes
   * exactly `keys.signing` in its JWKS (users, sessions and the port stay).
   */
  rotateKeys(keys: DevOpKeys): void;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The public part of a private JWK, for callers that publish or compare keys. */
export const publicJwk = ({ d: _d, ...rest }: JWK): JWK => rest;

/**
 * A plain HTTP server on a loopback address (development only), listening once this resolves;
 * it answers 503 until `serve` gives it its handler.
 */
export async function listenLoopback(host: string, port: number, what: string): Promise<{ server: Server; port: number; serve(handler: (req: IncomingMessage, res: ServerResponse) => void): void }> {
  if (!LOOPBACK.has(host)) throw new Error(`${what} serves plain HTTP and listens on a loopback address only, not ${host}`);
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port, serve: (h) => void (handler = h) };
}

/** A TCP port free on 127.0.0.1 now: for a server whose URL must be known before it listens (its issuer, the redirect URIs that name it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done, fail) => server.once('error', fail).listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

/** Starts the provider; resolves once it listens. */
export async function startDevOp(options: DevOpOptions): Promise<DevOp> {
  const Provider = options.Provider ?? loadOidcProvider();
  const { server, port, serve: serveWith } = await listenLoopback(options.host, options.port, 'the dev OpenID Provider');
  const host = options.host === '::1' ? '[::1]' : options.host;
  const issuer = `http://${host}:${port}`;
  const store = new MemoryStore();
  const serve = (keys: DevOpKeys) => {
    const provider = new Provider(issuer, configuration(options, keys, store));
    const callback = provider.callback();
    serveWith((req, res) => {
      const interaction = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(new URL(req.url ?? '/', issuer).pathname);
      if (!interaction) return callback(req, res);
      void interact(provider, options.users, req, res, interaction[2] !== undefined).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`login failed: ${(err as Error).message}\n`);
      });
    });
  };
  serve(options.keys);
  return {
    issuer,
    rotateKeys: serve,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function configuration(options: DevOpOptions, keys: DevOpKeys, store: MemoryStore): Record<string, unknown> {
  const { users } = options;
  return {
    adapter: memoryAdapter(store),
    clients: [
      {
        client_id: DEV_CLIENT_ID,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [DEV_REDIRECT_URI],
        id_token_signed_response_alg: 'ES256',
      },
      {
        client_id: DEV_CONSOLE_CLIENT_ID,
        // A web client: its redirect is Writ's own https callback (the console), which a native client may not use on localhost.
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        // RFC 8628: `writ login --device` signs a person in from a terminal.
        grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
        redirect_uris: [DEV_REDIRECT_URI, ...(options.consoleRedirectUris ?? [])],
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: keys.signing },
    cookies: { keys: keys.cookies },
    // The user's groups and e-mail address, in the ID token itself (not only from userinfo).
    claims: { openid: ['sub'], groups: ['groups'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false,
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    pkce: { required: () => true },
    // Lifetimes in seconds (set, so that oidc-provider does not note its defaults on each use).
    ttl: { AuthorizationCode: 60, Interaction: 600, Session: 8 * 3600, Grant: 8 * 3600, AccessToken: 600, IdToken: 3600 },
    // The claims request parameter (OIDC Core §5.5) lets the dev client ask for `sid` in the ID token.
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: false },
      claimsParameter: { enabled: true },
      // RFC 8628 device authorization grant, with plain pages (no external fonts or scripts).
      deviceFlow: { enabled: true, userCodeInputSource: devicePage('Enter the code your terminal shows'), userCodeConfirmSource: deviceConfirmPage, successSource: devicePage('Signed in: you may close this page and return to your terminal', false) },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, id: string) => {
      const user = users.get(id);
      if (!user) return undefined;
      return {
        accountId: user.name,
        claims: () => ({ sub: user.name, groups: [...user.groups], ...(user.email !== undefined ? { email: user.email, email_verified: true } : {}) }),
      };
    },
    renderError: (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${out.error ?? 'error'}: ${out.error_description ?? ''}\n`;
    },
  };
}

/** A device flow page: the provider's `form` (its xsrf fields included) and a submit button. */
function devicePage(message: string, withForm = true) {
  return async (ctx: { body: unknown }, form?: string) => {
    ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in</title></head><body><p>${message}</p>${withForm && form ? `${form}<button type="submit" form="op.deviceInputForm">Continue</button>` : ''}</body></html>`;
  };
}

/** RFC 8628 §3.3: the user confirms the code their device shows before signing in. */
async function deviceConfirmPage(ctx: { body: unknown }, form: string, _client: unknown, _info: unknown, userCode: string): Promise<void> {
  const code = userCode.replace(/[^A-Z0-9-]/gi, '');
  ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Confirm</title></head><body><p>Does your terminal show <code>${code}</code>?</p>${form}<button autofocus type="submit" form="op.deviceConfirmForm">Continue</button><button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">Cancel</button></body></html>`;
}

/** The interaction endpoint: a form listing the users (GET), and the login itself (POST …/login with `username`). */
async function interact(provider: OidcProvider, users: ReadonlyMap<string, DevUser>, req: IncomingMessage, res: ServerResponse, login: boolean): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') {
    // Development only: the dev client's consent is granted without asking (a native client is
    // always asked, RFC 8252 §8.6; OIDC Core §3.1.2.4 leaves to the provider how consent is had).
    const clientId = details.params.client_id;
    if ((clientId !== DEV_CLIENT_ID && clientId !== DEV_CONSOLE_CLIENT_ID) || !details.session?.accountId) throw new Error('consent is granted to the writ dev clients only');
    const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ clientId, accountId: details.session.accountId });
    if (!grant) throw new Error('the grant is gone');
    const missing = details.prompt.details?.missingOIDCScope;
    grant.addOIDCScope((Array.isArray(missing) ? missing : ['openid']).join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (!login) {
    if (req.method !== 'GET') throw new Error(`${req.method ?? ''} is not allowed here`);
    const options = [...users.keys()].map((u) => `<option>${escapeHtml(u)}</option>`).join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(
      `<!doctype html><title>writ dev sign-in</title><h1>writ dev: sign in (development only, no password)</h1>` +
        `<form method="post" action="/interaction/${escapeHtml(details.uid)}/login"><select name="username">${options}</select> <button>Sign in</button></form>`,
    );
    return;
  }
  if (req.method !== 'POST') throw new Error('the login is a POST');
  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') ?? '';
  const user = users.get(username);
  if (!user) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`login failed: no user ${JSON.stringify(username.slice(0, 64))} in the users file\n`);
    return;
  }
  if (details.prompt.name !== 'login') throw new Error(`the interaction asks for ${details.prompt.name}, not a login`);
  await provider.interactionFinished(req, res, { login: { accountId: user.name } }, { mergeWithLastSubmission: false });
}

export async function readBody(req: IncomingMessage, limit = 4096): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += (chunk as Buffer).toString('utf8');
    if (body.length > limit) throw new Error('the form is too large');
  }
  return body;
}

