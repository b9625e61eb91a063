import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHART, Helm, NAMESPACE } from '../support/helm';
import {
  expressionsOf,
  metricNamesIn,
  monitoringExpressions,
  monitoringObjects,
  nodesOf,
  panelsOf,
  parsePromQL,
  PROMETHEUS_SERIES,
  seriesNamesIn,
  substituteGrafanaVariables,
  textOf,
} from '../support/monitoring-assets';

/**
 * The families the broker's /metrics exposes (prom-client: counters keep _total in the family
 * name), with their types, and `up`, which Prometheus makes per target. A name in a rule or a
 * panel that is not here is a typo, or a metric the broker does not have.
 */
const KNOWN_METRICS: Readonly<Record<string, 'counter' | 'gauge' | 'histogram'>> = {
  writ_http_requests_total: 'counter',
  writ_http_request_duration_seconds: 'histogram',
  writ_refusals_total: 'counter',
  writ_tokens_issued_total: 'counter',
  writ_policy_decisions_total: 'counter',
  writ_attestations_total: 'counter',
  writ_svid_renewals_total: 'counter',
  writ_jwt_svids_total: 'counter',
  writ_revocations_total: 'counter',
  writ_leases_revoked_total: 'counter',
  writ_signals_total: 'counter',
  writ_group_commit_batch_size: 'histogram',
  writ_active_leases: 'gauge',
  writ_authority_expiry_seconds: 'gauge',
  writ_revocation_feed_staleness_seconds: 'gauge',
  writ_revocation_feed_connected: 'gauge',
  writ_db_pool_connections: 'gauge',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  up: 'gauge',
};
const SEVERITIES = ['critical', 'warning', 'info'];
/** Functions a counter or a histogram's series may be read through: rates, and last_over_time (a series that is new). */
const COUNTER_FUNCTIONS = ['rate', 'increase', 'irate', 'last_over_time'];
const RATE_FUNCTIONS = ['rate', 'increase', 'irate'];
const BOTH = { 'monitoring.dashboard.enabled': true, 'monitoring.prometheusRule.enabled': true };

let helm: Helm;
beforeAll(() => {
  helm = new Helm();
});
afterAll(() => helm?.dispose());

const render = (set: Record<string, string | number | boolean | null> = {}) => helm.render({ set: { ...BOTH, ...set } });
const rulesOf = (rule: any): any[] => (rule.spec.groups as any[]).flatMap((g) => g.rules);
const alert = (set: Record<string, string | number | boolean | null>, name: string) => rulesOf(monitoringObjects(render(set)).rule).find((r) => r.alert === name);

/** The function a selector is the range argument of (through offset and parentheses), if any. */
function rangeFunctionOf(expr: string, selector: ReturnType<typeof seriesNamesIn>[number]['selector']): string | undefined {
  let n = selector.parent;
  if (n?.name !== 'MatrixSelector') return undefined;
  n = n.parent;
  while (n && (n.name === 'OffsetExpr' || n.name === 'ParenExpr')) n = n.parent;
  if (n?.name !== 'FunctionCallBody' || n.parent?.name !== 'FunctionCall') return undefined;
  return textOf(expr, n.parent.getChild('FunctionIdentifier')!);
}

