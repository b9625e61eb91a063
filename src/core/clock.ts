/** Time, injected so that expiry and rotation are testable without sleeping. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that moves only when told to. For tests. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start: Date | string | number = Date.now()) {
    this.#now = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.#now);
  }
  advance(seconds: number): void {
    this.#now += seconds * 1000;
  }
  set(at: Date | string | number): void {
    this.#now = new Date(at).getTime();
  }
}
