/**
 * Helpers for the zero-downtime tests: three (or more) real broker processes on one
 * PostgreSQL, a load client that behaves like a Kubernetes Service (round-robin over the
 * endpoints in rotation), the Kubernetes termination order (out of rotation, preStop
 * delay, SIGTERM), and the checks that every token a client received is a committed
 * lease that every survivor introspects as active.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequestRaw } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Client } from 'pg';
import { Pool } from 'undici';
import type { TestStore } from './database';
import { httpsRequest } from './https';
import { openssl } from './openssl';
import { brokerEnv, spawnWrit, type WritProcess } from './process';

/**
 * How the brokers share their CA.
 * - 'kek': one key-encryption key file (WRIT_KEK_FILE) for all, each process with its own
 *   empty WRIT_CA_DIR: the first creates the CA and seals its key into PostgreSQL, the
 *   others (and every replacement) load it from there, as replicas in Kubernetes do.
 * - 'dir': one WRIT_CA_DIR shared by every process (works without KEK custody).
 */
export const SHARED_CA: 'kek' | 'dir' = 'kek';

export const TRUST_DOMAIN = 'ha.test';
const IDP = 'https://idp.ha.test';
export const RESOURCE = 'https://mcp.ha.test/tools';
const CONNECTOR = `spiffe://${TRUST_DOMAIN}/agent/assistant`;
/** One issuer for every replica, as behind one Service: tokens from any replica verify on all. */
const ISSUER = 'https://writ.ha.test';
const POLICIES = `
@id("staff-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("staff") && context.classification_level <= 1 };
`;
const USERS = 16;

/** Kubernetes' preStop delay before SIGTERM (the chart's sleep), so endpoints drop out of every proxy first. */
export const PRE_STOP_MS = 400;

/** Codes of requests that never got an HTTP answer because the peer's socket went away. */
export const SOCKET_ERRORS = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_CLOSED', 'ECONNABORTED']);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const jtiOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { jti: string }).jti;

/** One broker process as an endpoint. */
export interface Broker {
  readonly name: string;
  readonly proc: WritProcess;
  readonly apiUrl: string;
  readonly opsUrl: string;
  /** Keep-alive mTLS connections as the connector (agent) to this broker; the first broker's is set once the agent has its SVID. */
  pool: Pool;
  /** When it first answered /readyz 200 (performance.now()). */
  readonly readyAt: number;
  readonly startMs: number;
}

/** What happened to one request. Times are performance.now() in ms. */
export interface Outcome {
  readonly broker: string;
  /** load: the steady load; burst: sent right before a signal; slow: body held across the SIGTERM. */
  readonly kind: 'load' | 'burst' | 'slow';
  readonly startedAt: number;
  endedAt: number;
  status?: number;
  token?: string;
  jti?: string;
  /** For failures: the error code (socket errors) or the OAuth error. */
  errorCode?: string;
  error?: string;
}

export const isSocketError = (o: Outcome) => o.status === undefined && o.errorCode !== undefined && SOCKET_ERRORS.has(o.errorCode);

/** Endpoints in rotation, as a Service's EndpointSlice: round-robin over brokers that are ready. */
export class Rotation {
  private endpoints: Broker[] = [];
  private i = 0;
  add(b: Broker): void {
    if (!this.endpoints.includes(b)) this.endpoints.push(b);
  }
  remove(b: Broker): void {
    this.endpoints = this.endpoints.filter((e) => e !== b);
  }
  has(b: Broker): boolean {
    return this.endpoints.includes(b);
  }
  next(): Broker | undefined {
    if (this.endpoints.length === 0) return undefined;
    return this.endpoints[this.i++ % this.endpoints.length];
  }
  get names(): string[] {
    return this.endpoints.map((e) => e.name);
  }
}

/**
 * The whole fixture: a fresh database (from the caller's TestStore), the files every broker
 * reads, the processes, the connector's SVID and the users' ID tokens.
 */
export class HaCluster {
  readonly brokers: Broker[] = [];
  /** Every process ever started, for afterAll. */
  private readonly procs: WritProcess[] = [];
  private readonly adminToken = `writ_admin_ha_${randomBytes(16).toString('hex')}`;
  private readonly base: Record<string, string>;
  caPem = '';
  /** Where the clients' trust anchor came from: the first broker's ca.crt, or its bundle endpoint. */
  caSource: 'ca.crt' | '/v1/bundle' | undefined;
  agent!: { cert: string; key: string };
  private idTokens: string[] = [];
  private seq = 0;

