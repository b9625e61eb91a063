import type { Logger } from 'pino';
import type { Clock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import type { BundleStore } from './bundle-store';
import { BundleUnavailable } from './errors';

/**
 * The bundle as served: read from the database (shared by all replicas) at most once
 * per `maxAgeSeconds`. When a reload fails, the last bundle read is served for at most
 * its refresh hint (consumers tolerate that much staleness by design); after that, and
 * when nothing was ever read, the answer is BundleUnavailable (503).
 *
 * A reload that finds the same document keeps the object already served: what is remembered per
 * bundle (verified access tokens, the imported JWT keys) lives as long as the bundle does, not
 * five seconds. Any change (an authority added, retired or expired, a new sequence) is a new object.
 */
export class BundleCache {
  #bundle: TrustBundle | undefined;
  #loadedAt = 0;
  #loading: Promise<TrustBundle> | undefined;

  constructor(
    private readonly store: BundleStore,
    private readonly opts: { clock: Clock; maxAgeSeconds: number; logger: Logger },
  ) {}

  /** Seeds the cache with a bundle just written. */
  prime(bundle: TrustBundle): void {
    this.#bundle = bundle;
    this.#loadedAt = this.opts.clock.now().getTime();
  }

  private age(): number {
    return (this.opts.clock.now().getTime() - this.#loadedAt) / 1000;
  }

  async current(): Promise<TrustBundle> {
    if (this.#bundle && this.age() < this.opts.maxAgeSeconds) return this.#bundle;
    this.#loading ??= this.store
      .load()
      .then((loaded) => {
        const b = this.#bundle && sameDocument(this.#bundle, loaded) ? this.#bundle : loaded;
        this.prime(b);
        return b;
      })
      .catch((err: Error) => {
        const last = this.#bundle;
        if (!last || this.age() >= last.refreshHint) throw new BundleUnavailable('the trust bundle cannot be read now', { cause: err });
        this.opts.logger.warn({ err: { message: err.message } }, 'bundle reload failed; serving the last bundle read');
        return last;
      })
      .finally(() => {
        this.#loading = undefined;
      });
    return this.#loading;
  }
}

/** The same bundle document: trust domain, sequence, refresh hint, and every authority (SPIFFE Trust Domain and Bundle §4). */
export function sameDocument(a: TrustBundle, b: TrustBundle): boolean {
  return (
    a.trustDomain === b.trustDomain &&
    a.sequence === b.sequence &&
    a.refreshHint === b.refreshHint &&
    a.x509Authorities.length === b.x509Authorities.length &&
    a.x509Authorities.every((der, i) => Buffer.from(der).equals(Buffer.from(b.x509Authorities[i]!))) &&
    a.jwtAuthorities.length === b.jwtAuthorities.length &&
    a.jwtAuthorities.every((k, i) => k.kid === b.jwtAuthorities[i]!.kid && JSON.stringify(k.publicJwk) === JSON.stringify(b.jwtAuthorities[i]!.publicJwk))
  );
}