describe('Helm chart: Grafana dashboard and Prometheus alerts', () => {
  it('renders neither by default, nor with only the ServiceMonitor', () => {
    for (const r of [helm.render(), helm.render({ files: ['postgresql-kek-values.yaml'] })]) {
      expect(r.all('PrometheusRule')).toEqual([]);
      expect(r.all('ConfigMap').map((c) => c.metadata.name)).toEqual(['writ']);
    }
  });

  describe('the dashboard ConfigMap', () => {
    it('carries the Grafana sidecar label and JSON Grafana loads: a stable uid, a Prometheus data source variable, core panels only', () => {
      const { configMap, dashboard } = monitoringObjects(render());
      expect(configMap!.metadata).toMatchObject({ name: 'writ-dashboard', namespace: NAMESPACE, labels: { grafana_dashboard: '1', 'app.kubernetes.io/instance': 'writ' } });
      expect(configMap!.metadata.annotations).toBeUndefined();
      expect(dashboard).toMatchObject({ uid: 'writ-broker', title: 'Writ broker', schemaVersion: 39 });
      // Provisioned, not imported: an __inputs block would leave ${DS_…} unresolved.
      expect(dashboard.__inputs).toBeUndefined();
      const ds = (dashboard.templating.list as any[]).find((v) => v.name === 'datasource');
      expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });

      const panels = panelsOf(dashboard);
      const ids = panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const p of panels) {
        expect({ title: p.title, type: p.type }).toEqual({ title: p.title, type: expect.stringMatching(/^(row|timeseries|stat)$/) });
        expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
        if (p.type === 'row') continue;
        expect({ title: p.title, datasource: p.datasource }).toEqual({ title: p.title, datasource: { type: 'prometheus', uid: '${datasource}' } });
        expect(p.targets.length).toBeGreaterThan(0);
        for (const t of p.targets) expect({ title: p.title, datasource: t.datasource }).toEqual({ title: p.title, datasource: p.datasource });
      }
      // No external links, and no panel plugins to install.
      expect(dashboard.links).toEqual([]);
      expect(configMap!.data['writ.json']).not.toMatch(/https?:\/\//);
    });

    it('takes its labels and annotations from values; the default label can be dropped', () => {
      const { configMap } = monitoringObjects(
        render({ 'monitoring.dashboard.labels.grafana_dashboard': null, 'monitoring.dashboard.labels.dashboards': 'writ', 'monitoring.dashboard.annotations.grafana_folder': 'Security' }),
      );
      expect(configMap!.metadata.labels).toMatchObject({ dashboards: 'writ' });
      expect(configMap!.metadata.labels.grafana_dashboard).toBeUndefined();
      expect(configMap!.metadata.annotations).toEqual({ grafana_folder: 'Security' });
    });

    it('shows every family the broker exposes', () => {
      const dashboardOnly = expressionsOf(render({ 'monitoring.prometheusRule.enabled': false }));
      expect(dashboardOnly.every((e) => e.source.startsWith('dashboard '))).toBe(true);
      const shown = new Set(dashboardOnly.flatMap((e) => metricNamesIn(e.expr)));
      expect(Object.keys(KNOWN_METRICS).filter((m) => !shown.has(m))).toEqual([]);
    });
  });

  describe('the PrometheusRule', () => {
    it('is a monitoring.coreos.com/v1 PrometheusRule with the ruleSelector labels from values', () => {
      const { rule } = monitoringObjects(render({ 'monitoring.prometheusRule.labels.release': 'prometheus' }));
      expect(rule).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'writ', namespace: NAMESPACE, labels: { release: 'prometheus' } } });
    });

    it('every rule alerts, for a duration, with a severity, a summary and a description whose labels its expression keeps', () => {
      const rules = rulesOf(monitoringObjects(render()).rule);
      expect(rules.length).toBeGreaterThanOrEqual(10);
      expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
      for (const r of rules) {
        expect(r).toEqual({
          alert: expect.stringMatching(/^Writ[A-Z]\w+$/),
          expr: expect.any(String),
          for: expect.stringMatching(/^[0-9]+[smh]$/),
          labels: { severity: expect.stringMatching(new RegExp(`^(${SEVERITIES.join('|')})$`)) },
          annotations: { summary: expect.any(String), description: expect.any(String) },
        });
        expect(r.annotations.description.length).toBeGreaterThan(r.annotations.summary.length);
        // Prometheus' templates came through Helm whole, and name only labels the result has:
        // those the expression groups or matches on.
        const kept = new Set(nodesOf(parsePromQL(r.expr)).filter((n) => n.name === 'GroupingLabels').flatMap((g) => g.getChildren('LabelName').map((l) => textOf(r.expr, l))));
        for (const text of Object.values(r.annotations) as string[]) {
          expect({ alert: r.alert, opened: text.split('{{').length, closed: text.split('}}').length }).toEqual({ alert: r.alert, opened: text.split('}}').length, closed: text.split('}}').length });
          for (const [, label] of text.matchAll(/\$labels\.(\w+)/g)) expect({ alert: r.alert, label, kept: kept.has(label!) }).toEqual({ alert: r.alert, label, kept: true });
        }
      }
      // What the security team pages on is there.
      const names = rules.map((r) => r.alert);
      expect(names).toEqual(
        expect.arrayContaining([
          'WritBrokerDown',
          'WritBrokerAbsent',
          'WritRevocationFeedStale',
          'WritRevocationFeedDisconnected',
          'WritAuthorityExpiringSoon',
          'WritAuthorityExpiryCritical',
          'WritTokenErrors',
          'WritInvalidClientSpike',
          'WritKillSwitchUsed',
          'WritDatabasePoolWaiting',
          'WritTokenLatencyHigh',
        ]),
      );
      expect(rules.find((r) => r.alert === 'WritRevocationFeedStale').labels.severity).toBe('critical');
      expect(rules.find((r) => r.alert === 'WritKillSwitchUsed').labels.severity).toBe('info');
    });

    it('the thresholds come from values', () => {
      const set = { expiryWarningSeconds: 1209600, expiryCriticalSeconds: 172800, revocationFeedStalenessSeconds: 12, tokenErrorRatio: 0.2, invalidClientPerSecond: 7, tokenLatencyP99Seconds: 0.75 };
      // A values file: --set leaves 0.2 a string (Helm parses only integers and booleans there).
      const file = join(mkdtempSync(join(tmpdir(), 'writ-values-')), 'values.yaml');
      writeFileSync(file, stringify({ monitoring: { prometheusRule: set } }));
      const rules = rulesOf(monitoringObjects(helm.render({ files: [file], set: BOTH })).rule);
      rmSync(join(file, '..'), { recursive: true, force: true });
      const expr = (name: string) => rules.find((r) => r.alert === name).expr.replace(/\s+/g, ' ');
      expect(expr('WritAuthorityExpiringSoon')).toMatch(/ < 1209600 >= 172800$/);
      expect(expr('WritAuthorityExpiryCritical')).toMatch(/ < 172800$/);
      expect(expr('WritRevocationFeedStale')).toMatch(/ > 12$/);
      expect(expr('WritTokenErrors')).toMatch(/ > 0\.2$/);
      expect(expr('WritInvalidClientSpike')).toMatch(/ > 7$/);
      expect(expr('WritTokenLatencyHigh')).toMatch(/ > 0\.75$/);
      expect(alert({}, 'WritBrokerAbsent').expr).toContain(`namespace="${NAMESPACE}"`);
    });

    it('refuses thresholds that could never alert, and keys the schema does not know', () => {
      const refused = (set: Record<string, string | number | boolean>, message: RegExp) => {
        const r = helm.template({ set: { ...BOTH, ...set } });
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(message) });
      };
      refused({ 'monitoring.prometheusRule.expiryCriticalSeconds': 604800 }, /expiryCriticalSeconds \(604800\) must be below expiryWarningSeconds \(604800\)/);
      // The latency histogram's last bucket is 2.5 s: histogram_quantile never answers more.
      refused({ 'monitoring.prometheusRule.tokenLatencyP99Seconds': 2.5 }, /tokenLatencyP99Seconds/);
      refused({ 'monitoring.prometheusRule.tokenErrorRatio': 2 }, /tokenErrorRatio/);
      refused({ 'monitoring.prometheusRule.expiryWarningSeconds': '7d' }, /expiryWarningSeconds/);
      refused({ 'monitoring.prometheusRule.severity': 'page' }, /additional properties 'severity' not allowed/);
      refused({ 'monitoring.dashboard.folder': 'x' }, /additional properties 'folder' not allowed/);
    });
  });

  describe('PromQL of the alerts and the dashboard', () => {
    const expressions = () => monitoringExpressions(helm);

    it('the parser refuses broken PromQL and unknown Grafana variables (the checks below can fail)', () => {
      expect(() => parsePromQL('sum(rate(writ_http_requests_total[5m])')).toThrow(/does not parse/);
      expect(() => parsePromQL('rate(writ_http_requests_total[$__rate_interval])')).toThrow(/does not parse/);
      expect(() => substituteGrafanaVariables('up{job=~"$jobb"}', ['job'])).toThrow(/\$jobb is not a variable/);
      expect(substituteGrafanaVariables('rate(x{job=~"$job", i=~"${instance}"}[$__rate_interval])', ['job', 'instance'])).toBe('rate(x{job=~".*", i=~".*"}[5m])');
      expect(metricNamesIn('histogram_quantile(0.99, sum by (le) (rate(writ_http_request_duration_seconds_bucket{route="/oauth2/token"}[5m]))) / on() group_left sum(up) + {__name__="writ_active_leases"} + sum(rate(foo_sum[1m]))')).toEqual([
        'foo',
        'up',
        'writ_active_leases',
        'writ_http_request_duration_seconds',
      ]);
      expect(metricNamesIn('sum by (route) (rate(writ_http_requests_total{route="writ_fake_total"}[5m]))')).toEqual(['writ_http_requests_total']);
    });

    it('every expression parses (lezer-promql, strict)', () => {
      const all = expressions();
      expect(all.filter((e) => e.source.startsWith('PrometheusRule')).length).toBeGreaterThanOrEqual(10);
      expect(all.filter((e) => e.source.startsWith('dashboard panel')).length).toBeGreaterThanOrEqual(20);
      expect(all.filter((e) => e.source.startsWith('dashboard variable')).length).toBe(3);
      for (const { source, expr } of all) expect({ source, parses: (() => (parsePromQL(expr), true))() }).toEqual({ source, parses: true });
    });

    it('every metric is one the broker exposes, or up', () => {
      for (const { source, expr } of expressions()) {
        const names = metricNamesIn(expr);
        expect({ source, some: names.length > 0 }).toEqual({ source, some: true });
        expect({ source, unknown: names.filter((n) => !(n in KNOWN_METRICS)) }).toEqual({ source, unknown: [] });
      }
      expect(PROMETHEUS_SERIES.every((n) => n in KNOWN_METRICS)).toBe(true);
    });

    it('counters and histograms are read through rate() or increase(), gauges never; histogram_quantile keeps le', () => {
      for (const { source, expr } of expressions()) {
        for (const { name, selector } of seriesNamesIn(expr)) {
          const family = name in KNOWN_METRICS ? name : name.replace(/_(bucket|sum|count)$/, '');
          const type = KNOWN_METRICS[family];
          const fn = rangeFunctionOf(expr, selector);
          if (type === 'gauge') expect({ source, name, rated: RATE_FUNCTIONS.includes(fn ?? '') }).toEqual({ source, name, rated: false });
          else expect({ source, name, fn }).toEqual({ source, name, fn: expect.stringMatching(new RegExp(`^(${COUNTER_FUNCTIONS.join('|')})$`)) });
          if (type === 'histogram') expect({ source, name }).toEqual({ source, name: expect.stringMatching(/_(bucket|sum|count)$/) });
        }
        const tree = parsePromQL(expr);
        for (const call of nodesOf(tree).filter((n) => n.name === 'FunctionCall' && textOf(expr, n.getChild('FunctionIdentifier')!) === 'histogram_quantile')) {
          const arg = call.getChild('FunctionCallBody')!.getChild('AggregateExpr');
          const by = arg?.getChild('AggregateModifier');
          const labels = by?.getChild('GroupingLabels')?.getChildren('LabelName').map((l) => textOf(expr, l)) ?? [];
          expect({ source, by: by && textOf(expr, by.firstChild!), le: labels.includes('le') }).toEqual({ source, by: 'by', le: true });
        }
      }
    });
  });

  it('helm lint --strict passes with both enabled', () => {
    const r = helm.run(['lint', CHART, '--strict', '--namespace', NAMESPACE, '--set', 'monitoring.dashboard.enabled=true', '--set', 'monitoring.prometheusRule.enabled=true']);
    expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
  });

  // promtool (Prometheus' own rule checker and evaluator) is not an npm package: where it is on
  // PATH (Debian: apt-get install prometheus), the rules are checked and evaluated on series.
  const promtool = spawnSync('promtool', ['--version']).error ? undefined : 'promtool';
  // CI installs it (.ci/run): there, its absence is a failure, not a skip.
  if (!promtool && process.env.CI) it('promtool is installed (CI installs Debian\'s prometheus package)', () => expect(promtool).toBe('promtool'));
  (promtool ? describe : describe.skip)('the rules, evaluated by promtool', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'writ-promtool-'));
      // The annotations are checked above; without them the expected alerts are their labels alone.
      const rule = monitoringObjects(render()).rule!;
      const groups = (rule.spec.groups as any[]).map((g) => ({ ...g, rules: (g.rules as any[]).map(({ annotations: _, ...r }) => r) }));
      writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const ns = NAMESPACE;
    const at = (instance: string, job = 'writ') => `namespace="${ns}",job="${job}",instance="${instance}"`;
    const promtoolTest = (tests: unknown[]) => {
      writeFileSync(join(dir, 'test.yaml'), stringify({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }));
      const r = spawnSync(promtool!, ['test', 'rules', 'test.yaml'], { cwd: dir, encoding: 'utf8' });
      expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
    };
    const fires = (name: string, time: string, labels: Record<string, string>[]) => ({
      eval_time: time,
      alertname: name,
      exp_alerts: labels.map((l) => ({ exp_labels: l })),
    });

    it('promtool check rules accepts them', () => {
      const r = spawnSync(promtool!, ['check', 'rules', 'rules.yaml'], { cwd: dir, encoding: 'utf8' });
      expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0, out: expect.stringMatching(/SUCCESS: 11 rules found/) });
    });

    it('kill switch: the first use after a start (a new counter series) alerts, as does a later one; a counter at 0 does not', () => {
      const ks = (instance: string, job: string) => `writ_revocations_total{${at(instance, job)},handle="kill_switch"}`;
      promtoolTest([
        {
          interval: '1m',
          input_series: [
            { series: ks('a', 'new'), values: '_x20 1x30' },
            { series: ks('a', 'later'), values: '0x20 1x30' },
            { series: ks('a', 'idle'), values: '_x20 0x30' },
          ],
          alert_rule_test: [
            fires('WritKillSwitchUsed', '25m', [
              { severity: 'info', namespace: ns, job: 'new' },
              { severity: 'info', namespace: ns, job: 'later' },
            ]),
            fires('WritKillSwitchUsed', '45m', []),
          ],
        },
      ]);
    });

    it('down: a Writ target that stops answering alerts (another job does not); no Writ target at all alerts absent', () => {
      promtoolTest([
        {
          interval: '1m',
          input_series: [
            { series: `up{${at('a')}}`, values: '1x20 0x30' },
            { series: `writ_authority_expiry_seconds{${at('a')},authority="x509_ca"}`, values: '9000000x20 stale' },
            { series: `up{${at('b', 'other')}}`, values: '0x50' },
          ],
          alert_rule_test: [
            fires('WritBrokerDown', '23m', []),
            fires('WritBrokerDown', '30m', [{ severity: 'warning', namespace: ns, job: 'writ', instance: 'a' }]),
            fires('WritBrokerAbsent', '10m', []),
            fires('WritBrokerAbsent', '30m', [{ severity: 'critical', namespace: ns }]),
          ],
        },
      ]);
    });

    it('authority expiry: a warning within 7 days, critical (only) within a day', () => {
      const exp = (authority: string) => `writ_authority_expiry_seconds{${at('a')},authority="${authority}"}`;
      promtoolTest([
        {
          interval: '1m',
          input_series: [
            { series: exp('x509_ca'), values: '700000x30' },
            { series: exp('jwt_key'), values: '500000x30' },
            { series: exp('server_svid'), values: '50000x30' },
          ],
          alert_rule_test: [
            fires('WritAuthorityExpiringSoon', '20m', [{ severity: 'warning', namespace: ns, job: 'writ', authority: 'jwt_key' }]),
            fires('WritAuthorityExpiryCritical', '20m', [{ severity: 'critical', namespace: ns, job: 'writ', authority: 'server_svid' }]),
          ],
        },
      ]);
    });

    it('revocation feed: stale over 30 s or disconnected pages, per replica', () => {
      promtoolTest([
        {
          interval: '1m',
          input_series: [
            { series: `writ_revocation_feed_staleness_seconds{${at('a')}}`, values: '40x10' },
            { series: `writ_revocation_feed_staleness_seconds{${at('b')}}`, values: '10x10' },
            { series: `writ_revocation_feed_connected{${at('a')}}`, values: '0x10' },
            { series: `writ_revocation_feed_connected{${at('b')}}`, values: '1x10' },
          ],
          alert_rule_test: [
            fires('WritRevocationFeedStale', '5m', [{ severity: 'critical', namespace: ns, job: 'writ', instance: 'a' }]),
            fires('WritRevocationFeedDisconnected', '5m', [{ severity: 'critical', namespace: ns, job: 'writ', instance: 'a' }]),
          ],
        },
      ]);
    });

    it('token endpoint: 10% 5xx pages and 1% does not; p99 over 1 s warns; invalid_client at 2/s warns; pool waiting warns', () => {
      const req = (job: string, status: string) => `writ_http_requests_total{${at('a', job)},method="POST",route="/oauth2/token",status="${status}"}`;
      const bucket = (job: string, le: string) => `writ_http_request_duration_seconds_bucket{${at('a', job)},method="POST",route="/oauth2/token",status="200",le="${le}"}`;
      promtoolTest([
        {
          interval: '1m',
          input_series: [
            { series: req('failing', '200'), values: '0+90x30' },
            { series: req('failing', '503'), values: '0+10x30' },
            { series: req('fine', '200'), values: '0+99x30' },
            { series: req('fine', '503'), values: '0+1x30' },
            { series: bucket('slow', '0.5'), values: '0+0x30' },
            { series: bucket('slow', '1'), values: '0+50x30' },
            { series: bucket('slow', '2.5'), values: '0+100x30' },
            { series: bucket('slow', '+Inf'), values: '0+100x30' },
            { series: bucket('fast', '0.5'), values: '0+100x30' },
            { series: bucket('fast', '1'), values: '0+100x30' },
            { series: bucket('fast', '2.5'), values: '0+100x30' },
            { series: bucket('fast', '+Inf'), values: '0+100x30' },
            { series: `writ_refusals_total{${at('a')},route="/oauth2/token",error="invalid_client"}`, values: '0+120x30' },
            { series: `writ_refusals_total{${at('a', 'fine')},route="/oauth2/token",error="invalid_client"}`, values: '0+6x30' },
            { series: `writ_db_pool_connections{${at('a')},state="waiting"}`, values: '3x30' },
            { series: `writ_db_pool_connections{${at('b')},state="waiting"}`, values: '0x30' },
          ],
          alert_rule_test: [
            fires('WritTokenErrors', '20m', [{ severity: 'critical', namespace: ns, job: 'failing' }]),
            fires('WritTokenLatencyHigh', '20m', [{ severity: 'warning', namespace: ns, job: 'slow' }]),
            fires('WritInvalidClientSpike', '20m', [{ severity: 'warning', namespace: ns, job: 'writ' }]),
            fires('WritDatabasePoolWaiting', '20m', [{ severity: 'warning', namespace: ns, job: 'writ', instance: 'a' }]),
          ],
        },
      ]);
    });
  });
});
