#!/usr/bin/env node
/**
 * `npm run bench`: Writ's throughput and latency, each figure also a ratio to this
 * machine's own limits measured in the same run (bench/baselines.mjs).
 *
 * The broker is the built code (dist/main.js) started as its own process on a fresh
 * PostgreSQL database that this script creates and drops. Load comes from a separate
 * process (bench/load.mjs: undici over keep-alive mutual-TLS connections), warm-up excluded.
 *
 *   BENCH_DURATION  seconds per workload (default 10)
 *   BENCH_ONLY      comma-separated workload names (default: all)
 *   DATABASE_URL    a PostgreSQL server URL (default postgresql://postgres@127.0.0.1:5432/postgres)
 *   WRIT_WORKERS    broker processes (default auto: one per core)
 *   BENCH_RESULTS   where to write the JSON report (default bench/results/latest.json)
 *   BENCH_FAIL_ON_ERRORS  exit 1 if any workload saw an error (CI runs a short bench this way)
 *   BENCH_BROKER_NODE_ARGS  extra node flags for the broker, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   BENCH_MCP_NODE_ARGS  the same for the MCP server of the mcp_tools_call workloads (bench/mcp-server.mjs)
 *   BENCH_KEEP      keep the work directory (broker logs) instead of removing it
 *
 * Writes the JSON report and prints a table.
 */
import 'reflect-metadata';
import { fork, spawn } from 'node:child_process';
import { randomUUID, webcrypto } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as x509 from '@peculiar/x509';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pg from 'pg';
import { Agent, request } from 'undici';
import { measureBaselines } from './baselines.mjs';
import { cpuMeter, postgresPids, processTree } from './cpu.mjs';
import { runLoad, spiffeIdIs } from './load.mjs';
import { measurePolicy } from './policy.mjs';

x509.cryptoProvider.set(webcrypto);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(ROOT, 'dist/main.js');
const MCP_SERVER = join(ROOT, 'bench/mcp-server.mjs');
const DIST_POLICY = join(ROOT, 'dist/policy/index.js');
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const SERVER_URL = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const WORKERS = process.env.WRIT_WORKERS ?? 'auto';
const WARMUP = 3;
/** The broker runs as `npm start` runs it (package.json): a 160 MB old generation keeps its RSS near 300 MB at no cost in throughput. */
const BROKER_NODE_ARGS = ['--max-old-space-size=160'];
const CONNECTIONS = 64;
const TD = 'bench.test';
const IDP = 'https://idp.bench.test';
const RESOURCE = 'https://mcp.bench.test/tools';
const AGENT_ID = `spiffe://${TD}/agent/assistant`;
const MCP_ID = `spiffe://${TD}/mcp/tools`;
const MCP_TOOL_TEXT = 'done';
const MCP_VERSION = '2026-07-28';
const MCP_ENVELOPE = { 'io.modelcontextprotocol/protocolVersion': MCP_VERSION, 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'bench-agent', version: '1.0.0' } };
const USERS = 1000;
const GROUPS = 10;
const TOOLS = 20;
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

const WORKLOADS = ['policy_decide', 'token_exchange', 'introspect_active', 'introspect_revoked', 'authzen_evaluation', 'mcp_tools_call', 'mcp_tools_call_per_call', 'svid_attest', 'svid_renew', 'revocation_propagation', 'revoke_user_bulk', 'scale_1m'];
if (ONLY) for (const name of ONLY) if (!WORKLOADS.includes(name)) fail(`BENCH_ONLY: unknown workload ${name} (known: ${WORKLOADS.join(', ')})`);
const wanted = (name) => !ONLY || ONLY.has(name);

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}
const log = (message) => process.stderr.write(`bench: ${message}\n`);

// Cedar policy: reads up to `internal` for everyone, writes for one group through the platform's connectors, nothing for high-risk users.
const POLICIES = `
@id("staff-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { context.classification_level <= 1 };

@id("g1-write-platform")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool)
when { principal.groups.contains("g1") && context.classification_level <= 1 && context.connector.owner == "platform" };

@id("no-high-risk")
forbid (principal is Writ::User, action, resource)
when { principal.risk == "high" };
`;

const CLASSES = ['public', 'internal', 'confidential'];
const tools = Array.from({ length: TOOLS }, (_, i) => ({ name: `t${String(i).padStart(2, '0')}`, actions: ['read', 'write'], classification: CLASSES[i % 7 === 6 ? 2 : i % 2] }));

/** A free TCP port on 127.0.0.1. */
const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resident set size, MB, of a process and all its descendants (a clustered broker is several processes). */
function treeRssMb(rootPid) {
  return treeMemoryMb(rootPid, `/proc/%d/status`, /VmRSS:\s+(\d+)/);
}

