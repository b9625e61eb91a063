/**
 * Zero-downtime operation with real processes on one machine: three brokers (dist/main.js)
 * on one PostgreSQL behind a Service-like client, under a steady RFC 8693 token-exchange
 * load. A drained replica (Kubernetes order: out of rotation, preStop delay, SIGTERM) fails
 * no request it took; a killed one loses no token a client received; a rolling restart
 * fails nothing.
 */
import { existsSync } from 'node:fs';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { MAIN } from '../support/process';
import { drain, HaCluster, isSocketError, kill9, latency, Load, now, Rotation, SHARED_CA, sleep, tally, type Broker, type Drained, type Killed, type Outcome } from '../support/ha';

/** Several processes on one database: PostgreSQL only (the embedded database serves one process). */
const describePg = usingPostgres() ? describe : describe.skip;
if (!usingPostgres()) test.todo('zero-downtime with real broker processes: skipped, TEST_DATABASE_URL is not set');

/** Steady load: 12 requests in flight at most, a 40 ms pause after each (≈ 150/s at most on this 2-core machine). */
const LOAD = { workers: 12, pauseMs: 40 };

const alive = (b: Broker) => b.proc.child.exitCode === null && b.proc.child.signalCode === null;
const describeOutcome = (o: Outcome) => `${o.broker}/${o.kind}: ${o.status ?? ''} ${o.errorCode ?? ''} ${o.error ?? ''}`.trim();
const log = (line: string) => process.stderr.write(`ha: ${line}\n`);

