import { WritProtocolError } from './errors';
import { fresh } from './time';
import { accessOf, type X509Source } from './x509-source';

/** A JWT-SVID (JWT-SVID §3): a JWS for the source's SPIFFE ID and the audiences asked for. */
export interface JwtSvid {
  /** The compact JWS, for `Authorization: Bearer`. */
  readonly token: string;
  readonly spiffeId: string;
  /** The audiences, as asked for (JWT-SVID §3.2 `aud`). */
  readonly audience: readonly string[];
  /** `iat`. */
  readonly issuedAt: Date;
  /** `exp` (JWT-SVID §3.3). */
  readonly expiresAt: Date;
}

/** Most audience sets cached at once; the least recently fetched go first. */
const MAX_CACHED = 256;

/**
 * JWT-SVIDs for the source's SPIFFE ID, fetched over mTLS with its current X.509-SVID
 * (POST /v1/jwt-svid), cached per audience set while more than half their life (and more than
 * 30 s) is left. Concurrent calls for the same audiences share one request.
 *
 * @example
 * const jwts = new JwtSource(source);
 * const { token } = await jwts.fetch(['https://mcp.example.com/github']);
 * await fetch(url, { headers: { authorization: `Bearer ${token}` } });
 */
export class JwtSource {
  readonly #source: X509Source;
  readonly #cache = new Map<string, JwtSvid>();
  readonly #inflight = new Map<string, Promise<JwtSvid>>();

  constructor(source: X509Source) {
    accessOf(source);
    this.#source = source;
  }

  /**
   * A JWT-SVID for `audience` (one or more, JWT-SVID §3.2), from the cache when fresh enough.
   * Rejects with the broker's {@link WritProblemError}, {@link WritUnavailableError},
   * {@link SvidExpiredError} when the X.509-SVID expired (cached JWT-SVIDs included), or
   * {@link SourceClosedError}.
   */
  async fetch(audience: string | readonly string[]): Promise<JwtSvid> {
    const audiences = [...new Set(typeof audience === 'string' ? [audience] : audience)].sort();
    if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a === '')) throw new TypeError('a JWT-SVID needs at least one non-empty audience (JWT-SVID §3.2)');
    const access = accessOf(this.#source);
    // Nothing is served for a source that is stale (its X.509-SVID expired unrenewed, as after a kill
    // switch), and a token of a SPIFFE ID the source no longer has (it attested again as another) is not reused.
    const key = JSON.stringify([access.material().svid.spiffeId, audiences]);
    const cached = this.#cache.get(key);
    if (cached && fresh(cached, access.clock.now().getTime())) return cached;
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#request(audiences).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    const svid = await pending;
    this.#cache.delete(key);
    this.#cache.set(key, svid);
    if (this.#cache.size > MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!);
    return svid;
  }

  /** Forgets every cached JWT-SVID. */
  clear(): void {
    this.#cache.clear();
  }

  async #request(audience: string[]): Promise<JwtSvid> {
    const access = accessOf(this.#source);
    const answer = await access.call({ method: 'POST', path: '/v1/jwt-svid', json: { audience } }, { mtls: true });
    const body = (answer.body ?? {}) as { token?: unknown; spiffe_id?: unknown; expires_at?: unknown };
    const expiresAt = typeof body.expires_at === 'string' ? new Date(body.expires_at) : new Date(NaN);
    if (typeof body.token !== 'string' || typeof body.spiffe_id !== 'string' || Number.isNaN(expiresAt.getTime())) {
      throw new WritProtocolError('the JWT-SVID answer lacks token, spiffe_id or expires_at', answer.status);
    }
    const iat = issuedAtOf(body.token);
    return { token: body.token, spiffeId: body.spiffe_id, audience, issuedAt: iat ?? access.clock.now(), expiresAt };
  }
}

/** `iat` of a compact JWS, read without verifying (the broker just issued it over TLS). */
function issuedAtOf(token: string): Date | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iat?: unknown };
    return typeof payload.iat === 'number' ? new Date(payload.iat * 1000) : undefined;
  } catch {
    return undefined;
  }
}
