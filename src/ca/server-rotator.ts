import type { Logger } from 'pino';
import type { Clock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import type { BundleCache } from './bundle-cache';
import type { BundleStore } from './bundle-store';
import type { CaRotator, PreparedRotation } from './rotator';
import type { ServerSvid, TlsCredentials } from './server-svid';

/** Timers, injected beside the Clock so that the schedule is testable without waiting. */
export interface Scheduler {
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Calls `fn` once after `ms`, unless the returned function is called first. */
  after(ms: number, fn: () => void): () => void;
}

/** Node's timers, unref'd: the schedule never keeps the process alive. */
export const systemScheduler: Scheduler = {
  every(ms, fn) {
    const t = setInterval(fn, ms).unref();
    return () => clearInterval(t);
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms).unref();
    return () => clearTimeout(t);
  },
};

/** How often the maintenance tick runs (CA rotation, server SVID renewal, housekeeping). */
export const MAINTENANCE_INTERVAL_MS = 30_000;
/** An activation timer fires this long after the activation time, so the rotator sees it as due. */
const ACTIVATION_SLACK_MS = 20;

export interface ServerRotatorOptions {
  authorities: Pick<CaRotator, 'tick' | 'follow' | 'rotate' | 'activatesAt'>;
  svid: Pick<ServerSvid, 'issue' | 'dueForRenewal' | 'current'>;
  store: Pick<BundleStore, 'load'>;
  bundle: Pick<BundleCache, 'prime' | 'current'>;
  /** Makes the TLS listener serve these credentials and trust client certificates from these anchors. */
  serve(credentials: TlsCredentials, anchors: TrustBundle): void;
  /** The bundle sequence whose anchors the listener serves now. */
  servedSequence: number;
  /** Changes other replicas announce (the table's name; undefined after a reconnect: anything may have changed). */
  changes: { onChange(listener: (table: string | undefined) => void): void };
  /** Work done on the maintenance tick at most every `everyMs` (the lease janitor's sweep), before the CA's step. */
  housekeeping?: { everyMs: number; run(): Promise<void> };
  clock: Clock;
  scheduler?: Scheduler;
  logger: Logger;
}

/**
 * Keeps what the broker serves current (SPIRE's pkg/server/svid/rotator.go, with the CA
 * manager's schedule): renews the server SVID when due or after the signing CA changed,
 * activates a prepared CA rotation on time, follows authorities another replica changed,
 * and refreshes the TLS trust anchors from the bundle. `start` arms the timers and the
 * change listener; `stop` disarms them and waits for the step in progress.
 */
export class ServerRotator {
  readonly #scheduler: Scheduler;
  #stopped = false;
  #started = false;
  #servedSequence: number;
  #renewing: Promise<boolean> | undefined;
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  #lastHousekeeping: number | undefined;
  #cancelTick: (() => void) | undefined;
  #cancelActivation: (() => void) | undefined;