  private constructor(
    readonly store: TestStore,
    readonly work: string,
  ) {
    this.base = {
      WRIT_TRUST_DOMAIN: TRUST_DOMAIN,
      WRIT_ADMIN_TOKEN: this.adminToken,
      WRIT_ISSUER: ISSUER,
      WRIT_POLICY_FILE: join(work, 'writ.cedar'),
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
      ...(SHARED_CA === 'kek' ? { WRIT_KEK_FILE: join(work, 'kek') } : {}),
    };
  }

  /** Writes the shared files and signs the users' ID tokens; starts nothing. */
  static async prepare(store: TestStore): Promise<HaCluster> {
    const work = join(store.dir, 'ha');
    mkdirSync(work, { recursive: true });
    const c = new HaCluster(store, work);
    const idp = await generateKeyPair('ES256');
    writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] }));
    writeFileSync(join(work, 'writ.cedar'), POLICIES);
    if (SHARED_CA === 'kek') writeFileSync(join(work, 'kek'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o400 });
    c.idTokens = await Promise.all(
      Array.from({ length: USERS }, (_, i) =>
        new SignJWT({ groups: ['staff'], sid: `s-${i}` })
          .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
          .setIssuer(IDP)
          .setAudience('writ')
          .setSubject(`user-${i}`)
          .setIssuedAt()
          .setExpirationTime('30m')
          .sign(idp.privateKey),
      ),
    );
    return c;
  }

  /** The environment of a new process: the shared settings plus its own directories. */
  private envFor(name: string): Record<string, string> {
    const own = join(this.work, `proc-${name}`);
    const env = brokerEnv(own, this.store.databaseUrl, this.base);
    return SHARED_CA === 'dir' ? { ...env, WRIT_CA_DIR: join(this.work, 'certs') } : env;
  }

  /** Starts a broker process and waits until it listens and /readyz answers 200. */
  async start(name = `p${++this.seq}`): Promise<Broker> {
    const t0 = now();
    const proc = spawnWrit(this.work, this.envFor(name));
    this.procs.push(proc);
    const { apiUrl, opsUrl } = await within(`${name} listening`, 30_000, proc.ready);
    await within(`${name} /readyz 200`, 20_000, readyz(opsUrl));
    if (!this.caPem) this.caPem = await this.loadCaPem(apiUrl, name);
    const pool = this.agent ? this.agentPool(apiUrl) : (undefined as unknown as Pool);
    const b: Broker = { name, proc, apiUrl, opsUrl, pool, readyAt: now(), startMs: Math.round(now() - t0) };
    this.brokers.push(b);
    return b;
  }

  private agentPool(apiUrl: string): Pool {
    // More connections than the load and a burst ever need at once, so no request waits in the client for one;
    // idle ones are dropped after 2 s, before the server's keep-alive timeout (5 s) could race a request.
    return new Pool(apiUrl, { connections: 32, pipelining: 1, keepAliveTimeout: 2000, keepAliveMaxTimeout: 2000, connect: { ca: this.caPem, cert: this.agent.cert, key: this.agent.key } });
  }

  /**
   * The CA certificate clients trust: the file the first broker wrote, else the PEM bundle it
   * serves (fetched without verification from the process this test just started on loopback;
   * every later connection verifies against it).
   */
  private async loadCaPem(apiUrl: string, name: string): Promise<string> {
    const dir = SHARED_CA === 'dir' ? join(this.work, 'certs') : join(this.work, `proc-${name}`, 'certs');
    if (existsSync(join(dir, 'ca.crt'))) {
      this.caSource = 'ca.crt';
      return readFileSync(join(dir, 'ca.crt'), 'utf8');
    }
    this.caSource = '/v1/bundle';
    const res = await httpsRequest(`${apiUrl}/v1/bundle`, { ca: '', insecure: true, headers: { accept: 'application/x-pem-file' } });
    if (res.status !== 200 || !res.body.includes('BEGIN CERTIFICATE')) throw new Error(`no ca.crt in ${dir} and no PEM bundle from ${apiUrl}: ${res.status}`);
    return res.body;
  }

  /** The first broker alone (it migrates and creates the CA), then the resource, the connector's SVID. */
  async bootstrap(): Promise<Broker> {
    const first = await this.start();
    const admin = (path: string, body: unknown) =>
      httpsRequest(`${first.apiUrl}${path}`, {
        ca: this.caPem,
        method: 'POST',
        headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => {
        if (r.status >= 300) throw new Error(`${path}: ${r.status} ${r.body.slice(0, 300)}`);
        return JSON.parse(r.body) as Record<string, unknown>;
      });
    await admin('/v1/admin/resources', { uri: RESOURCE, spiffe_id: `spiffe://${TRUST_DOMAIN}/mcp/tools`, tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] });
    const entry = await admin('/v1/admin/entries', { spiffe_id: CONNECTOR, metadata: { owner: 'platform' } });
    const join1 = await admin('/v1/admin/join-tokens', { entry_id: entry.id });
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'agent.key', '-out', 'agent.csr', '-subj', '/CN=agent'], { cwd: this.work });
    const attested = await httpsRequest(`${first.apiUrl}/v1/attest`, {
      ca: this.caPem,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ attestor: 'join_token', evidence: { token: join1.token }, csr: readFileSync(join(this.work, 'agent.csr'), 'utf8') }),
    });
    if (attested.status !== 201) throw new Error(`attest: ${attested.status} ${attested.body.slice(0, 300)}`);
    this.agent = { cert: (JSON.parse(attested.body) as { svid: string }).svid, key: readFileSync(join(this.work, 'agent.key'), 'utf8') };
    first.pool = this.agentPool(first.apiUrl);
    return first;
  }

  /** The form body of one RFC 8693 exchange, for a user picked by `i`. */
  exchangeBody(i: number): string {
    return new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: this.idTokens[i % this.idTokens.length]!,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: RESOURCE,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]),
    }).toString();
  }

  /** One token exchange over the broker's keep-alive pool; never throws. */
  async exchange(b: Broker, i: number, kind: Outcome['kind']): Promise<Outcome> {
    const o: Outcome = { broker: b.name, kind, startedAt: now(), endedAt: 0 };
    try {
      const res = await b.pool.request({ method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: this.exchangeBody(i) });
      const text = await res.body.text();
      settle(o, res.statusCode, text);
    } catch (err) {
      o.errorCode = (err as { code?: string }).code ?? (err as Error).name;
      o.error = (err as Error).message;
    }
    o.endedAt = now();
    return o;
  }

  /**
   * An exchange on its own connection whose body is held back: it sends its headers with
   * `Expect: 100-continue`, so `accepted` resolves once the broker's HTTP server has taken
   * the request (it answers 100 Continue); the body goes only when `release` resolves.
   */
  slowExchange(b: Broker, i: number, release: Promise<void>): { accepted: Promise<void>; outcome: Promise<Outcome> } {
    const o: Outcome = { broker: b.name, kind: 'slow', startedAt: now(), endedAt: 0 };
    const body = this.exchangeBody(i);
    let onAccepted!: () => void;
    let onRefused!: (e: Error) => void;
    const accepted = new Promise<void>((res, rej) => ((onAccepted = res), (onRefused = rej)));
    accepted.catch(() => undefined);
    const outcome = new Promise<Outcome>((resolve) => {
      const done = () => ((o.endedAt = now()), resolve(o));
      const req = httpsRequestRaw(
        `${b.apiUrl}/oauth2/token`,
        {
          method: 'POST',
          agent: false,
          ca: this.caPem,
          cert: this.agent.cert,
          key: this.agent.key,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => (settle(o, res.statusCode!, text), done()));
          res.on('error', (err: NodeJS.ErrnoException) => ((o.errorCode = err.code ?? err.name), (o.error = err.message), done()));
        },
      );
      req.on('continue', () => {
        onAccepted();
        void release.then(() => req.end(body));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        o.errorCode = err.code ?? err.name;
        o.error = err.message;
        onRefused(err);
        done();
      });
      req.flushHeaders();
    });
    return { accepted, outcome };
  }

  /** RFC 7662 introspection of `tokens` on `b` with the admin credential, 8 at a time. */
  async introspect(b: Broker, tokens: string[]): Promise<{ active: number; inactive: string[]; failed: string[] }> {
    const pool = new Pool(b.apiUrl, { connections: 8, connect: { ca: this.caPem } });
    const inactive: string[] = [];
    const failed: string[] = [];
    let active = 0;
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < tokens.length) {
            const token = tokens[next++]!;
            const res = await pool.request({
              method: 'POST',
              path: '/oauth2/introspect',
              headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({ token }).toString(),
            });
            const text = await res.body.text();
            const body = res.statusCode === 200 ? (JSON.parse(text) as { active?: boolean; jti?: string }) : undefined;
            if (!body) failed.push(`${jtiOf(token)}: ${res.statusCode}`);
            else if (body.active === true && body.jti === jtiOf(token)) active++;
            else inactive.push(jtiOf(token));
          }
        }),
      );
    } finally {
      await pool.close();
    }
    return { active, inactive, failed };
  }

  /** Lease rows for `jtis`, straight from PostgreSQL. */
  async leases(jtis: string[]): Promise<Map<string, { kind: string; revoked: boolean; live: boolean }>> {
    const db = new Client({ connectionString: this.store.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query<{ id: string; kind: string; revoked: boolean; live: boolean }>(
        'SELECT id::text AS id, kind, revoked_at IS NOT NULL AS revoked, expires_at > now() AS live FROM lease WHERE id = ANY($1::uuid[])',
        [jtis],
      );
      return new Map(rows.map((r) => [r.id, { kind: r.kind, revoked: r.revoked, live: r.live }]));
    } finally {
      await db.end();
    }
  }

  /** Kills every process still running and closes the pools (afterAll). */
  async close(): Promise<void> {
    for (const p of this.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exit));
    await Promise.all(this.brokers.map((b) => b.pool?.destroy().catch(() => undefined)));
  }
}

