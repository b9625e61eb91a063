import { AggregatorRegistry } from 'prom-client';
import { PrometheusMetrics } from './prometheus';

const sample = async (m: PrometheusMetrics, name: string) => (await m.registry.getSingleMetric(name)!.get()).values;

describe('PrometheusMetrics', () => {
  it('labels an attestor only when the broker has it: a caller cannot mint label values', async () => {
    const m = new PrometheusMetrics();
    m.knowAttestors(['join_token', 'oidc']);
    m.attestation('oidc', 'issued');
    m.attestation('spiffe://evil/…', 'refused');
    m.attestation('x'.repeat(10_000), 'refused');
    const values = await sample(m, 'writ_attestations_total');
    expect(values.map((v) => [v.labels, v.value])).toEqual([
      [{ attestor: 'oidc', outcome: 'issued' }, 1],
      [{ attestor: 'unknown', outcome: 'refused' }, 2],
    ]);
  });

  it('counts revocations and the leases they ended by handle, and decisions by effect', async () => {
    const m = new PrometheusMetrics();
    m.revoked('user', 3);
    m.revoked('user', 0);
    m.policyDecision('action', false);
    expect((await sample(m, 'writ_revocations_total')).map((v) => v.value)).toEqual([2]);
    expect((await sample(m, 'writ_leases_revoked_total')).map((v) => v.value)).toEqual([3]);
    expect((await sample(m, 'writ_policy_decisions_total'))[0]).toMatchObject({ labels: { kind: 'action', decision: 'deny' }, value: 1 });
  });

  it('reads gauges at scrape; a database that cannot answer leaves the lease gauge empty and the scrape answering', async () => {
    const m = new PrometheusMetrics();
    let now = Date.parse('2026-12-03T00:00:00Z');
    let down = false;
    const caExpires = new Date(now + 3600_000);
    m.observe({
      now: () => now,
      activeLeases: async () => {
        if (down) throw new Error('database unreachable');
        return { 'access-token': 4, 'x509-svid': 0 };
      },
      authorities: () => ({ x509_ca: caExpires }),
      revocationFeed: () => ({ connected: true, silentForMs: 250 }),
      pool: () => ({ total: 3, idle: 1, waiting: 0 }),
    });
    expect((await sample(m, 'writ_active_leases')).map((v) => [v.labels.kind, v.value])).toEqual([['access-token', 4], ['x509-svid', 0]]);
    now += 600_000;
    expect((await sample(m, 'writ_authority_expiry_seconds'))[0]).toMatchObject({ labels: { authority: 'x509_ca' }, value: 3000 });
    expect((await sample(m, 'writ_revocation_feed_staleness_seconds'))[0]!.value).toBe(0.25);
    down = true;
    const text = await m.registry.metrics();
    expect(text).toContain('# TYPE writ_active_leases gauge');
    expect(text).not.toMatch(/^writ_active_leases\{/m);
    expect(text).toMatch(/^writ_db_pool_connections\{state="total"\} 3$/m);
  });

  it('sums workers as each metric says: counters add, a count read from the shared database does not, expiry is the soonest', async () => {
    const worker = async (leases: number, caSeconds: number, tokens: number) => {
      const m = new PrometheusMetrics();
      m.observe({ now: () => 0, activeLeases: async () => ({ 'access-token': leases }), authorities: () => ({ x509_ca: new Date(caSeconds * 1000) }) });
      for (let i = 0; i < tokens; i++) m.tokenIssued({ chained: false, binding: 'mtls' });
      return m.registry.getMetricsAsJSON();
    };
    const sum = AggregatorRegistry.aggregate([await worker(7, 100, 2), await worker(7, 90, 3)]);
    const text = await sum.metrics();
    expect(text).toMatch(/^writ_tokens_issued_total\{chained="false",binding="mtls"\} 5$/m);
    expect(text).toMatch(/^writ_active_leases\{kind="access-token"\} 7$/m);
    expect(text).toMatch(/^writ_authority_expiry_seconds\{authority="x509_ca"\} 90$/m);
  });
});
