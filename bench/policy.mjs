/**
 * `measurePolicy(options)`: request-time Cedar decisions per second on one core, in this
 * process, with the built engine (dist/policy, schema and policies pre-parsed once):
 *
 * - `policy_decide`: every request is new to the engine (a distinct user each time), so each
 *   is a Cedar evaluation (`statefulIsAuthorized` with request validation);
 * - `policy_decide_cached`: the same few requests again, answered from the engine's decision cache.
 *
 * Each figure is `{ per_s, p50_us, p99_us, count, denied }`; a decision that is not the one
 * expected (an error, or a deny where the policy permits) counts in `errors`.
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);

/** The percentile `p` of `values` (microseconds), rounded to 0.1. */
const pct = (values, p) => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] * 10) / 10;
};

/**
 * @param {{ distPolicy: string, policies: string, durationSeconds: number, tools: { name: string, classification: string }[], log?: (m: string) => void }} options
 *   `distPolicy`: the built module (dist/policy/index.js); `policies`: the Cedar text to decide with.
 */
export function measurePolicy({ distPolicy, policies, durationSeconds, tools, log = () => undefined }) {
  const { PolicyEngine } = require(distPolicy);
  const engine = PolicyEngine.create(policies, 'bench');
  const connector = { spiffeId: 'spiffe://bench.test/agent/assistant', owner: 'platform', trustDomain: 'bench.test' };
  const request = (i) => {
    const tool = tools[i % tools.length];
    return {
      kind: 'action',
      action: 'read',
      user: { sub: `policy-user-${i}`, iss: 'https://idp.bench.test', groups: [`g${i % 10}`], risk: 'low' },
      connector,
      server: 'https://mcp.bench.test/tools',
      tool,
      classification: tool.classification,
      chainDepth: 0,
      taskId: `task-${i}`,
    };
  };
  // What the bench policy says (reads up to internal, level ≤ 1, for a low-risk user): each decision is checked.
  const expected = (r) => r.classification !== 'confidential';
  const run = (name, requestOf) => {
    const latencies = [];
    let errors = 0;
    let denied = 0;
    const until = performance.now() + durationSeconds * 1000;
    let i = 0;
    const started = performance.now();
    while (performance.now() < until) {
      const r = requestOf(i++);
      const t0 = performance.now();
      const d = engine.decide(r);
      latencies.push((performance.now() - t0) * 1000);
      if (!d.allowed) denied++;
      if (d.errors.length > 0 || d.allowed !== expected(r)) errors++;
    }
    const seconds = (performance.now() - started) / 1000;
    const result = { per_s: Math.round(latencies.length / seconds), p50_us: pct(latencies, 50), p99_us: pct(latencies, 99), count: latencies.length, denied, errors };
    log(`${name}: ${JSON.stringify(result)}`);
    return result;
  };
  // Warm the WebAssembly module and the JIT on requests neither measurement uses.
  for (let i = 0; i < 200; i++) engine.decide(request(2e9 + i));
  const uncached = run('policy_decide', (i) => request(i));
  const few = Array.from({ length: 20 }, (_, k) => request(1e9 + k));
  for (const r of few) engine.decide(r);
  const cached = run('policy_decide_cached', (i) => few[i % few.length]);
  return { policy_decide: uncached, policy_decide_cached: cached };
}
