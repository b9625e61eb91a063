/**
 * `writ dev id-token <user>`: a real OpenID Connect authorization code flow with PKCE (OIDC
 * Core §3.1, RFC 7636) against `writ dev`'s provider, as the `writ-dev` public client. The
 * authorization request leads to the provider's login interaction, which takes the user name;
 * the redirect to the client's loopback URI carries the code (never followed: nothing listens
 * there), and the token endpoint exchanges it, with the verifier, for the ID token. The ID
 * token is checked as a relying party must (OIDC Core §3.1.3.7: signature, iss, aud, nonce).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { DEV_CLAIMS_REQUEST, DEV_CLIENT_ID, DEV_REDIRECT_URI, DEV_SCOPE } from './op';

export interface IdTokenRequest {
  /** The provider's issuer, e.g. http://127.0.0.1:9400. */
  readonly issuer: string;
  readonly username: string;
  /** The client the token is for: the dev client (subject tokens, by default) or the console client (people signing in to Writ). */
  readonly clientId?: string;
  readonly fetch?: typeof fetch;
}

/** A failure of the flow, in one line. */
export class IdTokenFlowError extends Error {}

/** Cookies by name, as a browser would keep them for one host (paths ignored: names are distinct). */
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  /** RFC 6265 §5.2: name=value first; an expiry in the past or Max-Age ≤ 0 deletes the cookie. */
  store(setCookies: readonly string[], now = Date.now()): void {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k = '', v = ''] = a.split('=').map((s) => s.trim());
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) <= now;
        return false;
      });
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  get size(): number {
    return this.#cookies.size;
  }
}

/** RFC 7636 §4.1, §4.2: a verifier of 43 characters and its S256 challenge. */
export function pkcePair(random: (n: number) => Uint8Array = (n) => randomBytes(n)): { verifier: string; challenge: string } {
  const verifier = Buffer.from(random(32)).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
}

/** OIDC Discovery §4: the provider's metadata, whose `issuer` must be the one asked for. */
export async function discover(issuer: string, fetchImpl: typeof fetch = fetch): Promise<Discovery> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let res: Response;
  try {
    res = await fetchImpl(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new IdTokenFlowError(`cannot reach the dev OpenID Provider at ${issuer} (is writ dev running? set WRIT_DEV_OP or --op): ${(err as Error).message}`);
  }
  if (!res.ok) throw new IdTokenFlowError(`${url} answered HTTP ${res.status}`);
  const meta = (await res.json()) as Discovery;
  if (meta.issuer !== issuer.replace(/\/$/, '')) throw new IdTokenFlowError(`${url} names the issuer ${JSON.stringify(meta.issuer)}, not ${issuer} (OIDC Discovery §4.3)`);
  return meta;
}

