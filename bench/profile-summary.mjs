#!/usr/bin/env node
/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, e.g. the broker's under `npm run bench` with
 * BENCH_BROKER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"): where the samples fall, by package
 * (node_modules/<name>, Writ's own src/<domain>, node: internals, the garbage collector, idle)
 * and by function (self time), over every profile given (a clustered broker writes one per worker).
 *
 *   node bench/profile-summary.mjs DIR-or-FILES… [--top 25]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const TOP = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
const files = args.flatMap((a) => (statSync(a).isDirectory() ? readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(a, f)) : [a]));
if (files.length === 0) {
  process.stderr.write('usage: node bench/profile-summary.mjs DIR-or-FILES… [--top N]\n');
  process.exit(2);
}

/** Where a frame's code comes from, for the by-package view. */
function packageOf({ url, functionName }) {
  if (functionName === '(garbage collector)') return '(gc)';
  if (functionName === '(idle)' || functionName === '(program)') return functionName;
  if (!url) return '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1];
  const own = /\/dist\/([^/]+)\//.exec(url) ?? /\/src\/([^/]+)\//.exec(url);
  if (own) return `writ:${own[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  if (url.startsWith('wasm://')) return '(wasm)';
  return url.split('/').slice(-2).join('/');
}

const selfByFunction = new Map();
const selfByPackage = new Map();
let totalUs = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time: each sample's time delta goes to the node it hit (timeDeltas[i] is the time before sample i).
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i]);
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (!node || us <= 0) continue;
    totalUs += us;
    const frame = node.callFrame;
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    selfByFunction.set(key, (selfByFunction.get(key) ?? 0) + us);
    const pkg = packageOf(frame);
    selfByPackage.set(pkg, (selfByPackage.get(pkg) ?? 0) + us);
  }
}

const busyUs = totalUs - (selfByPackage.get('(idle)') ?? 0);
const pct = (us, of) => `${((100 * us) / of).toFixed(1).padStart(5)} %`;
const table = (title, map) => {
  const rows = [...map].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, TOP);
  return [`${title} (share of busy time)`, ...rows.map(([k, us]) => `  ${pct(us, busyUs)}  ${k}`)].join('\n');
};
process.stdout.write(
  [
    `${files.length} profile(s), ${(totalUs / 1e6).toFixed(1)} s sampled, ${(busyUs / 1e6).toFixed(1)} s busy (${pct(busyUs, totalUs).trim()} of the time)`,
    '',
    table('by package', selfByPackage),
    '',
    table('by function, self time', selfByFunction),
    '',
  ].join('\n'),
);