/**
 * Proportional set size, MB, of the same: pages shared between the processes (the node binary,
 * the code of the modules they all load) counted once, as the pod's memory cgroup charges them.
 */
function treePssMb(rootPid) {
  return treeMemoryMb(rootPid, `/proc/%d/smaps_rollup`, /^Pss:\s+(\d+)/m);
}

function treeMemoryMb(rootPid, file, field) {
  let kb = 0;
  for (const pid of processTree(rootPid)) {
    try {
      kb += Number(field.exec(readFileSync(file.replace('%d', String(pid)), 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return Math.round(kb / 1024);
}

/** Starts the built broker as its own process; resolves once /readyz answers 200. */
async function startBroker(name, dir, databaseUrl, env = {}) {
  const port = await freePort();
  const opsPort = await freePort();
  const out = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(process.execPath, [...BROKER_NODE_ARGS, ...(process.env.BENCH_BROKER_NODE_ARGS?.split(' ').filter(Boolean) ?? []), MAIN], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      WRIT_PORT: String(port),
      WRIT_OPS_PORT: String(opsPort),
      WRIT_TRUST_DOMAIN: TD,
      WRIT_DATA_DIR: join(dir, 'data'),
      WRIT_CA_DIR: join(dir, 'certs'),
      WRIT_CONFIG: join(dir, 'writ.json'),
      WRIT_WORKERS: WORKERS,
      ...env,
    },
    stdio: ['ignore', out, out],
  });
  let exited;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`broker ${name} exited (${exited.code ?? exited.signal}) before it was ready: ${readFileSync(join(dir, `${name}.log`), 'utf8').trim().split('\n').slice(-3).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`broker ${name} not ready within 60 s`);
    try {
      const res = await request(`http://127.0.0.1:${opsPort}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  return {
    name,
    child,
    origin: `https://127.0.0.1:${port}`,
    /** A counter's total over the samples whose labels include `labels`, as /metrics reports it (summed over workers when clustered). */
    async counter(name, labels = {}) {
      const text = await (await request(`http://127.0.0.1:${opsPort}/metrics`)).body.text();
      let total = 0;
      for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
        if (Object.entries(labels).every(([k, v]) => (m[1] ?? '').includes(`${k}="${v}"`))) total += Number(m[2]);
      }
      return total;
    },
    /** The V8 heap as the broker's own /metrics reports it (the sum over workers, when clustered), MB. */
    async heap() {
      const res = await request(`http://127.0.0.1:${opsPort}/metrics`);
      const text = await res.body.text();
      const metric = (name) => Math.round(Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20);
      return { heap_used_mb: metric('nodejs_heap_size_used_bytes'), heap_total_mb: metric('nodejs_heap_size_total_bytes'), external_mb: metric('nodejs_external_memory_bytes') };
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      await new Promise((res) => (exited ? res() : child.once('exit', res)));
    },
  };
}

/** Starts bench/mcp-server.mjs (an MCP server behind writProtection) as its own process; resolves once it listens. */
async function startMcpServer(config) {
  const child = fork(MCP_SERVER, [], {
    env: { PATH: process.env.PATH, WRIT_BENCH_MCP: JSON.stringify(config) },
    execArgv: process.env.BENCH_MCP_NODE_ARGS?.split(' ').filter(Boolean) ?? [],
    stdio: ['ignore', 2, 2, 'ipc'],
  });
  const exited = new Promise((res) => child.once('exit', res));
  const { port } = await new Promise((res, rej) => {
    child.once('message', res);
    child.once('error', rej);
    exited.then((code) => rej(new Error(`the MCP server exited (${code}) before it listened`)));
  });
  return {
    child,
    origin: `https://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A small client for the admin API and for mTLS calls from setup code (not the measured load). */
function client(origin, ca, identity) {
  // Idle sockets are closed after 1 s, long before the broker's keep-alive timeout (5 s) could race a request on them.
  const dispatcher = new Agent({ connections: 64, keepAliveTimeout: 1000, keepAliveMaxTimeout: 1000, connect: { ca, ...(identity && { cert: identity.cert, key: identity.key }) } });
  const call = async (method, path, { json, form, bearer } = {}) => {
    const res = await request(`${origin}${path}`, {
      method,
      dispatcher,
      headers: {
        ...(bearer && { authorization: `Bearer ${bearer}` }),
        ...(json !== undefined && { 'content-type': 'application/json' }),
        ...(form !== undefined && { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      body: json !== undefined ? JSON.stringify(json) : form !== undefined ? new URLSearchParams(form).toString() : undefined,
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: text ? JSON.parse(text) : undefined, text };
  };
  return { call, close: () => dispatcher.close() };
}

/** Runs `fn` over `items` with at most `concurrency` in flight; returns results in order. */
async function mapConcurrent(items, concurrency, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

/** A fresh P-256 key and a PKCS#10 CSR for it. */
async function newCsr() {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=bench', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { csr: csr.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n` };
}

const pct = (values, p) => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] * 100) / 100;
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  const dbName = `writ_bench_${process.pid}_${Date.now()}`;
  const server = new URL(SERVER_URL);
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(SERVER_URL);
  dbUrl.pathname = `/${dbName}`;
  const databaseUrl = dbUrl.toString();
  const brokers = [];
  const cleanup = async () => {
    for (const b of brokers) await b.stop().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    if (process.env.BENCH_KEEP) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const started = Date.now();
  try {
    log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB; database ${server.host}/${dbName}; broker workers ${WORKERS}`);
    const baselines = await measureBaselines({ databaseUrl, durationSeconds: DURATION, connections: CONNECTIONS, poolSize: 10, log });
    log(`baselines: ${JSON.stringify(baselines)}`);
    // In this process, before any broker runs: Cedar decisions on one core (bench/policy.mjs).
    const inProcess = wanted('policy_decide')
      ? measurePolicy({ distPolicy: DIST_POLICY, policies: POLICIES, durationSeconds: DURATION, tools: tools.map(({ name, classification }) => ({ name, classification })), log })
      : {};

    // The broker: an identity provider whose ID tokens are subject tokens, a policy, a bootstrap admin token.
    const idp = await generateKeyPair('ES256');
    writeFileSync(join(dir, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] }));
    writeFileSync(join(dir, 'writ.cedar'), POLICIES);
    const adminToken = `bench-${randomUUID()}`;
    writeFileSync(
      join(dir, 'writ.json'),
      JSON.stringify({
        admin_token: adminToken,
        policy_file: 'writ.cedar',
        identity_providers: [{ issuer: IDP, jwks_file: 'idp.json', audience: 'writ', algorithms: ['ES256'] }],
      }),
    );
    const a = await startBroker('a', dir, databaseUrl);
    brokers.push(a);
    const caPem = readFileSync(join(dir, 'certs/ca.crt'), 'utf8');
    const api = client(a.origin, caPem);
    const adminCall = (method, path, json) => api.call(method, path, { json, bearer: adminToken });
    const must = (res, what) => {
      if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.text.slice(0, 300)}`);
      return res.json;
    };
    must(await adminCall('POST', '/v1/admin/resources', { uri: RESOURCE, spiffe_id: MCP_ID, tools }), 'register resource');

    const svidFor = async (spiffeId, owner) => {
      const entry = must(await adminCall('POST', '/v1/admin/entries', { spiffe_id: spiffeId, metadata: { owner } }), 'create entry');
      const token = must(await adminCall('POST', '/v1/admin/join-tokens', { entry_id: entry.id }), 'join token');
      const { csr, key } = await newCsr();
      const res = must(await api.call('POST', '/v1/attest', { json: { attestor: 'join_token', evidence: { token: token.token }, csr } }), 'attest');
      return { cert: res.svid, key, entryId: entry.id };
    };
    const agent = await svidFor(AGENT_ID, 'platform');
    const mcp = await svidFor(MCP_ID, 'platform');

    // 1,000 users in 10 groups; each request asks for 3 of the 20 tools, each decided by Cedar.
    const now = Math.floor(Date.now() / 1000);
    const idTokenOf = async (sub, group, extra = {}) =>
      new SignJWT({ groups: [group], sid: `s-${sub}`, ...extra })
        .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
        .setIssuer(IDP)
        .setAudience('writ')
        .setSubject(sub)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(idp.privateKey);
    const users = await Promise.all(Array.from({ length: USERS }, async (_, i) => ({ sub: `user-${i}`, token: await idTokenOf(`user-${i}`, `g${i % GROUPS}`) })));
    const exchangeForm = (subjectToken, i) => {
      const picked = [i % TOOLS, (i * 7 + 3) % TOOLS, (i * 13 + 5) % TOOLS].filter((t, k, all) => all.indexOf(t) === k);
      while (picked.length < 3) picked.push((picked.at(-1) + 1) % TOOLS);
      const details = picked.map((t, k) => ({ type: 'mcp_tool', tools: [tools[t].name], actions: [k === 2 && i % 2 ? 'write' : 'read'] }));
      return { grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: ID_TOKEN, resource: RESOURCE, authorization_details: JSON.stringify(details) };
    };
    const exchangeRequests = Array.from({ length: 5000 }, (_, i) => ({
      method: 'POST',
      path: '/oauth2/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(exchangeForm(users[i % USERS].token, i)).toString(),
    }));
    const agentTls = { ca: caPem, cert: agent.cert, key: agent.key };
    const mcpTls = { ca: caPem, cert: mcp.cert, key: mcp.key };
    const asAgent = client(a.origin, caPem, agent);
    process.on("uncaughtException", (e) => log(`uncaught ${e.stack}`));
    const asMcp = client(a.origin, caPem, mcp);
    const mint = async (count, formOf) =>
      mapConcurrent(Array.from({ length: count }, (_, i) => i), 32, async (i) => must(await asAgent.call('POST', '/oauth2/token', { form: formOf(i) }), 'exchange').access_token);
    const introspectRequests = (tokens) =>
      tokens.map((t) => ({ method: 'POST', path: '/oauth2/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${t}` }));
    // CPU per request over each measured window: the broker's processes, PostgreSQL's, and the load generator's own.
    const brokerMeter = (more = {}) => cpuMeter({ broker: () => processTree(a.child.pid), postgres: postgresPids, ...more });
    const load = (spec, meter = brokerMeter()) => runLoad({ origin: a.origin, connections: CONNECTIONS, durationSeconds: DURATION, warmupSeconds: WARMUP, expectStatus: 200, ...spec }, { meter });
    const results = {};
    const metricErrors = [];
    // The broker's own counter of what each workload does: it must have moved by at least the
    // requests the load generator saw succeed (warm-up adds more), or the metrics a team alerts on are wrong.
    const COUNTERS = {
      token_exchange: ['writ_tokens_issued_total'],
      introspect_active: ['writ_http_requests_total', { route: '/oauth2/introspect', status: '200' }],
      introspect_revoked: ['writ_http_requests_total', { route: '/oauth2/introspect', status: '200' }],
      authzen_evaluation: ['writ_http_requests_total', { route: '/access/v1/evaluation', status: '200' }],
      mcp_tools_call_per_call: ['writ_http_requests_total', { route: '/access/v1/evaluation', status: '200' }],
      svid_attest: ['writ_attestations_total', { outcome: 'issued' }],
      svid_renew: ['writ_svid_renewals_total', { outcome: 'issued' }],
    };
    const counted = {};
    for (const [workload, [name, labels]] of Object.entries(COUNTERS)) counted[workload] = await a.counter(name, labels);
    const record = async (name, r) => {
      results[name] = {
        per_s: r.per_s,
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        ...(r.p999_ms !== undefined && { p999_ms: r.p999_ms }),
        errors: r.errors,
        ...(r.offered_per_s !== undefined && { offered_per_s: r.offered_per_s, send_lag_p99_ms: r.send_lag_p99_ms }),
        ...(r.cpu_ms_per_req && { cpu_ms_per_req: r.cpu_ms_per_req }),
        rss_mb: treeRssMb(a.child.pid),
        pss_mb: treePssMb(a.child.pid),
        ...(r.extra ?? {}),
      };
      const workload = name.replace(/_(?:after_.*|\d.*)$/, '');
      if (COUNTERS[workload] && typeof r.count === 'number') {
        const [metric, labels] = COUNTERS[workload];
        const now = await a.counter(metric, labels);
        results[name].counter_moved = now - counted[workload];
        counted[workload] = now;
        if (results[name].counter_moved < r.count) metricErrors.push(`${name}: ${metric} moved by ${results[name].counter_moved}, fewer than the ${r.count} successful requests`);
      }
      log(`${name}: ${JSON.stringify(results[name])}${r.first_error ? ` first error: ${r.first_error}` : ''}`);
    };

    // Open loop: the same requests offered at a fixed rate, half of the closed loop's maximum and 500/s;
    // latencies count from when each request was due (bench/load.mjs).
    const openLoop = async (name, maxPerS, spec) => {
      for (const [label, rate] of [['half', Math.max(1, Math.round(maxPerS / 2))], ['500', 500]]) await record(`${name}_open_${label}`, await load({ ...spec, rate }));
    };
    const exchangeAndIntrospect = async (suffix) => {
      // Warm-up: at least one pass over the 5,000 requests, so every worker's decision cache has met them once.
      if (wanted('token_exchange') || suffix) {
        await record(`token_exchange${suffix}`, await load({ tls: agentTls, requests: exchangeRequests, warmupSeconds: 6 }));
        if (!suffix) await openLoop('token_exchange', results.token_exchange.per_s, { tls: agentTls, requests: exchangeRequests });
      }
      if (wanted('introspect_active') || suffix) {
        const live = await mint(2000, (i) => exchangeForm(users[i % USERS].token, i));
        await record(`introspect_active${suffix}`, await load({ tls: mcpTls, requests: introspectRequests(live) }));
        if (!suffix) await openLoop('introspect_active', results.introspect_active.per_s, { tls: mcpTls, requests: introspectRequests(live) });
      }
    };
    await exchangeAndIntrospect('');

    if (wanted('introspect_revoked')) {
      // 20 users with 100 tokens each, then each user revoked by an admin.
      const revokedUsers = await Promise.all(Array.from({ length: 20 }, async (_, i) => ({ sub: `revoked-${i}`, token: await idTokenOf(`revoked-${i}`, 'g0') })));
      const revoked = await mint(2000, (i) => exchangeForm(revokedUsers[i % 20].token, i));
      for (const u of revokedUsers) must(await adminCall('POST', '/v1/admin/revocations', { user: { issuer: IDP, subject: u.sub }, reason: 'bench' }), 'revoke user');
      const r = await load({ tls: mcpTls, requests: introspectRequests(revoked) });
      const check = must(await asMcp.call('POST', '/oauth2/introspect', { form: { token: revoked[0] } }), 'introspect');
      if (check.active !== false) throw new Error('a revoked token introspected as active');
      await record('introspect_revoked', r);
    }

    if (wanted('authzen_evaluation')) {
      // A per-call decision for each of 2,000 tasks (the MCP server as PEP, AuthZEN's MCP binding mapping): Cedar, the task, the connector, and an audit row each.
      const tokens = await mint(2000, (i) => exchangeForm(users[i % USERS].token, i));
      const requests = tokens.map((t) => {
        const claims = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString('utf8'));
        const tool = claims.authorization_details[0].tools[0];
        return {
          method: 'POST',
          path: '/access/v1/evaluation',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ subject: { type: 'identity', id: claims.sub }, action: { name: 'tools/call', properties: { action: 'read' } }, resource: { type: 'tool', id: tool }, context: { task_id: claims.task_id, agent: claims.client_id } }),
        };
      });
      const r = await load({ tls: mcpTls, requests });
      const check = must(await asMcp.call('POST', '/access/v1/evaluation', { json: JSON.parse(requests[0].body) }), 'evaluate');
      if (typeof check.decision !== 'boolean') throw new Error('an evaluation answered no decision');
      await record('authzen_evaluation', r);
    }

    for (const [name, perCall] of [['mcp_tools_call', false], ['mcp_tools_call_per_call', true]]) {
      if (!wanted(name)) continue;
      // An MCP tools/call from the agent to an SDK v2 server behind writProtection (bench/mcp-server.mjs): the token's
      // signature, audience and certificate binding, the 2026-07-28 headers, the tool grant; with `perCall`, also a
      // decision from the broker's AuthZEN endpoint for each call (the middleware's `decisions` option).
      const tool = tools[0].name; // public: policy permits everyone to read it
      const tokens = await mint(2000, (i) => ({ ...exchangeForm(users[i % USERS].token, i), authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: [tool], actions: ['read'] }]) }));
      const { iss } = JSON.parse(Buffer.from(tokens[0].split('.')[1], 'base64url').toString('utf8'));
      const server = await startMcpServer({
        cert: mcp.cert,
        key: mcp.key,
        ca: caPem,
        resource: RESOURCE,
        issuer: iss,
        jwksUri: `${a.origin}/oauth2/jwks`,
        tool,
        text: MCP_TOOL_TEXT,
        ...(perCall && { decisions: `${a.origin}/access/v1/evaluation` }),
      });
      try {
        const requests = tokens.map((t, i) => ({
          method: 'POST',
          path: '/mcp',
          headers: {
            authorization: `Bearer ${t}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': MCP_VERSION,
            'mcp-method': 'tools/call',
            'mcp-name': tool,
          },
          // 2026-07-28: each request carries its own envelope (protocol version, client capabilities and info) in `_meta`.
          body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: tool, arguments: {}, _meta: MCP_ENVELOPE } }),
        }));
        // Once before measuring: the answer (JSON, or one Server-Sent Event) is a JSON-RPC result, not an error;
        // the load generator counts HTTP 200s, and a refused call is a JSON-RPC error inside a 200.
        const dispatcher = new Agent({ connect: { ...agentTls, checkServerIdentity: spiffeIdIs(MCP_ID) } });
        const res = await request(`${server.origin}/mcp`, { method: 'POST', headers: requests[0].headers, body: requests[0].body, dispatcher });
        const text = await res.body.text();
        await dispatcher.close();
        const answer = JSON.parse(text.startsWith('{') ? text : (text.split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? 'null'));
        if (res.statusCode !== 200 || answer?.result?.content?.[0]?.text !== MCP_TOOL_TEXT) throw new Error(`${name}: tools/call answered ${res.statusCode} ${text.slice(0, 300)}`);
        // The evaluation counter from here on (authzen_evaluation moves it too); during the load, a success is
        // an HTTP 200 carrying the tool's text (a refused call would be a JSON-RPC error, also in a 200).
        if (COUNTERS[name]) counted[name] = await a.counter(...COUNTERS[name]);
        const r = await load({ origin: server.origin, tls: { ...agentTls, spiffeId: MCP_ID }, requests, expectBody: `"text":"${MCP_TOOL_TEXT}"` }, brokerMeter({ mcp_server: () => processTree(server.child.pid) }));
        await record(name, { ...r, extra: { mcp_server_rss_mb: treeRssMb(server.child.pid) } });
      } finally {
        await server.stop();
      }
    }

    if (wanted('svid_attest')) {
      // Single-use join tokens and a fresh P-256 key and CSR for each attestation.
      const count = Math.max(2000, Math.min(20_000, (DURATION + WARMUP) * 1500));
      log(`svid_attest: preparing ${count} join tokens and CSRs`);
      const entry = must(await adminCall('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}/agent/fleet`, metadata: { owner: 'platform' } }), 'create entry');
      const joins = await mapConcurrent(Array.from({ length: count }, () => 0), 32, async () => must(await adminCall('POST', '/v1/admin/join-tokens', { entry_id: entry.id }), 'join token').token);
      const csrs = await mapConcurrent(joins, 8, async () => (await newCsr()).csr);
      const requests = joins.map((token, i) => ({ method: 'POST', path: '/v1/attest', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ attestor: 'join_token', evidence: { token }, csr: csrs[i] }) }));
      const r = await load({ tls: { ca: caPem }, requests, once: true, expectStatus: 201 });
      await record('svid_attest', r);
    }

    if (wanted('svid_renew')) {
      const csrs = await mapConcurrent(Array.from({ length: 4000 }, () => 0), 8, async () => (await newCsr()).csr);
      const requests = csrs.map((csr) => ({ method: 'POST', path: '/v1/svid/renew', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr }) }));
      await record('svid_renew', await load({ tls: agentTls, requests, expectStatus: 201 }));
    }

    if (wanted('revocation_propagation')) {
      // A second broker on the same database and CA; revoke through A, poll B until the token is inactive.
      const b = await startBroker('b', dir, databaseUrl, { WRIT_WORKERS: '1' });
      brokers.push(b);
      const bMcp = client(b.origin, caPem, mcp);
      const tokens = await mint(500, (i) => exchangeForm(users[i % USERS].token, i));
      const latencies = [];
      let errors = 0;
      for (const jti of tokens.map((t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url')).jti)) {
        const token = tokens[latencies.length + errors];
        const t0 = process.hrtime.bigint();
        const revoking = adminCall('POST', '/v1/admin/revocations', { jti, reason: 'bench' });
        let seen;
        while (!seen) {
          const res = await bMcp.call('POST', '/oauth2/introspect', { form: { token } });
          if (res.status === 200 && res.json.active === false) seen = process.hrtime.bigint();
          else if (Number(process.hrtime.bigint() - t0) > 5e9) break;
        }
        const revokedRes = await revoking;
        if (!seen || revokedRes.status !== 200) errors++;
        else latencies.push(Number(seen - t0) / 1e6);
      }
      bMcp.close();
      await b.stop();
      brokers.splice(brokers.indexOf(b), 1);
      await record('revocation_propagation', { per_s: 0, p50_ms: pct(latencies, 50), p99_ms: pct(latencies, 99), errors, extra: { revocations: tokens.length } });
    }

    if (wanted('revoke_user_bulk')) {
      const bulkToken = await idTokenOf('bulk-user', 'g0');
      log('revoke_user_bulk: minting 10,000 tokens for one user');
      const tokens = await mint(10_000, (i) => exchangeForm(bulkToken, i));
      const t0 = process.hrtime.bigint();
      const res = must(await adminCall('POST', '/v1/admin/revocations', { user: { issuer: IDP, subject: 'bulk-user' }, reason: 'bench' }), 'revoke user');
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const states = await mapConcurrent(tokens, 64, async (token) => (await asMcp.call('POST', '/oauth2/introspect', { form: { token } })).json?.active);
      const stillActive = states.filter((s) => s !== false).length;
      await record('revoke_user_bulk', { per_s: 0, p50_ms: Math.round(ms * 100) / 100, p99_ms: Math.round(ms * 100) / 100, errors: stillActive, extra: { ms: Math.round(ms), revoked: res.revoked ?? res.count, still_active: stillActive } });
    }

    if (wanted('scale_1m')) {
      log('scale_1m: inserting 1,000,000 lease rows');
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      await db.query(`
        INSERT INTO lease (id, kind, spiffe_id, subject, task_id, audience, issued_at, expires_at, sid, subject_issuer, authorization_details, fingerprint)
        SELECT gen_random_uuid(), 'access-token', $1, 'old-user-' || (g % 50000), gen_random_uuid(), ARRAY[$2], now() - interval '1 hour' * (g % 48),
               now() + interval '5 minutes' - interval '1 hour' * (g % 48), 's-' || g, $3, '[{"type":"mcp_tool","tools":["t00"],"actions":["read"],"data_classification":"public"}]'::jsonb, md5(g::text)
        FROM generate_series(1, 1000000) AS g`,
        [AGENT_ID, RESOURCE, IDP],
      );
      await db.query('ANALYZE lease');
      await db.end();
      await exchangeAndIntrospect('_1m');
      results.scale_1m = {
        token_exchange_ratio: Math.round((results.token_exchange_1m.per_s / (results.token_exchange?.per_s || NaN)) * 100) / 100,
        introspect_active_ratio: Math.round((results.introspect_active_1m.per_s / (results.introspect_active?.per_s || NaN)) * 100) / 100,
      };
    }

    asAgent.close();
    asMcp.close();
    api.close();
    const rssAfter = treeRssMb(a.child.pid);
    const pssAfter = treePssMb(a.child.pid);
    const report = {
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version, postgres: (await admin.query('SHOW server_version')).rows[0].server_version, broker_workers: WORKERS === 'auto' ? cpus().length : Number(WORKERS), at: new Date().toISOString(), duration_s: DURATION },
      baselines,
      in_process: inProcess,
      workloads: results,
      memory: { broker_rss_mb: rssAfter, broker_pss_mb: pssAfter, ...(await a.heap()) },
    };
    report.targets = evaluate(report);
    const out = process.env.BENCH_RESULTS ?? join(ROOT, 'bench/results/latest.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(table(report));
    log(`done in ${Math.round((Date.now() - started) / 1000)} s; ${out} written`);
    for (const e of metricErrors) log(`metrics: ${e}`);
    if (metricErrors.length > 0) process.exitCode = 1;
    const failed = Object.entries({ ...inProcess, ...results }).filter(([, r]) => r.errors > 0);
    if (process.env.BENCH_FAIL_ON_ERRORS && failed.length > 0) {
      process.exitCode = 1;
      log(`errors in ${failed.map(([name, r]) => `${name} (${r.errors})`).join(', ')}`);
    }
  } finally {
    await cleanup();
  }
}

