/**
 * JSON Web Key Sets (RFC 7517 §5) that JWTs are verified with: read once
 * from a file, or fetched from an issuer's `jwks_uri` with a timeout, a size limit, a
 * cache, and a refresh on an unknown `kid` that is rate-limited per issuer.
 *
 * ```ts
 * const keys = new RemoteJwks('https://token.actions.githubusercontent.com/.well-known/jwks', { clock: systemClock });
 * await jwtVerify(token, keys.getKey, { algorithms: ['RS256'] });
 * ```
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type LocalJWKSet } from 'jose';
import type { Clock } from '../core/clock';
import { JwksUnavailable } from './errors';

/** Resolves the key that verifies a token, for jose's `jwtVerify`. */
export interface KeySource {
  getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
}


const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks that `value` is a JWK Set (RFC 7517 §5) of public signature keys and returns it.
 * Throws an Error whose message says what is wrong: no `keys` array, a member that is not a
 * JWK, a private key (`d`, RFC 7518 §6.2.2.1/§6.3.2.1) or a symmetric `oct` key.
 */
export function parseJwks(value: unknown): JSONWebKeySet {
  if (!isObject(value) || !Array.isArray(value.keys)) throw new Error('is not a JWK Set: expected an object with a "keys" array (RFC 7517 §5)');
  if (value.keys.length === 0) throw new Error('holds no keys');
  value.keys.forEach((key: unknown, i) => {
    if (!isObject(key) || typeof key.kty !== 'string') throw new Error(`keys[${i}] is not a JWK: it has no "kty" (RFC 7517 §4.1)`);
    if (key.kty === 'oct') throw new Error(`keys[${i}] is a symmetric ("oct") key; only public keys can verify tokens`);
    if ('d' in key) throw new Error(`keys[${i}] holds private key material; publish only public keys`);
  });
  return value as unknown as JSONWebKeySet;
}

/** Reads and checks a JWK Set file. Throws an Error naming the file and the reason. */
export function readJwksFile(path: string): JSONWebKeySet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    const jwks = parseJwks(json);
    createLocalJWKSet(jwks); // jose's own shape check
    return jwks;
  } catch (err) {
    throw new Error(`${path} ${(err as Error).message}`);
  }
}

