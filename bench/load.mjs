// HTTPS load generator for the benchmark harness: closed loop, or open loop at a fixed rate.
//
// `runLoad(spec)` forks this very module so that the load is generated in a
// separate process (the measured server keeps its own event loop and core).
// Closed loop: in the child, `connections` loops each keep exactly one request
// in flight on an undici Pool with one keep-alive connection per loop (no
// pipelining). Open loop (`rate`): requests are sent on a fixed schedule,
// whatever the answers, over the same pool; each latency counts from the time
// the request was due, so a stalled server shows in the figures instead of
// slowing the load down (no coordinated omission).
//
// The child tells the parent when the measured window opens and closes, so a
// CPU meter (bench/cpu.mjs) covers exactly that window.
//
// TLS note: for an IP origin such as https://127.0.0.1:8443 undici sends no SNI
// (its getServerName() maps IP hosts to null) and Node's tls.connect then checks
// the server certificate against the *host*, i.e. the IP SAN. So no `servername`
// is needed; pass `tls.servername` only to verify against a DNS name instead, or
// `tls.spiffeId` to verify an X.509-SVID's SPIFFE ID (its URI SAN) instead of any host.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { perRequest } from './cpu.mjs';

const CHILD_ENV = 'WRIT_BENCH_LOAD_CHILD';
const NS_PER_MS = 1e6;
const NS_PER_S = 1e9;
/** Extra time the parent allows the child beyond warm-up + duration before killing it. */
const GRACE_MS = 60_000;

/**
 * @typedef {{ method: string, path: string, headers?: Record<string, string>, body?: string }} LoadRequest
 * @typedef {{
 *   origin: string,
 *   tls: { ca: string, cert?: string, key?: string, servername?: string, spiffeId?: string },
 *   connections: number,
 *   durationSeconds: number,
 *   warmupSeconds?: number,
 *   requests?: LoadRequest[],
 *   requestsFile?: string,
 *   once?: boolean,
 *   rate?: number,
 *   expectStatus?: number,
 *   expectBody?: string,
 * }} LoadSpec
 * @typedef {{
 *   count: number, per_s: number, p50_ms: number, p99_ms: number, p999_ms: number, errors: number,
 *   statuses: Record<string, number>, elapsed_s: number, first_error?: string, load_cpu_ms: number,
 *   cpu_ms?: Record<string, number>, cpu_ms_per_req?: Record<string, number>, offered_per_s?: number,
 * }} LoadResult
 */

/**
 * Run a closed-loop load in a forked child process and return its measurements.
 *
 * `count`/`per_s`/latencies cover successful requests (status === expectStatus and,
 * with `expectBody`, a body that contains it: e.g. a JSON-RPC result inside an HTTP 200)
 * that completed inside the measured window (after warm-up); `errors` and
 * `statuses` cover every completion in that window. `first_error` is the first
 * failure seen in the window. With `once`, each request is sent at most once
 * and the window ends when the last one completes. With `rate`, requests are
 * offered at that many per second (open loop) and latencies count from when each was due.
 * `meter` (bench/cpu.mjs `cpuMeter`) is started and stopped with the measured window;
 * its figures, and the load generator's own, come back as `cpu_ms` and `cpu_ms_per_req`.
 *
 * @param {LoadSpec} spec
 * @param {{ meter?: { start(): void, stop(): Record<string, number> } }} [options]
 * @returns {Promise<LoadResult>}
 */
export async function runLoad(spec, { meter } = {}) {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, [CHILD_ENV]: '1' },
    stdio: ['ignore', 2, 2, 'ipc'], // the child's stdout goes to our stderr: stdout stays clean
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const limitMs = ((spec.warmupSeconds ?? 0) + spec.durationSeconds) * 1000 + GRACE_MS;
  let timer;
  let used;
  try {
    const reply = await new Promise((resolve, reject) => {
      child.on('message', (message) => {
        if (message.window === 'start') meter?.start();
        else if (message.window === 'end') used = meter?.stop();
        else resolve(message);
      });
      child.once('error', reject);
      exited.then((code) => reject(new Error(`load child exited (code ${code}) without a result`)));
      timer = setTimeout(() => reject(new Error(`load child gave no result within ${limitMs} ms`)), limitMs);
      child.send(spec);
    });
    if (reply.error) throw new Error(`load child failed: ${reply.error}`);
    const result = reply.result;
    const cpu = { ...(used ?? {}), load: result.load_cpu_ms };
    return { ...result, cpu_ms: cpu, cpu_ms_per_req: perRequest(cpu, result.count) };
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await exited;
  }
}

