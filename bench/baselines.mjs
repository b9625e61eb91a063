// This machine's limits, measured in the same run as the Writ workloads, so the
// broker's figures can be read against them: a bare mTLS HTTPS server, ES256
// sign/verify on one core, single-row PostgreSQL inserts and LISTEN/NOTIFY
// round trips.
import { fork } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { cpuMeter, perRequest, postgresPids, processTree } from './cpu.mjs';
import { runLoad } from './load.mjs';
import { makePki } from './pki.mjs';

const HELLO_SERVER = fileURLToPath(new URL('./hello-server.mjs', import.meta.url));
const CRYPTO_SECONDS = 2;
const PG_INSERT_MAX_SECONDS = 5;
const NOTIFY_WARMUP = 50;
const NOTIFY_ROUNDS = 1000;

const round2 = (x) => Math.round(x * 100) / 100;

/** Nearest-rank percentile of an ascending-sorted array. */
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/**
 * Measure this machine's baselines.
 *
 * @param {object} options
 * @param {string} options.databaseUrl postgresql:// URL of an existing scratch database
 * @param {number} options.durationSeconds measured seconds for https_hello (pg_insert uses min(this, 5))
 * @param {number} [options.connections=64] keep-alive connections for https_hello
 * @param {number} [options.poolSize=10] pg pool size and concurrent inserters for pg_insert
 * @param {number} [options.workers=1] node:cluster workers for the hello server
 * @param {(line: string) => void} [options.log=console.error] progress lines (stderr)
 * @returns {Promise<{
 *   https_hello: { per_s: number, p50_ms: number, p99_ms: number, cpu_ms_per_req: { server: number, load: number }, open_half: object, open_500: object },
 *   es256_sign: { per_s: number }, es256_verify: { per_s: number },
 *   pg_insert: { per_s: number, cpu_ms_per_req: { postgres: number, client: number } }, pg_notify_rtt: { p50_ms: number, p99_ms: number },
 * }>}
 */
export async function measureBaselines({ databaseUrl, durationSeconds, connections = 64, poolSize = 10, workers = 1, log = console.error }) {
  log(`baseline https_hello: ${connections} connections, ${workers} worker(s), ${durationSeconds} s`);
  const https_hello = await measureHttpsHello({ durationSeconds, connections, workers });
  log(`baseline https_hello: ${https_hello.per_s}/s p50 ${https_hello.p50_ms} ms p99 ${https_hello.p99_ms} ms`);

  const { es256_sign, es256_verify } = measureEs256();
  log(`baseline es256: sign ${es256_sign.per_s}/s, verify ${es256_verify.per_s}/s (one core)`);

  const insertSeconds = Math.min(durationSeconds, PG_INSERT_MAX_SECONDS);
  log(`baseline pg_insert: ${poolSize} inserters, ${insertSeconds} s`);
  const pg_insert = await measurePgInsert({ databaseUrl, poolSize, seconds: insertSeconds });
  log(`baseline pg_insert: ${pg_insert.per_s}/s`);

  log(`baseline pg_notify_rtt: ${NOTIFY_ROUNDS} round trips`);
  const pg_notify_rtt = await measureNotifyRtt(databaseUrl);
  log(`baseline pg_notify_rtt: p50 ${pg_notify_rtt.p50_ms} ms p99 ${pg_notify_rtt.p99_ms} ms`);

  return { https_hello, es256_sign, es256_verify, pg_insert, pg_notify_rtt };
}

// --- https_hello ------------------------------------------------------------

/** Start hello-server.mjs in a child process; resolves with { port, stop }. */
async function startHelloServer(pki, workers) {
  const child = fork(HELLO_SERVER, [], {
    env: {
      ...process.env,
      WRIT_BENCH_HELLO: JSON.stringify({ key: pki.serverKeyPem, cert: pki.serverCertPem, ca: pki.caPem, workers }),
    },
    stdio: ['ignore', 2, 2, 'ipc'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const { port } = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('error', reject);
    exited.then((code) => reject(new Error(`hello server exited early (code ${code})`)));
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return { port, pid: child.pid, stop };
}

async function measureHttpsHello({ durationSeconds, connections, workers }) {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-pki-'));
  try {
    const pki = makePki(dir);
    const server = await startHelloServer(pki, workers);
    try {
      const result = await runLoad({
        origin: `https://127.0.0.1:${server.port}`,
        tls: { ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem },
        connections,
        durationSeconds,
        warmupSeconds: 2,
        requests: [helloRequest()],
        expectStatus: 200,
      }, { meter: cpuMeter({ server: () => processTree(server.pid) }) });
      if (result.errors > 0) throw new Error(`https_hello: ${result.errors} errors; first: ${result.first_error}`);
      // The same server offered 500/s and half of its maximum (open loop): the latency this machine and this load
      // generator give a server that does nothing, the floor under the broker's open-loop figures.
      const open = {};
      for (const [label, rate] of [['half', Math.max(1, Math.round(result.per_s / 2))], ['500', 500]]) {
        const r = await runLoad({ origin: `https://127.0.0.1:${server.port}`, tls: { ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem }, connections, durationSeconds, warmupSeconds: 2, requests: [helloRequest()], expectStatus: 200, rate });
        open[`open_${label}`] = { offered_per_s: rate, p50_ms: r.p50_ms, p99_ms: r.p99_ms, p999_ms: r.p999_ms, errors: r.errors, send_lag_p99_ms: r.send_lag_p99_ms };
      }
      return { per_s: result.per_s, p50_ms: result.p50_ms, p99_ms: result.p99_ms, cpu_ms_per_req: result.cpu_ms_per_req, ...open };
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A POST with a ~300-byte form body, shaped like a token-exchange request. */
function helloRequest() {
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    subject_token: 'x'.repeat(120),
    audience: 'https://mcp.example.com/bench',
    scope: 'read write',
  }).toString();
  return { method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body };
}

// --- ES256 ------------------------------------------------------------------

/** Run `op` in a loop for `seconds`; returns ops per second (integer). */
function opsPerSecond(op, seconds) {
  const start = process.hrtime.bigint();
  const end = start + BigInt(seconds * 1e9);
  let ops = 0;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 50; i++) op(); // batches keep the clock out of the loop
    ops += 50;
    now = process.hrtime.bigint();
  }
  return Math.round(ops / (Number(now - start) / 1e9));
}

/** ES256 (P-256, IEEE P1363 signatures as in JWS) sign and verify on one core. */
function measureEs256() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = b64url({ alg: 'ES256', typ: 'JWT', kid: 'bench' });
  const payload = b64url({ iss: 'https://writ.example', sub: 'spiffe://example.org/agent/bench', aud: 'mcp', iat: 1700000000, exp: 1700000300, jti: randomUUID() });
  const data = Buffer.from(`${header}.${payload}`); // ~200 bytes, like a JWT signing input
  const signature = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const signPerS = opsPerSecond(() => sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }), CRYPTO_SECONDS);
  const verifyPerS = opsPerSecond(() => {
    if (!verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('ES256 verify failed');
  }, CRYPTO_SECONDS);
  return { es256_sign: { per_s: signPerS }, es256_verify: { per_s: verifyPerS } };
}