/** Keys fixed for the life of the process (a `jwks_file`). */
export class StaticJwks implements KeySource {
  readonly #set: LocalJWKSet;
  constructor(jwks: JSONWebKeySet) {
    this.#set = createLocalJWKSet(jwks);
  }
  readonly getKey = (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => this.#set(header, token);
}

export interface FetchLimits {
  /** Abort the request (headers and body) after this many milliseconds. */
  readonly timeoutMs: number;
  /** Abort once the body exceeds this many bytes. */
  readonly maxBytes: number;
}

export const DEFAULT_FETCH_LIMITS: FetchLimits = { timeoutMs: 5000, maxBytes: 64 * 1024 };

/**
 * Fetches a JWK Set. Redirects are refused (the configured URL is the one trusted), a
 * non-2xx answer, a body over `maxBytes` or a request over `timeoutMs` fail; the body is
 * read incrementally so that an oversized one is never buffered whole.
 */
export async function fetchJwks(url: string, fetchImpl: typeof fetch, limits: FetchLimits = DEFAULT_FETCH_LIMITS): Promise<JSONWebKeySet> {
  const json = await fetchJson(url, fetchImpl, limits, 'the key set', 'application/jwk-set+json, application/json');
  try {
    const jwks = parseJwks(json);
    createLocalJWKSet(jwks);
    return jwks;
  } catch (err) {
    throw new JwksUnavailable(`the key set ${(err as Error).message}`, { cause: err });
  }
}

/** GETs a JSON document under the limits of {@link fetchJwks}; failures are {@link JwksUnavailable} naming `what`. */
async function fetchJson(url: string, fetchImpl: typeof fetch, limits: FetchLimits, what: string, accept: string): Promise<unknown> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let response: Response;
  try {
    response = await fetchImpl(url, { signal, redirect: 'error', headers: { accept } });
  } catch (err) {
    throw new JwksUnavailable(signal.aborted ? `no answer within ${limits.timeoutMs} ms` : 'the request failed', { cause: err });
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new JwksUnavailable(`the server answered HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limits.maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new JwksUnavailable(`${what} is larger than ${limits.maxBytes} bytes`);
  }
  const body = await readLimited(response, limits, signal, what);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (err) {
    throw new JwksUnavailable(`${what} is not valid JSON`, { cause: err });
  }
}

/**
 * Why `raw` may not be fetched for keys, or undefined: an https URL without credentials
 * (http only on a loopback host, for development).
 */
export function remoteKeyUrlProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL';
  }
  if (url.username !== '' || url.password !== '') return 'must not carry credentials';
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) return undefined;
  return 'must be an https:// URL (http:// only for 127.0.0.1 or localhost)';
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** OpenID Connect Discovery 1.0 §4: the configuration document's URL, the issuer (without a trailing "/") and the well-known path. */
export const discoveryUrl = (issuer: string): string => `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;

/**
 * Fetches an issuer's OpenID Provider Metadata (OpenID Connect Discovery 1.0 §4) and returns
 * its `jwks_uri`. The document's `issuer` must be exactly the configured one (§4.3: otherwise
 * it must not be used), and `jwks_uri` a URL keys may be fetched from.
 */
export async function discoverJwksUri(issuer: string, fetchImpl: typeof fetch, limits: FetchLimits = DEFAULT_FETCH_LIMITS): Promise<string> {
  const meta = await fetchJson(discoveryUrl(issuer), fetchImpl, limits, 'the discovery document', 'application/json');
  if (!isObject(meta)) throw new JwksUnavailable('the discovery document is not a JSON object');
  if (meta.issuer !== issuer) throw new JwksUnavailable(`the discovery document names issuer ${JSON.stringify(String(meta.issuer).slice(0, 200))}, not ${issuer} (OpenID Connect Discovery 1.0 section 4.3)`);
  if (typeof meta.jwks_uri !== 'string') throw new JwksUnavailable('the discovery document has no jwks_uri');
  const problem = remoteKeyUrlProblem(meta.jwks_uri);
  if (problem) throw new JwksUnavailable(`the discovery document's jwks_uri ${problem}`);
  return meta.jwks_uri;
}

async function readLimited(response: Response, limits: FetchLimits, signal: AbortSignal, what: string): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limits.maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new JwksUnavailable(`${what} is larger than ${limits.maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof JwksUnavailable) throw err;
    throw new JwksUnavailable(signal.aborted ? `no answer within ${limits.timeoutMs} ms` : `reading ${what} failed`, { cause: err });
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

export interface RemoteJwksOptions extends FetchLimits {
  readonly clock: Clock;
  readonly fetch: typeof fetch;
  /** At most one fetch per this many seconds, whatever tokens arrive (unknown `kid`s included). */
  readonly cooldownSeconds: number;
  /** Keys fetched longer ago than this are fetched again before use; if that fails, they are not used. */
  readonly maxAgeSeconds: number;
}

export const DEFAULT_REMOTE_JWKS: Omit<RemoteJwksOptions, 'clock' | 'fetch'> = {
  ...DEFAULT_FETCH_LIMITS,
  cooldownSeconds: 30,
  maxAgeSeconds: 600,
};

/**
 * An issuer's `jwks_uri`, fetched on first use and cached. A token whose `kid` (or
 * algorithm) matches no cached key makes it fetch again, so that key rotation at the issuer
 * works, but at most once per `cooldownSeconds`: tokens with made-up `kid`s cannot turn
 * Writ into a request amplifier against the issuer. Fetch attempts that fail count too.
 * Every failure fails closed.
 */
export class RemoteJwks implements KeySource {
  readonly #url: string;
  readonly #options: RemoteJwksOptions;
  #keys: { set: LocalJWKSet; fetchedAt: number } | undefined;
  #lastAttempt: number | undefined;
  #lastError: JwksUnavailable | undefined;
  #pending: Promise<void> | undefined;
  #fetches = 0;

  constructor(url: string, options: Partial<RemoteJwksOptions> & Pick<RemoteJwksOptions, 'clock'>) {
    this.#url = url;
    this.#options = { ...DEFAULT_REMOTE_JWKS, fetch: globalThis.fetch, ...options };
  }

  /** How many fetches this source has started. */
  get fetches(): number {
    return this.#fetches;
  }

  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const keys = await this.#current();
    try {
      return await keys.set(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || !this.#mayFetch()) throw err;
      // The issuer may have rotated its keys since the last fetch.
      const refreshed = await this.#refresh();
      return refreshed.set(header, token);
    }
  };

  /** Cached keys that are fresh enough, fetching them when there are none. */
  async #current(): Promise<{ set: LocalJWKSet; fetchedAt: number }> {
    const keys = this.#keys;
    if (keys && this.#now() - keys.fetchedAt < this.#options.maxAgeSeconds * 1000) return keys;
    if (this.#pending || this.#mayFetch()) return this.#refresh();
    // Nothing usable and the cooldown forbids another fetch yet: fail as the last attempt did.
    this.#keys = undefined;
    throw this.#lastError ?? new JwksUnavailable('the keys are stale and may not be fetched yet');
  }

  #mayFetch(): boolean {
    if (this.#lastAttempt === undefined) return true;
    const elapsed = this.#now() - this.#lastAttempt;
    return elapsed < 0 || elapsed >= this.#options.cooldownSeconds * 1000;
  }

  /** Fetches the keys (one request at a time, shared by concurrent callers). */
  async #refresh(): Promise<{ set: LocalJWKSet; fetchedAt: number }> {
    if (!this.#pending) {
      this.#lastAttempt = this.#now();
      this.#fetches += 1;
      const { fetch: fetchImpl, timeoutMs, maxBytes } = this.#options;
      this.#pending = fetchJwks(this.#url, fetchImpl, { timeoutMs, maxBytes })
        .then(
          (jwks) => {
            this.#keys = { set: createLocalJWKSet(jwks), fetchedAt: this.#now() };
            this.#lastError = undefined;
          },
          (err: unknown) => {
            this.#lastError = err instanceof JwksUnavailable ? err : new JwksUnavailable('the request failed', { cause: err });
            // Stale keys are dropped rather than trusted past their age (the issuer may have revoked one).
            if (this.#keys && this.#now() - this.#keys.fetchedAt >= this.#options.maxAgeSeconds * 1000) this.#keys = undefined;
            throw this.#lastError;
          },
        )
        .finally(() => {
          this.#pending = undefined;
        });
    }
    await this.#pending;
    if (!this.#keys) throw this.#lastError ?? new JwksUnavailable('no keys');
    return this.#keys;
  }

  #now(): number {
    return this.#options.clock.now().getTime();
  }
}

/**
 * An issuer's keys found by OpenID Connect Discovery: its `jwks_uri` is read from
 * `<issuer>/.well-known/openid-configuration` on first use, then the keys are a
 * {@link RemoteJwks} of it. A failed discovery fails closed and is tried again after the
 * cooldown (as a key fetch is); the `jwks_uri` found is kept for the life of the process.
 */
export class DiscoveredJwks implements KeySource {
  readonly #issuer: string;
  readonly #options: RemoteJwksOptions;
  #keys: RemoteJwks | undefined;
  #pending: Promise<RemoteJwks> | undefined;
  #lastAttempt: number | undefined;
  #lastError: JwksUnavailable | undefined;

  constructor(issuer: string, options: Partial<RemoteJwksOptions> & Pick<RemoteJwksOptions, 'clock'>) {
    this.#issuer = issuer;
    this.#options = { ...DEFAULT_REMOTE_JWKS, fetch: globalThis.fetch, ...options };
  }

  /** The `jwks_uri` discovery found, once it has. */
  get jwksUri(): string | undefined {
    return this.#keys ? this.#uri : undefined;
  }
  #uri: string | undefined;

  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => (await this.#source()).getKey(header, token);

  async #source(): Promise<RemoteJwks> {
    if (this.#keys) return this.#keys;
    if (!this.#pending) {
      const now = this.#options.clock.now().getTime();
      if (this.#lastAttempt !== undefined && now - this.#lastAttempt >= 0 && now - this.#lastAttempt < this.#options.cooldownSeconds * 1000) {
        throw this.#lastError ?? new JwksUnavailable('discovery failed and may not be tried again yet');
      }
      this.#lastAttempt = now;
      const { fetch: fetchImpl, timeoutMs, maxBytes } = this.#options;
      this.#pending = discoverJwksUri(this.#issuer, fetchImpl, { timeoutMs, maxBytes })
        .then(
          (uri) => {
            this.#uri = uri;
            this.#keys = new RemoteJwks(uri, this.#options);
            return this.#keys;
          },
          (err: unknown) => {
            this.#lastError = err instanceof JwksUnavailable ? err : new JwksUnavailable('discovery failed', { cause: err });
            throw this.#lastError;
          },
        )
        .finally(() => {
          this.#pending = undefined;
        });
    }
    return this.#pending;
  }
}