function settle(o: Outcome, status: number, text: string): void {
  o.status = status;
  if (status === 200) {
    o.token = (JSON.parse(text) as { access_token: string }).access_token;
    o.jti = jtiOf(o.token);
  } else {
    // OAuth errors carry no secret: {error, error_description}.
    o.errorCode = `http ${status}`;
    o.error = text.slice(0, 300);
  }
}

/** Polls /readyz until 200. */
export async function readyz(opsUrl: string): Promise<void> {
  for (;;) {
    try {
      const res = await fetch(`${opsUrl}/readyz`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
}

/**
 * A steady load over the rotation: `workers` loops, each with one exchange in flight and a
 * pause between them. A request that fails at the socket takes its broker out of rotation
 * (as readiness would), so a dead endpoint is not retried forever.
 */
export class Load {
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private running: Promise<void> | undefined;
  private tracked: Promise<unknown>[] = [];
  private n = 0;
  startedAt = 0;
  stoppedAt = 0;

  constructor(
    private readonly cluster: HaCluster,
    readonly rotation: Rotation,
    private readonly opts: { workers: number; pauseMs: number },
  ) {}

  start(): void {
    this.startedAt = now();
    this.running = Promise.all(
      Array.from({ length: this.opts.workers }, async () => {
        while (!this.stopped) {
          const b = this.rotation.next();
          if (!b) {
            await sleep(10);
            continue;
          }
          const o = await this.cluster.exchange(b, this.n++, 'load');
          this.outcomes.push(o);
          if (isSocketError(o)) this.rotation.remove(b);
          await sleep(this.opts.pauseMs);
        }
      }),
    ).then(() => undefined);
  }

  /** Records an outcome of a request sent outside the loops (bursts). */
  track(p: Promise<Outcome>): Promise<Outcome> {
    const q = p.then((o) => {
      this.outcomes.push(o);
      const b = this.cluster.brokers.find((x) => x.name === o.broker);
      if (b && isSocketError(o)) this.rotation.remove(b);
      return o;
    });
    this.tracked.push(q);
    return q;
  }

  /** A burst of `count` exchanges to `b`, not awaited. */
  burst(b: Broker, count: number): Promise<Outcome>[] {
    return Array.from({ length: count }, () => this.track(this.cluster.exchange(b, this.n++, 'burst')));
  }

  /** Waits until each of `brokers` answered at least `n` requests of the steady load with 200. */
  async served(brokers: Broker[], n: number): Promise<void> {
    const ok = (b: Broker) => this.outcomes.filter((o) => o.broker === b.name && o.kind === 'load' && o.status === 200).length;
    await within(`each of ${brokers.map((b) => b.name).join(', ')} serving ${n} requests`, 30_000, (async () => {
      while (!brokers.every((b) => ok(b) >= n)) await sleep(25);
    })());
  }

  /** A held exchange to `b` (see HaCluster.slowExchange), tracked. */
  slow(b: Broker, release: Promise<void>): { accepted: Promise<void>; outcome: Promise<Outcome> } {
    const s = this.cluster.slowExchange(b, this.n++, release);
    return { accepted: s.accepted, outcome: this.track(s.outcome) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await Promise.all(this.tracked);
    this.stoppedAt = now();
  }
}

export interface Drained {
  readonly broker: Broker;
  /** When SIGTERM was sent. */
  readonly termAt: number;
  readonly exit: { code: number | null; signal: NodeJS.Signals | null };
  /** From SIGTERM to exit, ms. */
  readonly drainMs: number;
  /** Burst requests that were still running when SIGTERM was sent. */
  readonly inFlightAtTerm: number;
  readonly burst: Outcome[];
  readonly slow: Outcome[];
}

/**
 * Takes `b` out as Kubernetes does: out of rotation, the preStop delay, then SIGTERM, with
 * requests in flight at that moment: a burst on its keep-alive connections and `slow`
 * requests that the broker has provably taken (100 Continue) whose bodies follow the signal.
 * Resolves once the process has exited.
 */
export async function drain(load: Load, b: Broker, opts: { burst?: number; slow?: number } = {}): Promise<Drained> {
  load.rotation.remove(b);
  await sleep(PRE_STOP_MS);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const burst = load.burst(b, opts.burst ?? 8);
  const slow = Array.from({ length: opts.slow ?? 3 }, () => load.slow(b, released));
  await within(`${b.name}: 100 Continue for the held requests`, 10_000, Promise.all(slow.map((s) => s.accepted)));
  const termAt = now();
  b.proc.child.kill('SIGTERM');
  await sleep(150);
  release();
  const [burstOutcomes, slowOutcomes] = await Promise.all([Promise.all(burst), Promise.all(slow.map((s) => s.outcome))]);
  const exit = await within(`${b.name} exit after SIGTERM`, 30_000, b.proc.exit);
  const inFlightAtTerm = burstOutcomes.filter((o) => o.endedAt > termAt).length;
  return { broker: b, termAt, exit, drainMs: Math.round(now() - termAt), inFlightAtTerm, burst: burstOutcomes, slow: slowOutcomes };
}

export interface Killed {
  readonly broker: Broker;
  readonly killAt: number;
  readonly exit: { code: number | null; signal: NodeJS.Signals | null };
  readonly burst: Outcome[];
}

/** SIGKILL while `b` is in rotation, with a burst of requests sent to it just before. */
export async function kill9(load: Load, b: Broker, burst = 6): Promise<Killed> {
  const sent = load.burst(b, burst);
  await sleep(15);
  const killAt = now();
  b.proc.child.kill('SIGKILL');
  const exit = await within(`${b.name} exit after SIGKILL`, 10_000, b.proc.exit);
  return { broker: b, killAt, exit, burst: await Promise.all(sent) };
}

/** Latency percentiles (ms) of the answered requests of the steady load. */
export function latency(outcomes: Outcome[]): { p50: number; p99: number; max: number } {
  const ms = outcomes.filter((o) => o.kind === 'load' && o.status === 200).map((o) => o.endedAt - o.startedAt).sort((x, y) => x - y);
  const at = (p: number) => Math.round(ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(p * ms.length) - 1))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), max: Math.round(ms.at(-1) ?? 0) };
}

/** Counts for the report: requests by broker and result. */
export function tally(outcomes: Outcome[]): Record<string, Record<string, number>> {
  const t: Record<string, Record<string, number>> = {};
  for (const o of outcomes) {
    const key = o.status === 200 ? 'ok' : (o.errorCode ?? 'unknown');
    (t[o.broker] ??= {})[key] = (t[o.broker]![key] ?? 0) + 1;
  }
  return t;
}