/**
 * Each target, with the measured figure and whether it is met. Throughput targets are ratios to
 * this run's own baselines (the machine's speed varies between runs; the ratios hold); latency
 * targets are for the open loop at half of the closed loop's maximum, where a latency is service
 * time, not queueing behind 64 busy connections.
 */
function evaluate({ baselines, workloads: w, memory, machine }) {
  const t = [];
  const add = (name, target, value, ok) => t.push({ name, target, value, met: Boolean(ok) });
  const vsHello = (name, floor) => {
    if (w[name]) add(`${name} / https_hello`, `≥ ${floor}`, ratio(w[name].per_s, baselines.https_hello.per_s), w[name].per_s >= floor * baselines.https_hello.per_s && w[name].errors === 0);
  };
  if (w.token_exchange) {
    add('token_exchange / pg_insert', '≥ 0.5', ratio(w.token_exchange.per_s, baselines.pg_insert.per_s), w.token_exchange.per_s >= 0.5 * baselines.pg_insert.per_s);
    add('token_exchange errors', '0', w.token_exchange.errors, w.token_exchange.errors === 0);
  }
  if (w.token_exchange_open_half) add('token_exchange open loop at half, p99', '≤ 10 ms', w.token_exchange_open_half.p99_ms, w.token_exchange_open_half.p99_ms <= 10 && w.token_exchange_open_half.errors === 0);
  vsHello('introspect_active', 0.5);
  vsHello('introspect_revoked', 0.5);
  if (w.introspect_active_open_half) add('introspect_active open loop at half, p99', '≤ 5 ms', w.introspect_active_open_half.p99_ms, w.introspect_active_open_half.p99_ms <= 5 && w.introspect_active_open_half.errors === 0);
  vsHello('svid_attest', 0.1);
  vsHello('svid_renew', 0.15);
  if (w.revocation_propagation) add('revocation_propagation p99', '≤ 50 ms', w.revocation_propagation.p99_ms, w.revocation_propagation.p99_ms <= 50 && w.revocation_propagation.errors === 0);
  if (w.revoke_user_bulk) add('revoke_user_bulk', '≤ 1000 ms, then all inactive', w.revoke_user_bulk.ms, w.revoke_user_bulk.ms <= 1000 && w.revoke_user_bulk.still_active === 0);
  if (w.scale_1m) {
    add('scale_1m token_exchange', '≥ 0.8 × empty', w.scale_1m.token_exchange_ratio, w.scale_1m.token_exchange_ratio >= 0.8);
    add('scale_1m introspect_active', '≥ 0.8 × empty', w.scale_1m.introspect_active_ratio, w.scale_1m.introspect_active_ratio >= 0.8);
  }
  // 250 MB for one worker, 400 MB for two: each worker after the first adds 150 MB.
  const rssCap = 250 + 150 * (machine.broker_workers - 1);
  add(`memory (broker RSS, ${machine.broker_workers} worker${machine.broker_workers === 1 ? '' : 's'})`, `≤ ${rssCap} MB`, memory.broker_rss_mb, memory.broker_rss_mb <= rssCap);
  return t;
}

