/**
 * The chart's monitoring assets as PromQL: the PrometheusRule's alert expressions and the
 * Grafana dashboard's queries, rendered by `helm template` with both enabled, and the metric
 * families each one reads, picked from the PromQL syntax tree (@prometheus-io/lezer-promql,
 * the grammar Prometheus' own UI parses with). A test that scrapes a real broker can check
 * that every family named here exists.
 */
import { parser } from '@prometheus-io/lezer-promql';
import { Helm, type K8sObject, type Rendered } from './helm';

// lezer's own types, through the parser (its @lezer/common is not a dependency of Writ's).
type Tree = ReturnType<typeof parser.parse>;
type SyntaxNode = Tree['topNode'];

/** Series Prometheus makes for every scrape target itself: never on a broker's /metrics. */
export const PROMETHEUS_SERIES: readonly string[] = ['up'];

/** What Grafana puts for its built-in interval variables when it runs a query (any valid duration will do for parsing). */
const GRAFANA_INTERVALS: Readonly<Record<string, string>> = { __rate_interval: '5m', __interval: '1m', __range: '1h' };

/** The suffixes of a histogram's (or summary's) series: the family is the name without them. */
const SERIES_SUFFIX = /_(bucket|sum|count)$/;

// Strict: a syntax error throws instead of leaving an error node in the tree.
const strict = parser.configure({ strict: true });

/** Parses PromQL, throwing with the expression and the position on a syntax error. */
export function parsePromQL(expr: string): Tree {
  try {
    return strict.parse(expr);
  } catch (e) {
    throw new Error(`PromQL does not parse (${(e as Error).message}): ${expr}`);
  }
}

/** The text of a node. */
export function textOf(expr: string, node: SyntaxNode): string {
  return expr.slice(node.from, node.to);
}

/** Every node of the tree, depth first. */
export function nodesOf(tree: Tree): SyntaxNode[] {
  const nodes: SyntaxNode[] = [];
  tree.iterate({ enter: (n) => void nodes.push(n.node) });
  return nodes;
}

/**
 * The series names an expression selects, as written (`foo_bucket` stays `foo_bucket`): the
 * identifier of each vector selector, or its `__name__="…"` / quoted-name matcher. A regex on
 * `__name__` names no metric one could check, so it throws.
 */
export function seriesNamesIn(expr: string): { name: string; selector: SyntaxNode }[] {
  const found: { name: string; selector: SyntaxNode }[] = [];
  for (const node of nodesOf(parsePromQL(expr))) {
    if (node.name !== 'VectorSelector') continue;
    const id = node.getChild('Identifier');
    if (id) {
      found.push({ name: textOf(expr, id), selector: node });
      continue;
    }
    const matchers = node.getChild('LabelMatchers');
    for (const m of matchers?.getChildren('QuotedLabelName') ?? []) found.push({ name: JSON.parse(textOf(expr, m)), selector: node });
    for (const m of matchers?.getChildren('UnquotedLabelMatcher') ?? []) {
      if (textOf(expr, m.getChild('LabelName')!) !== '__name__') continue;
      const op = textOf(expr, m.getChild('MatchOp')!);
      if (op !== '=') throw new Error(`a __name__${op} matcher names no single metric: ${expr}`);
      found.push({ name: JSON.parse(textOf(expr, m.getChild('StringLiteral')!)), selector: node });
    }
  }
  return found;
}

/** The metric families an expression reads, each once: series names with _bucket, _sum and _count taken off. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(seriesNamesIn(expr).map((s) => s.name.replace(SERIES_SUFFIX, '')))].sort();
}

/**
 * A Grafana query as Prometheus would receive it: the interval variables as durations, the
 * dashboard's own variables (`$job`, `${job}`, `[[job]]`) as `.*` (they are only used inside
 * regex matchers). A variable the dashboard does not define throws.
 */
export function substituteGrafanaVariables(query: string, variables: readonly string[]): string {
  return query.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    if (GRAFANA_INTERVALS[name]) return GRAFANA_INTERVALS[name]!;
    if (variables.includes(name)) return '.*';
    throw new Error(`${whole} is not a variable of the dashboard: ${query}`);
  });
}

/** The dashboard ConfigMap and the PrometheusRule of a rendering, and the dashboard's JSON. */
export function monitoringObjects(rendered: Rendered): { rule?: K8sObject; configMap?: K8sObject; dashboard?: any } {
  const rule = rendered.all('PrometheusRule')[0];
  const configMap = rendered.all('ConfigMap').find((o) => o.data?.['writ.json'] !== undefined);
  return { rule, configMap, dashboard: configMap && JSON.parse(configMap.data['writ.json']) };
}

/** The dashboard's panels, those inside rows included. */
export function panelsOf(dashboard: any): any[] {
  return (dashboard.panels as any[]).flatMap((p) => [p, ...((p.panels as any[] | undefined) ?? [])]);
}

/** Every PromQL expression of a rendering: alert rules, panel targets, and query variables (label_values' selector). */
export function expressionsOf(rendered: Rendered): { source: string; expr: string }[] {
  const { rule, dashboard } = monitoringObjects(rendered);
  const out: { source: string; expr: string }[] = [];
  for (const group of rule?.spec.groups ?? []) {
    for (const r of group.rules) out.push({ source: `PrometheusRule ${group.name} ${r.alert ?? r.record}`, expr: String(r.expr) });
  }
  if (dashboard) {
    const variables = (dashboard.templating.list as any[]).map((v) => v.name as string);
    for (const p of panelsOf(dashboard)) {
      for (const t of p.targets ?? []) out.push({ source: `dashboard panel "${p.title}" target ${t.refId}`, expr: substituteGrafanaVariables(t.expr, variables) });
    }
    for (const v of dashboard.templating.list as any[]) {
      if (v.type !== 'query') continue;
      const query: string = typeof v.query === 'string' ? v.query : v.query.query;
      // label_values(selector, label) and query_result(expr) wrap PromQL; label_values(label) has none.
      const m = /^\s*(?:label_values\((.*),\s*\w+\s*\)|query_result\((.*)\))\s*$/s.exec(query);
      if (!m) throw new Error(`dashboard variable ${v.name}: not a label_values(selector, label) or query_result(expr) query: ${query}`);
      out.push({ source: `dashboard variable ${v.name}`, expr: substituteGrafanaVariables((m[1] ?? m[2])!, variables) });
    }
  }
  return out;
}

/** Renders the chart with the dashboard and the PrometheusRule enabled, and returns every PromQL expression they hold. */
export function monitoringExpressions(helm?: Helm): { source: string; expr: string }[] {
  const h = helm ?? new Helm();
  try {
    return expressionsOf(h.render({ set: { 'monitoring.dashboard.enabled': true, 'monitoring.prometheusRule.enabled': true } }));
  } finally {
    if (!helm) h.dispose();
  }
}