/** Requests from `spec.requests` or, one JSON object per line, from `spec.requestsFile`. */
function loadRequests(spec) {
  if (spec.requestsFile) {
    return readFileSync(spec.requestsFile, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line));
  }
  if (!spec.requests?.length) throw new Error('spec needs a non-empty `requests` or a `requestsFile`');
  return spec.requests;
}

/** Nearest-rank percentile of an ascending-sorted array (0 when empty). */
function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const round2 = (x) => Math.round(x * 100) / 100;

/** Shared tally of completions inside the measured window. */
function createTally() {
  return { latenciesMs: [], errors: 0, statuses: {}, firstError: undefined, lastCompletion: 0n };
}

/** Record one completion; `status` is undefined for a transport error. */
function record(tally, { status, ok, latencyNs, error, now }) {
  if (status !== undefined) tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
  if (ok) tally.latenciesMs.push(Number(latencyNs) / NS_PER_MS);
  else {
    tally.errors += 1;
    tally.firstError ??= error;
  }
  if (now > tally.lastCompletion) tally.lastCompletion = now;
}

/** A TLS `checkServerIdentity` that accepts exactly the X.509-SVID of `spiffeId` (its URI SAN), whatever the host. */
export const spiffeIdIs = (spiffeId) => (_host, cert) =>
  (cert.subjectaltname ?? '').split(', ').includes(`URI:${spiffeId}`) ? undefined : new Error(`the server is not ${spiffeId}`);

/** Send one request and consume its whole body; never throws. */
async function send(pool, request, expectStatus, expectBody) {
  try {
    const { statusCode, body } = await pool.request({
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body,
    });
    if (statusCode === expectStatus && expectBody === undefined) {
      await body.arrayBuffer();
      return { status: statusCode, ok: true };
    }
    const text = await body.text();
    if (statusCode === expectStatus && text.includes(expectBody)) return { status: statusCode, ok: true };
    return { status: statusCode, ok: false, error: `status ${statusCode}: ${text.slice(0, 300)}` };
  } catch (err) {
    return { ok: false, error: `${err.code ?? err.name ?? 'Error'}: ${err.message}` };
  }
}

/**
 * The load itself (child side): `connections` loops sharing one round-robin index.
 * @param {LoadSpec} spec
 * @returns {Promise<LoadResult>}
 */
