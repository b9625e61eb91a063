import { Alarm, fresh, type Clock, type Timers } from './time';

/** A clock and timers the test moves; records every delay asked for. */
class Manual implements Clock, Timers {
  at = 0;
  readonly delays: number[] = [];
  readonly #timers = new Map<number, { due: number; callback: () => void }>();
  #seq = 0;
  now(): Date {
    return new Date(this.at);
  }
  setTimeout(callback: () => void, delayMs: number): unknown {
    this.delays.push(delayMs);
    this.#timers.set(++this.#seq, { due: this.at + delayMs, callback });
    return this.#seq;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get waiting(): number {
    return this.#timers.size;
  }
  /** Moves to `to`, firing due timers in order. */
  advanceTo(to: number): void {
    for (;;) {
      const next = [...this.#timers.entries()].filter(([, t]) => t.due <= to).sort((a, b) => a[1].due - b[1].due)[0];
      if (!next) break;
      this.#timers.delete(next[0]);
      this.at = Math.max(this.at, next[1].due);
      next[1].callback();
    }
    this.at = to;
  }
}

describe('Alarm: a task at a moment of the injected clock', () => {
  it('runs once the clock reaches the moment, not before, and only once', () => {
    const t = new Manual();
    const alarm = new Alarm(t, t);
    let ran = 0;
    alarm.at(1000, () => ran++);
    expect(alarm.armed).toBe(true);
    t.advanceTo(999);
    expect(ran).toBe(0);
    t.advanceTo(1000);
    expect(ran).toBe(1);
    expect(alarm.armed).toBe(false);
    t.advanceTo(5000);
    expect(ran).toBe(1);
  });

  it('a moment already past runs at the next turn of the timers (delay 0), not synchronously', () => {
    const t = new Manual();
    t.at = 2000;
    const alarm = new Alarm(t, t);
    let ran = false;
    alarm.at(1000, () => (ran = true));
    expect(ran).toBe(false);
    expect(t.delays).toEqual([0]);
    t.advanceTo(2000);
    expect(ran).toBe(true);
  });

  it('rescheduling replaces the previous task; cancel stops it', () => {
    const t = new Manual();
    const alarm = new Alarm(t, t);
    const ran: string[] = [];
    alarm.at(1000, () => ran.push('first'));
    alarm.at(3000, () => ran.push('second'));
    expect(t.waiting).toBe(1);
    t.advanceTo(2000);
    expect(ran).toEqual([]);
    t.advanceTo(3000);
    expect(ran).toEqual(['second']);
    alarm.after(500, () => ran.push('third'));
    alarm.cancel();
    expect(alarm.armed).toBe(false);
    expect(t.waiting).toBe(0);
    t.advanceTo(10_000);
    expect(ran).toEqual(['second']);
  });

  it('waits longer than setTimeout can (2^31-1 ms) in steps, running only when the clock reads the moment', () => {
    const t = new Manual();
    const alarm = new Alarm(t, t);
    const max = 2 ** 31 - 1;
    const at = 3 * max + 5;
    let ran = false;
    alarm.at(at, () => (ran = true));
    expect(t.delays).toEqual([max]);
    t.advanceTo(max);
    expect(ran).toBe(false);
    expect(alarm.armed).toBe(true);
    t.advanceTo(at - 1);
    expect(ran).toBe(false);
    t.advanceTo(at);
    expect(ran).toBe(true);
    expect(t.delays.every((d) => d <= max)).toBe(true);
  });
});

describe('fresh: a cached token is used while more than half its life and more than 30 s are left', () => {
  const token = (lifeMs: number) => ({ issuedAt: new Date(0), expiresAt: new Date(lifeMs) });

  it('a 300 s token is fresh until 150 s have passed', () => {
    expect(fresh(token(300_000), 0)).toBe(true);
    expect(fresh(token(300_000), 149_999)).toBe(true);
    expect(fresh(token(300_000), 150_000)).toBe(false);
  });

  it('a 40 s token is fresh only while more than 30 s are left (the margin beats half-life)', () => {
    expect(fresh(token(40_000), 9_999)).toBe(true);
    expect(fresh(token(40_000), 10_000)).toBe(false);
  });

  it('an expired token is not fresh', () => {
    expect(fresh(token(300_000), 300_000)).toBe(false);
    expect(fresh(token(300_000), 400_000)).toBe(false);
  });
});
