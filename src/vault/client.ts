/**
 * Writ as an OAuth client of a downstream provider, with panva's oauth4webapi (the checks of
 * RFC 6749, RFC 7636, RFC 9207 and RFC 8414 done by a library made for them): discovery, the
 * authorization request with PKCE (S256) and `state`, the callback's validation (its `state`, and
 * `iss` where the provider advertises it, RFC 9207 §2.4), the code and refresh grants, and RFC 7009
 * revocation. Plain http only for a loopback issuer (development).
 */
import { importPKCS8 } from 'jose';
import { createPrivateKey } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import type { DownstreamProvider } from './providers';
import { VaultError } from './errors';

/** What the provider answered a code or refresh grant with (RFC 6749 §5.1). */
export interface ProviderTokens {
  readonly accessToken: string;
  /** Seconds the access token lives, as the provider says; undefined when it did not. */
  readonly expiresIn: number | undefined;
  readonly refreshToken: string | undefined;
  /** The scopes granted (RFC 6749 §5.1: the requested ones when the provider does not say). */
  readonly scopes: readonly string[];
  readonly tokenType: string;
}

const TIMEOUT_MS = 10_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** One provider's endpoints and Writ's client there, its credential opened on demand. */
export class ProviderClient {
  #as: Promise<oauth.AuthorizationServer> | undefined;

  constructor(
    readonly provider: DownstreamProvider,
    private readonly credential: () => Promise<string>,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  get #options() {
    const insecure = new URL(this.provider.issuer).protocol === 'http:' && LOOPBACK.has(new URL(this.provider.issuer).hostname);
    return { signal: AbortSignal.timeout(TIMEOUT_MS), [oauth.customFetch]: this.fetchImpl, ...(insecure && { [oauth.allowInsecureRequests]: true }) };
  }

  get #client(): oauth.Client {
    return { client_id: this.provider.clientId };
  }

  /** RFC 8414 metadata, else OpenID Connect discovery; cached, and fetched again after a failure. */
  metadata(): Promise<oauth.AuthorizationServer> {
    this.#as ??= (async () => {
      const issuer = new URL(this.provider.issuer);
      for (const algorithm of ['oauth2', 'oidc'] as const) {
        try {
          return await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...this.#options, algorithm }));
        } catch (err) {
          if (algorithm === 'oidc') throw this.#failed('discovery', err);
        }
      }
      throw new Error('unreachable');
    })();
    this.#as.catch(() => (this.#as = undefined));
    return this.#as;
  }

  async #auth(): Promise<oauth.ClientAuth> {
    const secret = await this.credential();
    switch (this.provider.clientAuth) {
      case 'client_secret_basic':
        return oauth.ClientSecretBasic(secret);
      case 'client_secret_post':
        return oauth.ClientSecretPost(secret);
      case 'private_key_jwt': {
        const alg = createPrivateKey(secret).asymmetricKeyType === 'ec' ? 'ES256' : 'PS256';
        return oauth.PrivateKeyJwt({ key: (await importPKCS8(secret, alg)) as CryptoKey }); // RFC 7523 §2.2
      }
    }
  }

  /** The authorization request (RFC 6749 §4.1.1) with PKCE (RFC 7636 §4.3) and `state` (§10.12). */
  async authorizationUrl(opts: { redirectUri: string; state: string; codeVerifier: string; scopes: readonly string[] }): Promise<string> {
    const as = await this.metadata();
    if (!as.authorization_endpoint) throw new VaultError(502, 'provider-failed', `${this.provider.id} has no authorization_endpoint`);
    const url = new URL(as.authorization_endpoint);
    url.search = new URLSearchParams({
      client_id: this.provider.clientId,
      response_type: 'code',
      redirect_uri: opts.redirectUri,
      scope: opts.scopes.join(' '),
      state: opts.state,
      code_challenge: await oauth.calculatePKCECodeChallenge(opts.codeVerifier),
      code_challenge_method: 'S256',
      ...(this.provider.resource !== null && { resource: this.provider.resource }), // RFC 8707 §2.1
    }).toString();
    return url.href;
  }

  /** The callback: `state` and (RFC 9207) `iss` checked, then the code exchanged (RFC 6749 §4.1.3). */
  async redeem(callback: URLSearchParams, opts: { state: string; codeVerifier: string; redirectUri: string; scopes: readonly string[] }): Promise<ProviderTokens> {
    const as = await this.metadata();
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, this.#client, callback, opts.state);
    } catch (err) {
      throw new VaultError(400, 'link-invalid', `the provider's answer is refused: ${describe(err)}`, { cause: err });
    }
    try {
      const response = await oauth.authorizationCodeGrantRequest(as, this.#client, await this.#auth(), params, opts.redirectUri, opts.codeVerifier, { ...this.#options, ...this.#resource });
      return tokensOf(await oauth.processAuthorizationCodeResponse(as, this.#client, response), opts.scopes);
    } catch (err) {
      throw this.#failed('the code grant', err);
    }
  }

  /** RFC 6749 §6: a new access token (and perhaps a new refresh token) for `scopes` ⊆ the grant's. */
  async refresh(refreshToken: string, scopes: readonly string[]): Promise<ProviderTokens> {
    const as = await this.metadata();
    try {
      const response = await oauth.refreshTokenGrantRequest(as, this.#client, await this.#auth(), refreshToken, { ...this.#options, additionalParameters: { scope: scopes.join(' '), ...this.#resource.additionalParameters } });
      return tokensOf(await oauth.processRefreshTokenResponse(as, this.#client, response), scopes);
    } catch (err) {
      throw this.#failed('the refresh grant', err);
    }
  }

  /** RFC 7009 §2.1; false when the provider has no revocation endpoint. */
  async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<boolean> {
    const as = await this.metadata();
    if (!as.revocation_endpoint) return false;
    try {
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, this.#client, await this.#auth(), token, { ...this.#options, additionalParameters: { token_type_hint: hint } }));
      return true;
    } catch (err) {
      throw this.#failed('revocation', err);
    }
  }

  get #resource(): { additionalParameters: Record<string, string> } {
    return { additionalParameters: this.provider.resource !== null ? { resource: this.provider.resource } : {} };
  }

  #failed(what: string, err: unknown): VaultError {
    if (err instanceof VaultError) return err;
    return new VaultError(502, 'provider-failed', `${this.provider.id}: ${what} failed: ${describe(err)}`, { cause: err });
  }
}

/** The provider's own error code and description when it gave them (RFC 6749 §5.2), else the message. */
function describe(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError || err instanceof oauth.AuthorizationResponseError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`.slice(0, 300);
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}

function tokensOf(t: oauth.TokenEndpointResponse, requested: readonly string[]): ProviderTokens {
  return {
    accessToken: t.access_token,
    expiresIn: typeof t.expires_in === 'number' ? t.expires_in : undefined,
    refreshToken: t.refresh_token,
    scopes: typeof t.scope === 'string' ? t.scope.split(' ').filter(Boolean) : [...requested],
    tokenType: t.token_type,
  };
}
