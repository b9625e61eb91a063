/**
 * Step 4 of `writProtection`: asking Writ whether a token is still active (RFC 7662), so that
 * revocation and task end take effect within a second at the resource server.
 *
 * An "active" answer is reused for the same token for at most {@link MAX_INTROSPECTION_CACHE_MS}
 * (1 s; `cacheMs`, 0 asks on every request), measured from when the question was sent. An
 * older answer is never used: when Writ cannot be asked then, the request is refused with 503
 * (fail closed). "Inactive" answers are not kept (Writ also answers inactive when it cannot
 * look the lease up), and concurrent requests with one token share one question, while it was
 * sent less than `cacheMs` before.
 */
import type { Clock } from '../core/clock';
import { InvalidToken, OAuthError, TemporarilyUnavailable } from '../tokens/errors';
import type { AccessTokenClaims } from '../tokens/access-token';
import { tlsFetch, type TlsClientOptions } from './tls-fetch';

export interface IntrospectionOptions {
  /** Writ's `POST /oauth2/introspect` (RFC 7662 §2). */
  readonly url: string;
  /** This server's own X.509-SVID (the registered resource's `spiffe_id`) and Writ's bundle: the introspection caller authenticates by mTLS. */
  readonly tls: TlsClientOptions & Required<Pick<TlsClientOptions, 'cert' | 'key'>>;
  /** Give up (503, fail closed) after this many milliseconds; 5000 by default. */
  readonly timeoutMs?: number;
  /**
   * How long Writ's "active" answer for a token is reused, in milliseconds: 1000 by default and
   * at most 1000, so that a revoked token or an ended task is refused within a second; 0 asks
   * Writ on every request. Settable only toward stricter: a larger value is a configuration error.
   */
  readonly cacheMs?: number;
}

/** Revocation takes effect within this many milliseconds at most. */
export const MAX_INTROSPECTION_CACHE_MS = 1000;
const DEFAULT_TIMEOUT_MS = 5000;
/** Tokens whose answers are kept; the oldest go first. */
const CACHE_ENTRIES = 10_000;

/** Resolves when Writ says the token is active; throws {@link InvalidToken} (401) or {@link TemporarilyUnavailable} (503). */
export type Introspect = (token: string, claims: AccessTokenClaims) => Promise<void>;

/** Builds the introspection step for the resource `resource`. Throws at once on a bad `url` or `cacheMs`. */
export function introspector(options: IntrospectionOptions, deps: { resource: string; clock: Clock; fetch?: typeof fetch | undefined }): Introspect {
  if (!URL.canParse(options.url) || new URL(options.url).protocol !== 'https:') throw new Error('writProtection: "introspect.url" must be an https URL');
  const cacheMs = options.cacheMs ?? MAX_INTROSPECTION_CACHE_MS;
  if (!Number.isFinite(cacheMs) || cacheMs < 0 || cacheMs > MAX_INTROSPECTION_CACHE_MS)
    throw new Error(`writProtection: "introspect.cacheMs" must be between 0 and ${MAX_INTROSPECTION_CACHE_MS} (revocation must take effect within a second)`);
  const fetchImpl = deps.fetch ?? tlsFetch(options.tls, { keepAlive: true });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = () => deps.clock.now().getTime();
  /** jti → when the question that Writ answered "active" was sent. */
  const activeSince = new Map<string, number>();
  /** jti → the question in flight, and when it was sent. */
  const asking = new Map<string, { sentAt: number; question: Promise<void> }>();

  const ask = async (token: string, claims: AccessTokenClaims, sentAt = now()): Promise<void> => {
    await askWrit(fetchImpl, options.url, timeoutMs, token, claims, deps.resource);
    if (cacheMs === 0) return;
    activeSince.delete(claims.jti);
    if (activeSince.size >= CACHE_ENTRIES) activeSince.delete(activeSince.keys().next().value!);
    activeSince.set(claims.jti, sentAt);
  };

  return async (token, claims) => {
    if (cacheMs === 0) return ask(token, claims);
    const since = activeSince.get(claims.jti);
    const age = since === undefined ? Infinity : now() - since;
    if (age >= 0 && age < cacheMs) return;
    activeSince.delete(claims.jti);
    // A question in flight is shared only while its answer could still be reused when it comes.
    const inFlight = asking.get(claims.jti);
    if (inFlight && now() - inFlight.sentAt < cacheMs) return inFlight.question;
    const sentAt = now();
    const entry = { sentAt, question: ask(token, claims, sentAt).finally(() => asking.get(claims.jti) === entry && asking.delete(claims.jti)) };
    asking.set(claims.jti, entry);
    return entry.question;
  };
}

/** One RFC 7662 question: resolves when the answer is `active: true` and describes this token. */
async function askWrit(fetchImpl: typeof fetch, url: string, timeoutMs: number, token: string, claims: AccessTokenClaims, resource: string): Promise<void> {
  const unavailable = (why: string, cause?: unknown) => new TemporarilyUnavailable(`Writ cannot say whether the token is active: ${why}`, { cause });
  let answer: unknown;
  try {
    const response = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw unavailable(`introspection answered HTTP ${response.status}`);
    }
    answer = await response.json();
  } catch (err) {
    if (err instanceof OAuthError) throw err;
    throw unavailable('introspection failed', err);
  }
  if (typeof answer !== 'object' || answer === null || typeof (answer as { active?: unknown }).active !== 'boolean') throw unavailable('the introspection response has no "active" member');
  const a = answer as { active: boolean; jti?: unknown; aud?: unknown };
  // RFC 7662 §2.2: anything but active true means the token may not be used.
  if (!a.active) throw new InvalidToken('the token is no longer active: revoked, its task ended, or expired (RFC 7662 §2.2)');
  if ((a.jti !== undefined && a.jti !== claims.jti) || (a.aud !== undefined && a.aud !== resource)) throw new InvalidToken('introspection describes another token');
}