const ratio = (a, b) => Math.round((a / b) * 100) / 100;

function table({ machine, baselines: b, in_process: inProcess, workloads: w, memory, targets }) {
  const rows = [['baseline', 'figure', '', '', 'CPU ms per request']];
  rows.push(['https_hello', `${b.https_hello.per_s}/s`, `p99 ${b.https_hello.p99_ms} ms`, '', b.https_hello.cpu_ms_per_req ? `server ${b.https_hello.cpu_ms_per_req.server}` : '']);
  for (const label of ['half', '500']) {
    const o = b.https_hello[`open_${label}`];
    if (o) rows.push([`https_hello_open_${label}`, `${o.offered_per_s}/s offered`, `${o.p50_ms} / ${o.p99_ms} / ${o.p999_ms}`, `${o.errors}`, `send lag p99 ${o.send_lag_p99_ms} ms`]);
  }
  rows.push(['es256_sign', `${b.es256_sign.per_s}/s`, '', '']);
  rows.push(['es256_verify', `${b.es256_verify.per_s}/s`, '', '']);
  rows.push(['pg_insert', `${b.pg_insert.per_s}/s`, '', '', b.pg_insert.cpu_ms_per_req ? `postgres ${b.pg_insert.cpu_ms_per_req.postgres}` : '']);
  rows.push(['pg_notify_rtt', `p50 ${b.pg_notify_rtt.p50_ms} ms`, `p99 ${b.pg_notify_rtt.p99_ms} ms`, '']);
  const lines = [`Writ benchmark — ${machine.cpus} × ${machine.model}, Node ${machine.node}, PostgreSQL ${machine.postgres}, broker workers ${machine.broker_workers}, ${machine.duration_s} s per workload`, ''];
  const fmt = (r) => r.map((c, i) => String(c).padEnd([34, 16, 24, 28, 16][i] ?? 0)).join(' ').trimEnd();
  for (const r of rows) lines.push(fmt(r));
  if (Object.keys(inProcess).length > 0) {
    lines.push('', fmt(['in process (one core)', 'per_s', 'p50 / p99 µs', 'errors']));
    for (const [name, r] of Object.entries(inProcess)) lines.push(fmt([name, `${r.per_s}/s`, `${r.p50_us} / ${r.p99_us}`, `${r.errors}`]));
  }
  const cpu = (c) => (c ? Object.entries(c).filter(([k]) => k !== 'load').map(([k, v]) => `${k} ${v}`).join(', ') : '');
  lines.push('', fmt(['workload', 'per_s', 'p50 / p99 (/ p99.9) ms', 'errors / rss', 'CPU ms per request']));
  for (const [name, r] of Object.entries(w)) {
    if (name === 'scale_1m') continue;
    const rate = r.offered_per_s ? `${r.per_s}/s of ${r.offered_per_s}` : r.per_s ? `${r.per_s}/s` : '-';
    lines.push(fmt([name, rate, `${r.p50_ms} / ${r.p99_ms}${r.p999_ms !== undefined && r.offered_per_s ? ` / ${r.p999_ms}` : ''}`, `${r.errors} / ${r.rss_mb} MB${r.mcp_server_rss_mb ? ` (MCP server ${r.mcp_server_rss_mb} MB)` : ''}`, cpu(r.cpu_ms_per_req)]));
  }
  lines.push('', `broker RSS after the run: ${memory.broker_rss_mb} MB, PSS ${memory.broker_pss_mb} MB (V8 heap ${memory.heap_used_mb} MB used of ${memory.heap_total_mb} MB; external ${memory.external_mb} MB)`, '', fmt(['target', 'wanted', 'measured', 'met']));
  for (const t of targets) lines.push(fmt([t.name, t.target, t.value, t.met ? 'yes' : 'NO']));
  return `${lines.join('\n')}\n`;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
