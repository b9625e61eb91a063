import pino from 'pino';
import { ManualClock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import { MAINTENANCE_INTERVAL_MS, ServerRotator, type Scheduler, type ServerRotatorOptions } from './server-rotator';
import type { TlsCredentials } from './server-svid';

/** Timers that fire only when the test fires them. */
class ManualScheduler implements Scheduler {
  readonly timers: { kind: 'every' | 'after'; ms: number; fn: () => void; cancelled: boolean }[] = [];
  every(ms: number, fn: () => void) {
    return this.add('every', ms, fn);
  }
  after(ms: number, fn: () => void) {
    return this.add('after', ms, fn);
  }
  armed(kind: 'every' | 'after') {
    return this.timers.filter((t) => t.kind === kind && !t.cancelled);
  }
  private add(kind: 'every' | 'after', ms: number, fn: () => void) {
    const timer = { kind, ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => void (timer.cancelled = true);
  }
}

const bundleOf = (sequence: number) => ({ trustDomain: 'rotator.test', sequence, refreshHint: 300, x509Authorities: [], jwtAuthorities: [] }) as TrustBundle;
const credentials = (n: number, notBefore: Date) =>
  ({ svid: { spiffeId: 'spiffe://rotator.test/writ/server', serialNumber: String(n), notBefore, notAfter: new Date(notBefore.getTime() + 3600_000) }, certChainPem: `chain ${n}`, keyPem: `key ${n}` }) as unknown as TlsCredentials;
/** Lets the promise chains a fired timer started run to their end. */
const settle = () => new Promise<void>((r) => setImmediate(r));

function setup(overrides: { activatesAt?: Date; housekeeping?: ServerRotatorOptions['housekeeping'] } = {}) {
  const clock = new ManualClock('2026-01-01T00:00:00Z');
  const scheduler = new ManualScheduler();
  const state = { sequence: 1, due: false, tickChanges: false, followChanges: false, activatesAt: overrides.activatesAt, issued: 0 };
  const calls: string[] = [];
  const served: { credentials: string; sequence: number }[] = [];
  let listener: ((table: string | undefined) => void) | undefined;
  let current: TlsCredentials | undefined = credentials(0, clock.now());
  let followGate: Promise<void> = Promise.resolve();
  const authorities: ServerRotatorOptions['authorities'] = {
    get activatesAt() {
      return state.activatesAt;
    },
    tick: async () => {
      calls.push('authorities.tick');
      return state.tickChanges;
    },
    follow: async () => {
      calls.push('authorities.follow');
      await followGate;
      return state.followChanges;
    },
    rotate: async () => {
      calls.push('authorities.rotate');
      state.sequence += 1;
      state.activatesAt = new Date(clock.now().getTime() + 10_000);
      return { x509Authority: 'x', jwtAuthority: 'j', activatesAt: state.activatesAt };
    },
  };
  const rotator = new ServerRotator({
    authorities,
    svid: {
      get current() {
        return current;
      },
      dueForRenewal: () => state.due,
      issue: async () => {
        current = credentials(++state.issued, clock.now());
        return current;
      },
    },
    store: { load: async () => bundleOf(state.sequence) },
    bundle: {
      prime: (b) => void calls.push(`bundle.prime ${b.sequence}`),
      current: async () => bundleOf(state.sequence),
    },
    serve: (c, anchors) => void served.push({ credentials: c.certChainPem, sequence: anchors.sequence }),
    servedSequence: 1,
    changes: { onChange: (l) => void (listener = l) },
    housekeeping: overrides.housekeeping,
    clock,
    scheduler,
    logger: pino({ level: 'silent' }),
  });
  return {
    clock,
    scheduler,
    state,
    calls,
    served,
    rotator,
    announce: (table: string | undefined) => listener!(table),
    holdFollow: () => {
      let release!: () => void;
      followGate = new Promise((r) => (release = r));
      return release;
    },
  };
}

describe('ServerRotator: the maintenance schedule', () => {
  it('arms one maintenance tick every 30 s at start, and runs the CA step on it', async () => {
    const t = setup();
    expect(t.scheduler.armed('every')).toHaveLength(0);
    t.rotator.start();
    expect(t.scheduler.armed('every').map((x) => x.ms)).toEqual([MAINTENANCE_INTERVAL_MS]);
    t.scheduler.armed('every')[0]!.fn();
    await settle();
    expect(t.calls).toEqual(['authorities.tick']);
    expect(t.served).toEqual([]); // nothing due, the bundle unchanged
  });

  it('after the CA step changed the signing authorities, primes the bundle and serves a new server SVID', async () => {
    const t = setup();
    t.state.tickChanges = true;
    await t.rotator.tick();
    expect(t.calls).toEqual(['authorities.tick', 'bundle.prime 1']);
    expect(t.served).toEqual([{ credentials: 'chain 1', sequence: 1 }]);
  });

  it('runs housekeeping on the first tick and then only once its interval has passed on the clock', async () => {
    let runs = 0;
    const t = setup({ housekeeping: { everyMs: 600_000, run: async () => void runs++ } });
    await t.rotator.tick();
    expect(runs).toBe(1);
    t.clock.advance(599);
    await t.rotator.tick();
    expect(runs).toBe(1);
    t.clock.advance(1);
    await t.rotator.tick();
    expect(runs).toBe(2);
  });
});

describe('ServerRotator: server SVID renewal', () => {
  it('renews only when the SVID is due, serving it with the current anchors', async () => {
    const t = setup();
    expect(await t.rotator.renewIfDue()).toBe(false);
    expect(t.served).toEqual([]);
    t.state.due = true;
    t.state.sequence = 4;
    expect(await t.rotator.renewIfDue()).toBe(true);
    expect(t.served).toEqual([{ credentials: 'chain 1', sequence: 4 }]);
  });

  it('runs one renewal at a time: concurrent callers share it', async () => {
    const t = setup();
    t.state.due = true;
    const [a, b] = await Promise.all([t.rotator.renewIfDue(), t.rotator.renewIfDue()]);
    expect([a, b]).toEqual([true, true]);
    expect(t.state.issued).toBe(1);
  });

  it('refreshes the trust anchors when the bundle changed and no renewal was due', async () => {
    const t = setup();
    t.state.sequence = 2;
    await t.rotator.tick();
    expect(t.served).toEqual([{ credentials: 'chain 0', sequence: 2 }]);
    await t.rotator.tick();
    expect(t.served).toHaveLength(1); // served once per bundle change
  });
});

describe('ServerRotator: CA activation on time', () => {
  it('arms a timer for a prepared rotation within the tick period, just after its activation time', async () => {
    const t = setup({ activatesAt: new Date(Date.parse('2026-01-01T00:00:00Z') + 5_000) });
    t.rotator.start();
    const [timer] = t.scheduler.armed('after');
    expect(timer?.ms).toBe(5_000 + 20);
    t.state.tickChanges = true;
    t.state.activatesAt = undefined;
    timer!.fn();
    await settle();
    expect(t.calls).toEqual(['authorities.tick', 'bundle.prime 1']);
    expect(t.served.map((s) => s.credentials)).toEqual(['chain 1']);
  });

  it('leaves a rotation further away than the tick period to a later tick, which arms the timer as it comes nearer', async () => {
    const t = setup({ activatesAt: new Date(Date.parse('2026-01-01T00:00:00Z') + 120_000) });
    t.rotator.start();
    expect(t.scheduler.armed('after')).toHaveLength(0);
    t.clock.advance(100);
    await t.rotator.tick();
    expect(t.scheduler.armed('after').map((x) => x.ms)).toEqual([20_000 + 20]);
  });

  it('a CA rotation through this replica primes the new bundle, serves a new SVID trusting it, and schedules the activation', async () => {
    const t = setup();
    t.rotator.start();
    const result = await t.rotator.rotateCa(10);
    expect(result).toMatchObject({ x509Authority: 'x', jwtAuthority: 'j', spiffeSequence: 2 });
    expect(t.calls).toEqual(['authorities.rotate', 'bundle.prime 2']);
    expect(t.served).toEqual([{ credentials: 'chain 1', sequence: 2 }]);
    expect(t.scheduler.armed('after').map((x) => x.ms)).toEqual([10_000 + 20]);
  });
});

describe('ServerRotator: following other replicas', () => {
  it('follows a change to the authorities or the bundle, and after a reconnect; ignores other tables', async () => {
    const t = setup();
    t.rotator.start();
    t.announce('lease'); // a follow would have asked the authorities synchronously
    expect(t.calls).toEqual([]);
    t.state.followChanges = true;
    t.announce('authority');
    await settle();
    expect(t.calls).toEqual(['authorities.follow', 'bundle.prime 1']);
    expect(t.served.map((s) => s.credentials)).toEqual(['chain 1']); // the server SVID now chains to the CA that signs
    t.state.followChanges = false;
    t.announce(undefined);
    await settle();
    expect(t.calls.filter((c) => c === 'authorities.follow')).toHaveLength(2);
  });

  it('changes announced while it follows are followed once more, not once each', async () => {
    const t = setup();
    t.rotator.start();
    const release = t.holdFollow();
    t.announce('bundle');
    t.announce('bundle');
    t.announce('authority');
    release();
    await settle();
    await settle();
    expect(t.calls.filter((c) => c === 'authorities.follow')).toHaveLength(2);
  });
});

describe('ServerRotator: stop', () => {
  it('disarms its timers, waits for the step in progress, then neither renews nor follows', async () => {
    const t = setup({ activatesAt: new Date(Date.parse('2026-01-01T00:00:00Z') + 1_000) });
    t.rotator.start();
    const release = t.holdFollow();
    t.announce('authority');
    let stopped = false;
    const stopping = t.rotator.stop().then(() => void (stopped = true));
    await settle();
    expect(stopped).toBe(false); // the follow in progress is awaited
    release();
    await stopping;
    expect(t.scheduler.timers.every((x) => x.cancelled)).toBe(true);
    t.state.due = true;
    expect(await t.rotator.renewIfDue()).toBe(false);
    t.announce('authority'); // a follow would have asked the authorities synchronously
    expect(t.calls.filter((c) => c === 'authorities.follow')).toHaveLength(1);
  });
});