// --- PostgreSQL ---------------------------------------------------------------

const LEASE_DDL = [
  `CREATE TABLE bench_lease (
     id uuid primary key, kind text not null, spiffe_id text not null, subject text, task_id uuid,
     audience text[] not null default '{}', issued_at timestamptz not null, expires_at timestamptz not null,
     revoked_at timestamptz, serial text, fingerprint text, sid text, subject_issuer text,
     authorization_details jsonb, parent_id uuid)`,
  'CREATE INDEX bench_lease_subject ON bench_lease (subject)',
  'CREATE INDEX bench_lease_task_id ON bench_lease (task_id)',
  'CREATE INDEX bench_lease_expires_at ON bench_lease (expires_at)',
];

const INSERT_LEASE = `INSERT INTO bench_lease
  (id, kind, spiffe_id, subject, task_id, audience, issued_at, expires_at, serial, fingerprint, sid, subject_issuer, authorization_details)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;

/** Parameters for one realistic token lease row. */
function leaseParams(n) {
  const now = new Date();
  return [
    randomUUID(), 'token', `spiffe://example.org/agent/bench-${n % 100}`, `user-${n % 1000}@example.com`, randomUUID(),
    ['https://mcp.example.com/bench'], now, new Date(now.getTime() + 300_000),
    null, null, randomUUID(), 'https://idp.example.com',
    JSON.stringify([{ type: 'mcp_tool', locations: ['https://mcp.example.com/bench'], actions: ['read'] }]),
  ];
}

async function measurePgInsert({ databaseUrl, poolSize, seconds }) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize });
  try {
    await pool.query('DROP TABLE IF EXISTS bench_lease');
    for (const statement of LEASE_DDL) await pool.query(statement);
    let inserted = 0;
    // PostgreSQL's CPU per insert, and this client's (pg's protocol work): the broker's exchange is read against both.
    const meter = cpuMeter({ postgres: postgresPids, client: () => [process.pid] });
    meter.start();
    const start = process.hrtime.bigint();
    const end = start + BigInt(seconds * 1e9);
    const inserter = async () => {
      while (process.hrtime.bigint() < end) {
        await pool.query(INSERT_LEASE, leaseParams(inserted));
        inserted += 1;
      }
    };
    await Promise.all(Array.from({ length: poolSize }, inserter));
    const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
    const used = meter.stop();
    await pool.query('DROP TABLE bench_lease');
    return { per_s: Math.round(inserted / elapsedS), cpu_ms_per_req: perRequest(used, inserted) };
  } finally {
    await pool.end();
  }
}

async function measureNotifyRtt(databaseUrl) {
  const listener = new pg.Client({ connectionString: databaseUrl });
  const notifier = new pg.Client({ connectionString: databaseUrl });
  await Promise.all([listener.connect(), notifier.connect()]);
  try {
    await listener.query('LISTEN bench_rtt');
    let waiting = null; // { payload, resolve }
    listener.on('notification', (msg) => {
      if (waiting && msg.channel === 'bench_rtt' && msg.payload === waiting.payload) waiting.resolve(process.hrtime.bigint());
    });
    const samplesMs = [];
    for (let seq = 0; seq < NOTIFY_WARMUP + NOTIFY_ROUNDS; seq++) {
      const payload = String(seq);
      const received = new Promise((resolve) => { waiting = { payload, resolve }; });
      const sent = process.hrtime.bigint();
      await Promise.all([notifier.query("SELECT pg_notify('bench_rtt', $1)", [payload]), received]);
      if (seq >= NOTIFY_WARMUP) samplesMs.push(Number((await received) - sent) / 1e6);
    }
    samplesMs.sort((a, b) => a - b);
    return { p50_ms: round2(percentile(samplesMs, 0.5)), p99_ms: round2(percentile(samplesMs, 0.99)) };
  } finally {
    await Promise.all([listener.end(), notifier.end()]);
  }
}
