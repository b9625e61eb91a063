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
      .then((b) => {
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