describePg('zero-downtime: three broker processes on one PostgreSQL', () => {
  let store: TestStore;
  let cluster: HaCluster;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
    store = await createTestStore();
    cluster = await HaCluster.prepare(store);
    // The first alone (it migrates and creates the CA), then the other two, as replicas roll out.
    await cluster.bootstrap();
    await cluster.start();
    await cluster.start();
    log(`shared CA: ${SHARED_CA} (clients trust the first broker's ${cluster.caSource}); started ${cluster.brokers.map((b) => `${b.name} in ${b.startMs} ms`).join(', ')}`);
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
    await store?.drop();
  });

  /** Every token received has a live, unrevoked access-token lease row, and each of `survivors` introspects it as active. */
  async function expectTokensCommittedAndActive(outcomes: Outcome[], survivors: Broker[]): Promise<number> {
    const tokens = outcomes.filter((o) => o.status === 200).map((o) => o.token!);
    const jtis = outcomes.filter((o) => o.status === 200).map((o) => o.jti!);
    expect(new Set(jtis).size).toBe(jtis.length);
    const rows = await cluster.leases(jtis);
    expect(jtis.filter((j) => !rows.has(j))).toEqual([]);
    expect([...rows.entries()].filter(([, r]) => r.kind !== 'access-token' || r.revoked || !r.live)).toEqual([]);
    const t0 = now();
    for (const b of survivors) {
      const seen = await cluster.introspect(b, tokens);
      expect({ broker: b.name, ...seen }).toEqual({ broker: b.name, active: tokens.length, inactive: [], failed: [] });
    }
    log(`${tokens.length} tokens: all have lease rows; introspected active on ${survivors.map((b) => b.name).join(', ')} in ${Math.round(now() - t0)} ms`);
    return tokens.length;
  }

  it('SIGTERM drains a replica without failing a request it took; after a SIGKILL of another, every token received has a committed lease, active on every survivor', async () => {
    const t0 = now();
    const [a, b, c] = cluster.brokers as [Broker, Broker, Broker];
    const rotation = new Rotation();
    for (const x of [a, b, c]) rotation.add(x);
    const load = new Load(cluster, rotation, LOAD);
    load.start();
    let drained: Drained, b2: Broker, killed: Killed;
    try {
      await load.served([a, b, c], 20); // steady: every replica warm and serving
      drained = await drain(load, b);
      // The Deployment replaces it; the new pod joins once ready.
      b2 = await cluster.start();
      rotation.add(b2);
      await sleep(1000);
      killed = await kill9(load, c);
      await sleep(1500);
    } finally {
      await load.stop();
    }
    const outcomes = load.outcomes;
    // The drained replica: exit 0, everything it was sent (all before SIGTERM) answered 200,
    // including requests in flight across the signal.
    expect(drained.exit).toEqual({ code: 0, signal: null });
    const toB = outcomes.filter((o) => o.broker === b.name);
    expect(toB.filter((o) => o.startedAt >= drained.termAt).map(describeOutcome)).toEqual([]);
    expect(toB.filter((o) => o.status !== 200).map(describeOutcome)).toEqual([]);
    expect(drained.slow.filter((o) => o.status !== 200 || o.endedAt <= drained.termAt).map(describeOutcome)).toEqual([]);
    expect(drained.burst.filter((o) => o.status !== 200).map(describeOutcome)).toEqual([]);

    // No request failed anywhere but at the killed replica, and there only at the socket, only once it was killed.
    expect(outcomes.filter((o) => o.broker !== c.name && o.status !== 200).map(describeOutcome)).toEqual([]);
    const failedAtC = outcomes.filter((o) => o.broker === c.name && o.status !== 200);
    expect(failedAtC.filter((o) => !isSocketError(o) || o.endedAt < killed.killAt).map(describeOutcome)).toEqual([]);
    expect(killed.exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(rotation.has(c)).toBe(false);
    for (const x of [a, b, c, b2]) expect(outcomes.some((o) => o.broker === x.name && o.status === 200)).toBe(true);

    const survivors = [a, b2];
    const tokens = await expectTokensCommittedAndActive(outcomes, survivors);
    log(
      `SIGTERM+SIGKILL: ${outcomes.length} requests (${tokens} tokens) over ${Math.round((load.stoppedAt - load.startedAt) / 1000)} s, latency ${JSON.stringify(latency(outcomes))} ms; by broker ${JSON.stringify(tally(outcomes))}; ` +
        `drain of ${b.name}: exit ${drained.exit.code} in ${drained.drainMs} ms, ${drained.inFlightAtTerm}/${drained.burst.length} burst + ${drained.slow.length} held requests in flight at SIGTERM; ` +
        `SIGKILL of ${c.name}: burst ${killed.burst.filter((o) => o.status === 200).length}/${killed.burst.length} answered, ${failedAtC.length} socket errors (${[...new Set(failedAtC.map((o) => o.errorCode))].join(', ')}); replacement ${b2.name} ready in ${b2.startMs} ms; test ${Math.round(now() - t0)} ms`,
    );
  }, 90_000);

  it('a rolling restart of all three under load fails no request that a process accepted', async () => {
    const t0 = now();
    const running = cluster.brokers.filter(alive);
    while (running.length < 3) running.push(await cluster.start());
    const rotation = new Rotation();
    for (const x of running) rotation.add(x);
    const load = new Load(cluster, rotation, LOAD);
    load.start();
    const steps: { drained: Drained; replacement: Broker }[] = [];
    try {
      await load.served(running, 20);
      for (const old of running) {
        const drained = await drain(load, old);
        expect(drained.exit).toEqual({ code: 0, signal: null });
        const replacement = await cluster.start(); // resolves once its /readyz answers 200
        rotation.add(replacement);
        steps.push({ drained, replacement });
        await sleep(800);
      }
    } finally {
      await load.stop();
    }
    const outcomes = load.outcomes;

    expect(outcomes.filter((o) => o.status !== 200).map(describeOutcome)).toEqual([]);
    for (const { drained, replacement } of steps) {
      expect(outcomes.filter((o) => o.broker === drained.broker.name && o.startedAt >= drained.termAt).map(describeOutcome)).toEqual([]);
      expect(drained.slow.filter((o) => o.status !== 200 || o.endedAt <= drained.termAt).map(describeOutcome)).toEqual([]);
      expect(outcomes.filter((o) => o.broker === replacement.name && o.kind === 'load' && o.status === 200).length).toBeGreaterThan(0);
    }
    expect(rotation.names).toEqual(steps.map((s) => s.replacement.name));

    const tokens = await expectTokensCommittedAndActive(outcomes, [steps.at(-1)!.replacement]);
    log(
      `rolling restart: ${outcomes.length} requests (${tokens} tokens, 0 failed) over ${Math.round((load.stoppedAt - load.startedAt) / 1000)} s, latency ${JSON.stringify(latency(outcomes))} ms; by broker ${JSON.stringify(tally(outcomes))}; ` +
        steps.map(({ drained: d, replacement: r }) => `${d.broker.name}→${r.name}: drained in ${d.drainMs} ms (${d.inFlightAtTerm}/${d.burst.length} burst + ${d.slow.length} held in flight), ready in ${r.startMs} ms`).join('; ') +
        `; test ${Math.round(now() - t0)} ms`,
    );
  }, 90_000);
});
