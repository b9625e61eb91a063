/**
 * The ops port's /metrics against a real broker: each domain counter moves by exactly what the
 * requests did (a token issued, a policy denial, an attestation refused, a revocation, the kill
 * switch), the gauges read at scrape agree with the database and the CA, the exposition passes
 * Prometheus' own `promtool check metrics` where it is installed, and every metric family the
 * chart's alert rules and dashboard read is there.
 */
import { spawnSync } from 'node:child_process';
import { decodeJwt } from 'jose';
import { usingPostgres } from '../support/database';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { httpsRequest } from '../support/https';
import { scrape, metricFamilies, valueOf, type Sample } from '../support/metrics';
import { metricNamesIn, monitoringExpressions, PROMETHEUS_SERIES } from '../support/monitoring-assets';

const TOOLS = 'https://mcp.metrics.test/tools';
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") };
`;
/** Families only a broker on PostgreSQL has (the embedded database has no pool and no change feed). */
const POSTGRES_ONLY = ['writ_db_pool_connections', 'writ_revocation_feed_staleness_seconds', 'writ_revocation_feed_connected'];

let fx: BrokerFixture<'agent' | 'doomed'>;

const exchange = async (groups: string[]) =>
  fx.form(
    '/oauth2/token',
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await fx.idp.idToken({ groups }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: TOOLS,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]),
    },
    fx.connectors.agent,
  );

/** How much each sample moved between two scrapes. */
const delta = (before: readonly Sample[], after: readonly Sample[]) => (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-metrics-',
    trustDomain: 'metrics.test',
    policies: POLICIES,
    resources: [{ uri: TOOLS, spiffe_id: 'spiffe://metrics.test/mcp/tools', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] }],
    connectors: { agent: { spiffeId: 'spiffe://metrics.test/agent' }, doomed: { spiffeId: 'spiffe://metrics.test/doomed' } },
  });
});

afterAll(async () => {
  await fx?.close();
});

describe('/metrics of a real broker', () => {
  it('counts what the requests did, once each, by bounded labels', async () => {
    const before = (await scrape(fx.broker.opsUrl)).samples;
    // The fixture attested its connectors with join tokens.
    expect(valueOf(before, 'writ_attestations_total', { attestor: 'join_token', outcome: 'issued' })).toBe(2);

    const issued = await exchange(['eng']);
    expect(issued.status).toBe(200);
    const denied = await exchange([]);
    expect([denied.status, denied.json.error]).toEqual([400, 'access_denied']);
    const unknownAttestor = await httpsRequest(`${fx.broker.apiUrl}/v1/attest`, {
      ca: fx.caPem,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ attestor: 'spiffe://attacker/chosen-label', evidence: {}, csr: fx.connectors.agent.csr }),
    });
    expect(unknownAttestor.status).toBeGreaterThanOrEqual(400);
    const jti = decodeJwt(issued.json.access_token as string).jti!;
    const revoked = await fx.admin('/v1/admin/revocations', 'POST', { jti, reason: 'metrics test' });
    expect([revoked.status, revoked.json.revoked]).toEqual([200, 1]);
    const killed = await fx.admin(`/v1/admin/connectors/${encodeURIComponent('spiffe://metrics.test/doomed')}/disable`, 'POST', { reason: 'metrics test' });
    expect(killed.status).toBe(200);

    const after = await scrape(fx.broker.opsUrl);
    const moved = delta(before, after.samples);
    expect(moved('writ_tokens_issued_total', { chained: 'false', binding: 'mtls' })).toBe(1);
    expect(moved('writ_policy_decisions_total', { kind: 'action', decision: 'allow' })).toBe(1);
    expect(moved('writ_policy_decisions_total', { kind: 'action', decision: 'deny' })).toBe(1);
    expect(moved('writ_refusals_total', { route: '/oauth2/token', error: 'access_denied' })).toBe(1);
    // The label is the attestor only when the broker has it: a caller cannot mint label values.
    expect(moved('writ_attestations_total', { attestor: 'unknown', outcome: 'refused' })).toBe(1);
    expect(after.text).not.toContain('attacker');
    expect([moved('writ_revocations_total', { handle: 'jti' }), moved('writ_leases_revoked_total', { handle: 'jti' })]).toEqual([1, 1]);
    expect(moved('writ_revocations_total', { handle: 'kill_switch' })).toBe(1);
    expect(killed.json.leases_revoked).toBeGreaterThanOrEqual(1); // the doomed connector's SVID
    expect(moved('writ_leases_revoked_total', { handle: 'kill_switch' })).toBe(killed.json.leases_revoked);
    // Each committed lease went through a group-commit batch; the audit events through theirs.
    expect(moved('writ_group_commit_batch_size_count', { queue: 'leases' })).toBeGreaterThanOrEqual(1);
    expect(moved('writ_group_commit_batch_size_sum', { queue: 'audit' })).toBeGreaterThanOrEqual(2);
  });

  it('reads the gauges at scrape: live leases as the database counts them, and the CA\'s expiry', async () => {
    const { samples } = await scrape(fx.broker.opsUrl);
    const now = new Date();
    for (const kind of ['x509-svid', 'jwt-svid', 'access-token']) {
      const live = await fx.broker.db.prisma.lease.count({ where: { kind, revokedAt: null, expiresAt: { gt: now } } });
      expect([kind, valueOf(samples, 'writ_active_leases', { kind })]).toEqual([kind, live]);
    }
    const ca = (fx.broker.ca.certificate.notAfter.getTime() - Date.now()) / 1000;
    expect(Math.abs(valueOf(samples, 'writ_authority_expiry_seconds', { authority: 'x509_ca' }) - ca)).toBeLessThan(60);
    expect(valueOf(samples, 'writ_authority_expiry_seconds', { authority: 'server_svid' })).toBeGreaterThan(0);
    if (usingPostgres()) {
      expect(valueOf(samples, 'writ_revocation_feed_connected')).toBe(1);
      expect(valueOf(samples, 'writ_revocation_feed_staleness_seconds')).toBeLessThan(5);
      expect(valueOf(samples, 'writ_db_pool_connections', { state: 'total' })).toBeGreaterThan(0);
    }
  });

  it('has every metric family the chart\'s alert rules and dashboard read', async () => {
    const families = metricFamilies((await scrape(fx.broker.opsUrl)).text);
    const referenced = new Set(monitoringExpressions().flatMap(({ expr }) => metricNamesIn(expr)));
    expect(referenced.size).toBeGreaterThan(10);
    const missing = [...referenced].filter((name) => !families.has(name) && !PROMETHEUS_SERIES.includes(name) && (usingPostgres() || !POSTGRES_ONLY.includes(name)));
    expect(missing).toEqual([]);
  });

  const promtool = spawnSync('promtool', ['--version']).status === 0;
  // CI installs it (.ci/run): there, its absence is a failure, not a skip.
  if (!promtool && process.env.CI) it('promtool is installed (CI installs Debian\'s prometheus package)', () => expect(promtool).toBe(true));
  (promtool ? it : it.skip)('passes promtool check metrics (Prometheus\' own linter of the exposition format)', async () => {
    const { text } = await scrape(fx.broker.opsUrl);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // Exit 1 is an exposition it cannot parse; 3 is lint findings. prom-client's own Node.js gauges
    // (nodejs_active_handles_total, …) carry a _total suffix the linter flags: Writ's metrics must have none.
    expect(r.status === 0 || r.status === 3).toBe(true);
    const findings = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== '');
    expect(findings.filter((l) => !/^nodejs_\w+ /.test(l))).toEqual([]);
  });
});