/** Runs the flow for `username`; resolves with the verified ID token. */
export async function fetchIdToken(request: IdTokenRequest): Promise<string> {
  const fetchImpl = request.fetch ?? fetch;
  const clientId = request.clientId ?? DEV_CLIENT_ID;
  const meta = await discover(request.issuer, fetchImpl);
  const jar = new CookieJar();
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(16).toString('base64url');
  const nonce = randomBytes(16).toString('base64url');
  const authorize = new URL(meta.authorization_endpoint);
  authorize.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: DEV_REDIRECT_URI,
    scope: DEV_SCOPE,
    claims: DEV_CLAIMS_REQUEST,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();

  const call = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const res = await fetchImpl(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(5000), headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } });
    jar.store(res.headers.getSetCookie());
    return res;
  };
  /** Follows the provider's redirects until the client's redirect URI (the code) or the login page. */
  const follow = async (first: Response, from: string): Promise<{ callback: URL } | { login: string }> => {
    let res = first;
    let url = from;
    for (let hops = 0; hops < 10; hops++) {
      if (res.status >= 300 && res.status < 400) {
        const location = new URL(res.headers.get('location') ?? '', url);
        await res.body?.cancel();
        if (location.href.startsWith(DEV_REDIRECT_URI)) return { callback: location };
        if (location.origin !== new URL(request.issuer).origin) throw new IdTokenFlowError(`the provider redirected to ${location.origin}, not itself`);
        url = location.href;
        res = await call(url);
        continue;
      }
      const login = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(url).pathname);
      const text = await res.text();
      if (res.status === 200 && login) return { login: login[1]! };
      throw new IdTokenFlowError(`${new URL(url).pathname} answered HTTP ${res.status}: ${text.trim().slice(0, 200)}`);
    }
    throw new IdTokenFlowError('too many redirects');
  };

  let step = await follow(await call(authorize.href), authorize.href);
  if ('login' in step) {
    const loginUrl = new URL(`/interaction/${step.login}/login`, request.issuer).href;
    const res = await call(loginUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: request.username }).toString() });
    if (res.status === 400) throw new IdTokenFlowError((await res.text()).trim());
    step = await follow(res, loginUrl);
  }
  if (!('callback' in step)) throw new IdTokenFlowError('the provider asked for a second login');
  const params = step.callback.searchParams;
  // RFC 6749 §4.1.2.1 errors; §10.12 state; RFC 9207 iss.
  if (params.get('error')) throw new IdTokenFlowError(`the provider refused: ${params.get('error')}: ${params.get('error_description') ?? ''}`);
  if (params.get('state') !== state) throw new IdTokenFlowError('the redirect carries another state (RFC 6749 §10.12)');
  if (params.has('iss') && params.get('iss') !== meta.issuer) throw new IdTokenFlowError('the redirect names another issuer (RFC 9207 §2.4)');
  const code = params.get('code');
  if (!code) throw new IdTokenFlowError('the redirect carries no code');

  const tokenRes = await fetchImpl(meta.token_endpoint, {
    method: 'POST',
    signal: AbortSignal.timeout(5000),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: DEV_REDIRECT_URI, client_id: clientId, code_verifier: verifier }).toString(),
  });
  const body = (await tokenRes.json().catch(() => ({}))) as { id_token?: string; error?: string; error_description?: string };
  if (!tokenRes.ok || typeof body.id_token !== 'string') throw new IdTokenFlowError(`the token endpoint answered HTTP ${tokenRes.status}: ${body.error ?? ''} ${body.error_description ?? ''}`.trim());

  const keys = createRemoteJWKSet(new URL(meta.jwks_uri));
  try {
    const { payload } = await jwtVerify(body.id_token, keys, { issuer: meta.issuer, audience: clientId, algorithms: ['ES256'] });
    if (payload.nonce !== nonce) throw new IdTokenFlowError('the ID token carries another nonce (OIDC Core §3.1.3.7)');
    if (typeof payload.sid !== 'string') throw new IdTokenFlowError('the ID token carries no sid');
  } catch (err) {
    if (err instanceof IdTokenFlowError) throw err;
    throw new IdTokenFlowError(`the ID token does not verify: ${(err as Error).message}`);
  }
  return body.id_token;
}

/**
 * Plays the person of a device authorization grant (RFC 8628 §3.3) at the dev provider: opens
 * the verification URI with the user code, confirms it, and signs in as `username`.
 */
export async function approveDeviceCode(request: { issuer: string; userCode: string; username: string; fetch?: typeof fetch }): Promise<void> {
  const fetchImpl = request.fetch ?? fetch;
  const jar = new CookieJar();
  const call = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const res = await fetchImpl(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(5000), headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } });
    jar.store(res.headers.getSetCookie());
    return res;
  };
  /** The hidden fields of the page's form (`id`, or the first), as a browser would submit them. */
  const form = (html: string, id?: string): Record<string, string> => {
    const block = (id === undefined ? /<form[^>]*>([\s\S]*?)<\/form>/ : new RegExp(`<form[^>]*id="${id.replace('.', '\\.')}"[^>]*>([\\s\\S]*?)</form>`)).exec(html)?.[1];
    if (block === undefined) throw new IdTokenFlowError(`the provider's page has no ${id ?? 'form'}`);
    return Object.fromEntries([...block.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  };
  const base = request.issuer.replace(/\/+$/, '');
  const submit = (fields: Record<string, string>) => call(`${base}/device`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
  // The verification URI with the code answers a form that submits itself (a browser runs its script), then the confirmation.
  let page = await call(`${base}/device?user_code=${encodeURIComponent(request.userCode)}`);
  page = await submit(form(await page.text()));
  page = await submit({ ...form(await page.text(), 'op.deviceConfirmForm'), confirm: 'yes' });
  let url = `${base}/device`;
  for (let hops = 0; hops < 12; hops++) {
    if (page.status >= 300 && page.status < 400) {
      url = new URL(page.headers.get('location') ?? '', url).href;
      await page.body?.cancel();
      page = await call(url);
      continue;
    }
    const login = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(url).pathname);
    const text = await page.text();
    if (page.status === 200 && login) {
      url = `${base}/interaction/${login[1]}/login`;
      page = await call(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: request.username }).toString() });
      continue;
    }
    if (page.status === 200 && text.includes('Signed in')) return;
    throw new IdTokenFlowError(`${new URL(url).pathname} answered HTTP ${page.status}: ${text.trim().slice(0, 200)}`);
  }
  throw new IdTokenFlowError('too many redirects');
}
