/**
 * The token vault from an MCP server (issue 20): a tool that calls a SaaS for the user asks Writ
 * for the SaaS's access token with the task token the call came with (RFC 8693: `audience` the
 * provider, `scope` what the call needs), over this server's own mTLS. The server holds no SaaS
 * credential. When the user has not linked their account yet, {@link AccountLinkRequired}
 * carries Writ's link, and {@link linkRequiredResult} is what the tool returns: MCP 2026-07-28's
 * `input_required` with one URL-mode elicitation; the client retries the call once the user linked.
 *
 * ```ts
 * const vault = writVault({ url: `${writ}/oauth2/token`, tls: { cert, key, ca } });
 * server.registerTool('post_note', { inputSchema }, async ({ text }, ctx) => {
 *   try {
 *     const notes = await vault.token(ctx, { provider: 'notes', scope: 'notes:write' });
 *     await fetch(api, { headers: { authorization: `Bearer ${notes.accessToken}` }, … });
 *   } catch (err) {
 *     if (err instanceof AccountLinkRequired) return linkRequiredResult(err);
 *     throw err;
 *   }
 * });
 * ```
 */
import { authInfoOf, type WritAuthSource } from './identity';
import { tlsFetch, type TlsClientOptions } from './tls-fetch';

export interface WritVaultOptions {
  /** Writ's token endpoint (`POST /oauth2/token`). */
  readonly url: string;
  /** This server's own X.509-SVID (the registered resource's `spiffe_id`) and Writ's bundle. */
  readonly tls?: TlsClientOptions & Required<Pick<TlsClientOptions, 'cert' | 'key'>>;
  /** Or a fetch that presents them (tests, a proxy). */
  readonly fetch?: typeof fetch;
  /** Give up after this many milliseconds; 10000 by default. */
  readonly timeoutMs?: number;
}

/** The SaaS's access token Writ released to the task. Use it at once; never store it. */
export interface ProviderToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Seconds it may be used: never beyond the task token. */
  readonly expiresIn: number;
  readonly scope: string;
}

/** The user has not linked their account at the provider (or not for this scope): they do so at `url`. */
export class AccountLinkRequired extends Error {
  constructor(
    readonly provider: string,
    readonly url: string,
    readonly expiresIn: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'AccountLinkRequired';
  }
}

/** Writ refused the release (policy, an ended task, a revoked token): the OAuth error it answered. */
export class ProviderTokenRefused extends Error {
  constructor(
    readonly error: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderTokenRefused';
  }
}

export interface WritVault {
  /** The provider's access token for the task of the call `source` (a tool callback's `ctx`, `extra`, or the `AuthInfo`) came with. */
  token(source: WritAuthSource, request: { provider: string; scope: string }): Promise<ProviderToken>;
}

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

export function writVault(options: WritVaultOptions): WritVault {
  if (!options.tls && !options.fetch) throw new Error('writVault: give tls (this server\'s SVID) or fetch');
  const fetchImpl = options.fetch ?? tlsFetch(options.tls!);
  return {
    async token(source, request) {
      const taskToken = authInfoOf(source)?.token;
      if (typeof taskToken !== 'string') throw new Error('writVault: no Writ token on this call (is writProtection in front of the handler?)');
      const res = await fetchImpl(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: taskToken, subject_token_type: ACCESS_TOKEN, audience: request.provider, scope: request.scope }).toString(),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.ok && typeof body.access_token === 'string') {
        return { accessToken: body.access_token, tokenType: String(body.token_type ?? 'Bearer'), expiresIn: Number(body.expires_in ?? 0), scope: String(body.scope ?? request.scope) };
      }
      const description = typeof body.error_description === 'string' ? body.error_description : `HTTP ${res.status}`;
      if (body.error === 'interaction_required' && typeof body.link_uri === 'string') {
        throw new AccountLinkRequired(request.provider, body.link_uri, typeof body.link_expires_in === 'number' ? body.link_expires_in : undefined, description);
      }
      throw new ProviderTokenRefused(typeof body.error === 'string' ? body.error : 'server_error', description);
    },
  };
}

/**
 * What a tool returns when the user must link their account first (MCP 2026-07-28, SEP-2322
 * `input_required` with a URL-mode elicitation, SEP-1036): the client shows the link, and retries
 * the call once the user linked. The same shape as the SDK's `inputRequired(…elicitUrl)`.
 */
export function linkRequiredResult(err: AccountLinkRequired): { resultType: 'input_required'; inputRequests: Record<string, { method: 'elicitation/create'; params: { mode: 'url'; message: string; url: string } }> } {
  return {
    resultType: 'input_required',
    inputRequests: {
      'writ-link': { method: 'elicitation/create', params: { mode: 'url', message: `Link your ${err.provider} account for this agent (Writ keeps the grant; the agent never sees it), then try again.`, url: err.url } },
    },
  };
}
