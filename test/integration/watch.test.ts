import { randomUUID } from 'node:crypto';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Client } from 'pg';
import pino from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import { ManualClock, systemClock } from '../../src/core/clock';
import { PgRevocationWatch, Revocations } from '../../src/leases';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { testConfig } from '../support/config';

let store: TestStore;
let broker: Broker;
const logger = pino({ level: 'silent' });

/** Waits up to `ms` for `check` to hold (a bound on propagation, not a timing measurement). */
async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

const describePg = usingPostgres() ? describe : describe.skip;

describePg('revocations reach every replica at once (PostgreSQL LISTEN/NOTIFY)', () => {
  let watch: PgRevocationWatch;
  let revocations: Revocations;

  beforeAll(async () => {
    store = await createTestStore();
    broker = await startBroker(testConfig(store, { WRIT_TRUST_DOMAIN: 'watch.test' }), { logger });
    // Another replica's view, on its own connection.
    watch = await PgRevocationWatch.start(store.databaseUrl!, broker.db.prisma, { clock: systemClock, logger, retryMs: 50 });
    revocations = new Revocations(broker.db.prisma, systemClock, broker.audit.appendIn);
  });
  afterAll(async () => {
    await watch?.close();
    await broker?.shutdown();
    await store?.drop();
  });

  const lease = async () => {
    const id = randomUUID();
    await broker.db.prisma.lease.create({
      data: { id, kind: 'x509-svid', spiffeId: 'spiffe://watch.test/a', serial: `01${id.replace(/-/g, '')}`, audience: [], issuedAt: new Date(), expiresAt: new Date(Date.now() + 600_000) },
    });
    return id;
  };

  it('hears a committed revocation within a second, by jti and by serial', async () => {
    const id = await lease();
    expect(watch.isRevoked({ jti: id })).toBe(false);
    await revocations.revoke({ jti: id }, 'test');
    expect(await within(1000, () => watch.isRevoked({ jti: id }) && watch.isRevoked({ serial: `01${id.replace(/-/g, '')}` }))).toBe(true);
  });

  it('after its listener connection is killed, reconnects and reloads, so a revocation made meanwhile is not missed', async () => {
    const killer = new Client({ connectionString: store.databaseUrl });
    await killer.connect();
    await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'writ-revocation-watch' AND datname = current_database()");
    expect(await within(1000, () => !watch.current)).toBe(true);
    const missed = await lease();
    await killer.query('UPDATE lease SET revoked_at = now(), revocation_reason = $2 WHERE id = $1', [missed, 'revoked while the listener was down']);
    await killer.end();
    expect(await within(3000, () => watch.current)).toBe(true);
    expect(watch.isRevoked({ jti: missed })).toBe(true);
    const after = await lease();
    await revocations.revoke({ jti: after }, 'test');
    expect(await within(1000, () => watch.isRevoked({ jti: after }))).toBe(true);
  });

  it('a listener connection that goes silent (no error, no close) stops being trusted, then reconnects', async () => {
    // A TCP relay to PostgreSQL that can be frozen: it keeps the sockets open and forwards nothing,
    // as a NAT or firewall that dropped an idle connection would.
    const target = new URL(store.databaseUrl!);
    let frozen = false;
    const relay = createServer((inbound) => {
      const outbound = connect(Number(target.port || 5432), target.hostname);
      inbound.on('data', (d) => void (frozen || outbound.write(d)));
      outbound.on('data', (d) => void (frozen || inbound.write(d)));
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const via = new URL(store.databaseUrl!);
    via.host = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
    const silent = await PgRevocationWatch.start(via.toString(), broker.db.prisma, { clock: systemClock, logger, retryMs: 50, boundMs: 300 });
    try {
      expect(silent.current).toBe(true);
      const before = silent.generation;
      frozen = true;
      // Trusted for at most the bound after it last heard from PostgreSQL (polled in 20 ms steps).
      const frozenAt = Date.now();
      expect(await within(2000, () => !silent.current)).toBe(true);
      expect(Date.now() - frozenAt).toBeLessThan(300 + 100);
      frozen = false;
      expect(await within(3000, () => silent.current)).toBe(true);
      expect(silent.generation).toBeGreaterThan(before); // caches from before the silence are dropped
    } finally {
      await silent.close();
      relay.close();
    }
  });

  it('forgets a revocation once its lease has expired anyway', async () => {
    const clock = new ManualClock(Date.now());
    const view = await PgRevocationWatch.start(store.databaseUrl!, broker.db.prisma, { clock, logger });
    try {
      const id = await lease();
      await revocations.revoke({ jti: id }, 'test');
      expect(await within(1000, () => view.isRevoked({ jti: id }))).toBe(true);
      clock.advance(601);
      view.prune();
      expect(view.isRevoked({ jti: id })).toBe(false);
    } finally {
      await view.close();
    }
  });

  it('the broker recovers its own listener by itself, without a restart', async () => {
    const killer = new Client({ connectionString: store.databaseUrl });
    await killer.connect();
    await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'writ-revocation-watch' AND datname = current_database()");
    await killer.end();
    expect(await within(5000, async () => (await fetch(`${broker.opsUrl}/readyz`)).status === 200)).toBe(true);
  });
});