  constructor(private readonly opts: ServerRotatorOptions) {
    this.#scheduler = opts.scheduler ?? systemScheduler;
    this.#servedSequence = opts.servedSequence;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.opts.changes.onChange((table) => {
      if (!this.#stopped && (table === undefined || table === 'authority' || table === 'bundle')) this.follow();
    });
    this.scheduleActivation();
    this.#cancelTick = this.#scheduler.every(MAINTENANCE_INTERVAL_MS, () => {
      this.tick().catch((err: Error) => this.opts.logger.error({ err: { message: err.message } }, 'maintenance failed (CA rotation or server SVID renewal)'));
    });
  }

  /** Disarms the timers; resolves once a step in progress (following, renewing) has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelTick?.();
    this.#cancelActivation?.();
    await this.#syncing;
    await this.#renewing?.catch(() => undefined); // a renewal in progress writes its lease first
  }

  /** Renews the server SVID now if it is due; returns whether it did. */
  renewIfDue(): Promise<boolean> {
    return this.renew(false);
  }

  /**
   * One step of the maintenance schedule: housekeeping when due, the CA's step (activate,
   * prepare, follow), then the server SVID renewal, or else the trust anchors.
   */
  async tick(): Promise<void> {
    const hk = this.opts.housekeeping;
    const now = this.opts.clock.now().getTime();
    if (hk && (this.#lastHousekeeping === undefined || now - this.#lastHousekeeping >= hk.everyMs)) {
      this.#lastHousekeeping = now;
      await hk.run();
    }
    if (await this.opts.authorities.tick()) {
      this.opts.bundle.prime(await this.opts.store.load());
      await this.renew(true); // the server SVID now chains to the new CA
    }
    this.scheduleActivation();
    if (!(await this.renewIfDue())) await this.refreshAnchors();
  }

  /** Publishes new authorities now; the listener trusts their root at once (clients may get SVIDs from it after the overlap). */
  async rotateCa(overlap?: number, requestedBy?: string): Promise<PreparedRotation & { spiffeSequence: number }> {
    const prepared = await this.opts.authorities.rotate(overlap, requestedBy);
    const fresh = await this.opts.store.load();
    this.opts.bundle.prime(fresh);
    await this.renew(true);
    this.scheduleActivation();
    return { ...prepared, spiffeSequence: fresh.sequence };
  }

  /** Renews when due (or now, after the signing CA changed) and serves the new SVID with the current anchors; one at a time. */
  private renew(force: boolean): Promise<boolean> {
    return (this.#renewing ??= (async () => {
      if (this.#stopped || !(force || this.opts.svid.dueForRenewal())) return false;
      const next = await this.opts.svid.issue();
      const anchors = await this.opts.bundle.current();
      this.opts.serve(next, anchors);
      this.#servedSequence = anchors.sequence;
      this.opts.logger.info({ spiffeId: next.svid.spiffeId, notAfter: next.svid.notAfter.toISOString() }, 'server SVID renewed');
      return true;
    })().finally(() => {
      this.#renewing = undefined;
    }));
  }

  /** Trust for client certificates follows the bundle (authorities added by a rotation elsewhere, or removed). */
  private async refreshAnchors(): Promise<void> {
    const anchors = await this.opts.bundle.current();
    const current = this.opts.svid.current;
    if (anchors.sequence !== this.#servedSequence && current) {
      this.opts.serve(current, anchors);
      this.#servedSequence = anchors.sequence;
    }
  }

  /**
   * A prepared rotation activates on time on every replica (not at the next periodic tick);
   * further than the tick period away, the tick schedules it when it comes nearer.
   */
  private scheduleActivation(): void {
    this.#cancelActivation?.();
    this.#cancelActivation = undefined;
    const at = this.opts.authorities.activatesAt;
    const delay = at ? at.getTime() - this.opts.clock.now().getTime() : Infinity;
    if (this.#stopped || !this.#started || delay > MAINTENANCE_INTERVAL_MS) return;
    this.#cancelActivation = this.#scheduler.after(Math.max(0, delay) + ACTIVATION_SLACK_MS, () => {
      this.tick().catch((err: Error) => this.opts.logger.error({ err: { message: err.message } }, 'CA activation failed'));
    });
  }

  /**
   * Another replica changed the authorities or the bundle (or the listener reconnected and
   * anything may have changed): follow now, so every replica serves and signs alike within a second.
   */
  private follow(): void {
    if (this.#syncing) {
      this.#syncAgain = true;
      return;
    }
    this.#syncing = (async () => {
      do {
        this.#syncAgain = false;
        if (await this.opts.authorities.follow()) await this.renew(true); // the server SVID now chains to the CA that signs
        this.opts.bundle.prime(await this.opts.store.load());
        await this.refreshAnchors();
        this.scheduleActivation();
      } while (this.#syncAgain && !this.#stopped);
    })()
      .catch((err: Error) => this.opts.logger.error({ err: { message: err.message } }, 'following the authorities failed; the periodic check retries'))
      .finally(() => {
        this.#syncing = undefined;
      });
  }
}
