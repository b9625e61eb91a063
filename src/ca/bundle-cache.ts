import type { Logger } from 'pino';
import type { Clock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import type { BundleStore } from './bundle-store';

/**
 * The bundle as served: read from the database (shared by all replicas) at most once
 * per `maxAgeSeconds`. When a reload fails the last bundle read is served: a bundle
 * is public, and consumers already tolerate staleness up to spiffe_refresh_hint.
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

  async current(): Promise<TrustBundle> {
    const fresh = this.#bundle && this.opts.clock.now().getTime() - this.#loadedAt < this.opts.maxAgeSeconds * 1000;
    if (fresh) return this.#bundle!;
    this.#loading ??= this.store
      .load()
      .then((b) => {
        this.prime(b);
        return b;
      })
      .catch((err: Error) => {
        if (!this.#bundle) throw err;
        this.opts.logger.warn({ err: { message: err.message } }, 'bundle reload failed; serving the last bundle read');
        return this.#bundle;
      })
      .finally(() => {
        this.#loading = undefined;
      });
    return this.#loading;
  }
}