async function generate(spec) {
  const requests = loadRequests(spec);
  const expectStatus = spec.expectStatus ?? 200;
  const { ca, cert, key, servername, spiffeId } = spec.tls ?? {};
  const pool = new Pool(spec.origin, {
    connections: spec.connections,
    pipelining: 1,
    connect: { ca, cert, key, servername, rejectUnauthorized: true, ...(spiffeId && { checkServerIdentity: spiffeIdIs(spiffeId) }) },
  });

  const start = process.hrtime.bigint();
  const measureFrom = start + BigInt(Math.round((spec.warmupSeconds ?? 0) * NS_PER_S));
  const measureTo = measureFrom + BigInt(Math.round(spec.durationSeconds * NS_PER_S));
  const tally = createTally();
  let next = 0;

  // The measured window, as the parent's CPU meter and this process's own CPU see it.
  let cpuAtStart;
  let loadCpuMs = 0;
  const windowOpens = () => {
    cpuAtStart = process.cpuUsage();
    process.send?.({ window: 'start' });
  };
  const windowCloses = () => {
    if (!cpuAtStart || closed) return;
    closed = true;
    const { user, system } = process.cpuUsage(cpuAtStart);
    loadCpuMs = Math.round((user + system) / 1000);
    process.send?.({ window: 'end' });
  };
  let closed = false;
  const opening = setTimeout(windowOpens, Math.max(0, Number(measureFrom - start) / NS_PER_MS));
  const closing = setTimeout(windowCloses, Number(measureTo - start) / NS_PER_MS);

  let lagsMs;
  const closedLoop = async () => {
    while (process.hrtime.bigint() < measureTo) {
      if (spec.once && next >= requests.length) return;
      const request = requests[next++ % requests.length];
      const sent = process.hrtime.bigint();
      const outcome = await send(pool, request, expectStatus, spec.expectBody);
      const now = process.hrtime.bigint();
      if (now >= measureFrom && now <= measureTo) record(tally, { ...outcome, latencyNs: now - sent, now });
    }
  };

  // Open loop: request i is due at start + i / rate; each is sent when due (a timer tick sends every
  // request due by then) and its latency counts from when it was due. Those due in the window count.
  const openLoop = async () => {
    const intervalNs = NS_PER_S / spec.rate;
    lagsMs = [];
    const inFlight = new Set();
    await new Promise((resolve) => {
      const tick = () => {
        const now = process.hrtime.bigint();
        while (start + BigInt(Math.round(next * intervalNs)) <= now && now < measureTo) {
          const due = start + BigInt(Math.round(next * intervalNs));
          if (due >= measureFrom) lagsMs.push(Number(now - due) / NS_PER_MS);
          const request = requests[next++ % requests.length];
          const p = send(pool, request, expectStatus, spec.expectBody).then((outcome) => {
            const done = process.hrtime.bigint();
            if (due >= measureFrom && due < measureTo) record(tally, { ...outcome, latencyNs: done - due, now: done });
            inFlight.delete(p);
          });
          inFlight.add(p);
        }
        if (now >= measureTo) return resolve();
        // A 1 ms timer, not a spin: the load generator shares the machine with the server. How late
        // the timer sent each request is reported (`send_lag_p99_ms`): that part of a latency is the generator's.
        setTimeout(tick, 1);
      };
      tick();
    });
    await Promise.all(inFlight);
  };

  try {
    if (spec.rate) await openLoop();
    else await Promise.all(Array.from({ length: spec.connections }, closedLoop));
  } finally {
    clearTimeout(opening);
    clearTimeout(closing);
    if (!cpuAtStart) windowOpens();
    windowCloses();
    await pool.close();
  }

  const exhaustedEarly = spec.once && next >= requests.length && tally.lastCompletion < measureTo;
  const windowEnd = exhaustedEarly ? tally.lastCompletion : measureTo;
  const elapsedS = Math.max(0, Number(windowEnd - measureFrom) / NS_PER_S);
  const sorted = Float64Array.from(tally.latenciesMs).sort();
  const result = {
    count: sorted.length,
    per_s: elapsedS > 0 ? Math.round(sorted.length / elapsedS) : 0,
    p50_ms: round2(percentile(sorted, 0.5)),
    p99_ms: round2(percentile(sorted, 0.99)),
    p999_ms: round2(percentile(sorted, 0.999)),
    errors: tally.errors,
    statuses: tally.statuses,
    elapsed_s: round2(elapsedS),
    load_cpu_ms: loadCpuMs,
    ...(spec.rate && { offered_per_s: spec.rate, send_lag_p99_ms: round2(percentile(Float64Array.from(lagsMs).sort(), 0.99)) }),
  };
  if (tally.firstError !== undefined) result.first_error = tally.firstError;
  return result;
}

/** Child side: wait for one spec over IPC, run it, send the result and exit. */
function serveAsChild() {
  process.once('message', async (spec) => {
    let reply;
    try {
      reply = { result: await generate(spec) };
    } catch (err) {
      reply = { error: err?.stack ?? String(err) };
    }
    process.send(reply, () => process.exit(0));
  });
}

if (process.send && process.env[CHILD_ENV] === '1') serveAsChild();
