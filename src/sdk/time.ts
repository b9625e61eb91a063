/**
 * Time, injected. The sources decide when to renew from a {@link Clock} and wait with
 * {@link Timers}, so that a test can move both and check renewal at half-life, backoff and
 * expiry without sleeping through real lifetimes.
 *
 * @example
 * // Production: the defaults.
 * await X509Source.create({ server, bundle, attestation });
 * // A test: a clock and timers it moves itself.
 * await X509Source.create({ server, bundle, attestation, clock: fake, timers: fake });
 */

/** The current time. */
export interface Clock {
  now(): Date;
}

/**
 * One-shot timers, in the shape of the global `setTimeout`/`clearTimeout`. A handle is whatever
 * `setTimeout` returns; the SDK only passes it back to `clearTimeout`.
 */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The system clock. */
export const systemClock: Clock = { now: () => new Date() };

/**
 * The global timers, unreferenced: a source's renewal schedule never keeps a process alive by
 * itself (a process with nothing else to do may exit; call `close()` to stop earlier).
 */
export const systemTimers: Timers = {
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** The longest delay `setTimeout` honours (about 24.8 days); longer waits are made in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** A timer that runs a task at a moment of the injected clock; rescheduling replaces the previous one. */
export class Alarm {
  #handle: unknown;
  #armed = false;

  constructor(
    private readonly clock: Clock,
    private readonly timers: Timers,
  ) {}

  /** Runs `task` once the clock reads `at` or later (at once when that has passed). */
  at(at: number, task: () => void): void {
    this.cancel();
    this.#armed = true;
    const delay = Math.max(0, at - this.clock.now().getTime());
    this.#handle = this.timers.setTimeout(() => {
      if (!this.#armed) return;
      if (this.clock.now().getTime() < at && delay >= MAX_DELAY_MS) return this.at(at, task); // a step of a long wait
      this.#armed = false;
      this.#handle = undefined;
      task();
    }, Math.min(delay, MAX_DELAY_MS));
  }

  /** Runs `task` after `delayMs` of the injected clock. */
  after(delayMs: number, task: () => void): void {
    this.at(this.clock.now().getTime() + delayMs, task);
  }

  /** Whether a task is waiting. */
  get armed(): boolean {
    return this.#armed;
  }

  cancel(): void {
    if (this.#armed) this.timers.clearTimeout(this.#handle);
    this.#armed = false;
    this.#handle = undefined;
  }
}

/** A token is used from a cache while more than this fraction of its life is left… */
const REFRESH_FRACTION = 0.5;
/** …and more than this many milliseconds. */
const REFRESH_MARGIN_MS = 30_000;

/** Whether a cached token is fresh enough to use: more than half its life, and more than 30 s, left. */
export function fresh(token: { readonly issuedAt: Date; readonly expiresAt: Date }, now: number): boolean {
  const left = token.expiresAt.getTime() - now;
  const life = token.expiresAt.getTime() - token.issuedAt.getTime();
  return left > REFRESH_MARGIN_MS && left > life * REFRESH_FRACTION;
}
