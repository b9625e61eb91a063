import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../../src/core/process';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';
import { brokerEnv, MAIN, spawnWrit, type WritProcess } from '../support/process';
import { scrape, valueOf } from '../support/metrics';

/** Several worker processes need PostgreSQL (the embedded database serves one process). */
const describePg = usingPostgres() ? describe : describe.skip;
if (!usingPostgres()) test.todo('WRIT_WORKERS with PostgreSQL: skipped, TEST_DATABASE_URL is not set');

const fresh = () => mkdtempSync(join(tmpdir(), 'writ-workers-'));
const running: WritProcess[] = [];
const stores: TestStore[] = [];
const start = (cwd: string, env: Record<string, string | undefined>) => {
  const p = spawnWrit(cwd, env);
  running.push(p);
  return p;
};

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
});
afterAll(async () => {
  for (const p of running) {
    for (const pid of workerPids(p)) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
  for (const s of stores) await s.drop();
});

async function waitFor<T>(what: string, probe: () => T | undefined | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Log = Record<string, unknown>;
const listening = (p: WritProcess): Log[] => p.logs.filter((l) => l.msg === 'writ listening');
const workerPids = (p: WritProcess): number[] => [...new Set(p.logs.map((l) => l.pid).filter((pid): pid is number => typeof pid === 'number'))];

describe('WRIT_WORKERS refusals', () => {
  it('several workers without DATABASE_URL: exit 1 with one line naming WRIT_WORKERS', async () => {
    const dir = fresh();
    const p = start(dir, brokerEnv(dir, undefined, { WRIT_WORKERS: '2' }));
    expect(await p.exit).toEqual({ code: 1, signal: null });
    expect(p.stderr()).toMatch(/^writ: WRIT_WORKERS: 2 worker processes need DATABASE_URL: .*set DATABASE_URL.*\n$/);
    expect(p.logs).toEqual([]);
    expect(existsSync(join(dir, 'certs'))).toBe(false); // the primary touched no CA
  });

  it('a worker that fails to start: exit 1 with its one line, and no other worker started', async () => {
    const dir = fresh();
    const p = start(dir, brokerEnv(dir, 'postgresql://postgres@127.0.0.1:1/writ', { WRIT_WORKERS: '3' }));
    expect(await p.exit).toEqual({ code: 1, signal: null });
    expect(p.stderr()).toBe('writ: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:1/writ: ECONNREFUSED\n');
  });
});

describePg('WRIT_WORKERS=2 on PostgreSQL', () => {
  let dir: string;
  let p: WritProcess;
  let ca: string;
  let apiUrl: string;
  let opsUrl: string;

  beforeAll(async () => {
    const store = await createTestStore();
    stores.push(store);
    dir = fresh();
    p = start(dir, brokerEnv(dir, store.databaseUrl, { WRIT_WORKERS: '2', WRIT_TRUST_DOMAIN: 'workers.test' }));
    ({ apiUrl, opsUrl } = await p.ready);
    await waitFor('two workers listening', () => listening(p).length >= 2);
    ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
  });

  it('starts the first worker, then the second, sharing the ports, the CA and the database', async () => {
    const [first, second] = listening(p);
    expect(first).toMatchObject({ service: 'writ', worker: 1, api: apiUrl, ops: opsUrl });
    expect(second).toMatchObject({ service: 'writ', worker: 2, api: apiUrl, ops: opsUrl });
    expect(first!.pid).not.toBe(second!.pid);
    for (const pid of [first!.pid, second!.pid] as number[]) {
      expect(pid).not.toBe(p.child.pid);
      expect(processAlive(pid)).toBe(true);
    }
    // The second began only once the first listened: the first applied the migrations and created the CA.
    const firstLogOf2 = p.logs.findIndex((l) => l.worker === 2);
    expect(firstLogOf2).toBeGreaterThan(p.logs.indexOf(first!));
    const ready = p.logs.filter((l) => l.msg === 'database ready');
    expect((ready.find((l) => l.worker === 1)!.applied as string[]).length).toBeGreaterThan(0);
    expect(ready.find((l) => l.worker === 2)!.applied).toEqual([]);
    expect(readdirSync(join(dir, 'certs')).filter((f) => f.endsWith('.crt'))).toEqual(['ca.crt']);
    // The admin token was generated once, by the first worker.
    expect(p.stderr()).toMatch(/^writ: generated the bootstrap admin token \(kept in \S+bootstrap-admin-token until its first use\): writ_admin_\S+\n$/);

    // Exactly one CA in the bundle, whichever worker answers; connections reach both workers.
    const before = p.logs.length;
    for (let i = 0; i < 6; i++) {
      const res = await httpsRequest(`${apiUrl}/v1/bundle`, { ca });
      expect(res.status).toBe(200);
      const keys = (JSON.parse(res.body) as { keys: { use: string; x5c?: string[] }[] }).keys;
      expect(keys.filter((k) => k.use === 'x509-svid')).toHaveLength(1);
      expect(ca.replace(/-----[^-]+-----|\s/g, '')).toBe(keys.find((k) => k.use === 'x509-svid')!.x5c![0]);
    }
    const servedBy = await waitFor('six request logs', () => {
      const requests = p.logs.slice(before).filter((l) => l.msg === 'request');
      return requests.length >= 6 && new Set(requests.map((l) => l.pid));
    });
    expect(servedBy).toEqual(new Set([first!.pid, second!.pid]));
    expect((await fetch(`${opsUrl}/readyz`)).status).toBe(200);
  });

  it('answers /metrics for the whole pod: whichever worker a scrape reaches, the sum over both', async () => {
    // The six bundle requests above were served by both workers, so neither counted six alone:
    // every scrape reporting six is the primary's sum, not the share of the worker it reached.
    const requests = { method: 'GET', route: '/v1/bundle', status: '200' };
    for (let i = 0; i < 6; i++) {
      const { samples } = await scrape(opsUrl);
      expect(valueOf(samples, 'writ_http_requests_total', requests)).toBe(6);
      expect(valueOf(samples, 'writ_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(2); // each worker's pool, summed
      expect(valueOf(samples, 'writ_revocation_feed_connected')).toBe(1); // the least connected worker's
      expect(valueOf(samples, 'writ_authority_expiry_seconds', { authority: 'x509_ca' })).toBeGreaterThan(0);
    }
  });

  it('replaces a worker that is killed, and keeps answering', async () => {
    const [first, second] = listening(p);
    process.kill(first!.pid as number, 'SIGKILL');
    const line = `writ: worker 1 (pid ${String(first!.pid)}) was killed by SIGKILL; starting a replacement in 0.25 s\n`;
    await waitFor('the supervisor noticing', () => p.stderr().includes(line));
    // The other worker answers meanwhile.
    expect((await httpsRequest(`${apiUrl}/v1/bundle`, { ca })).status).toBe(200);
    const replacement = await waitFor('a replacement listening', () => listening(p)[2]);
    expect(replacement).toMatchObject({ worker: 3, api: apiUrl, ops: opsUrl });
    expect(replacement.pid).not.toBe(first!.pid);
    expect(processAlive(replacement.pid as number)).toBe(true);
    expect(processAlive(second!.pid as number)).toBe(true);
    for (let i = 0; i < 4; i++) expect((await httpsRequest(`${apiUrl}/v1/bundle`, { ca })).status).toBe(200);
    expect((await fetch(`${opsUrl}/healthz`)).status).toBe(200);
    expect(p.stderr().match(/bootstrap admin token/g)).toHaveLength(1);
  });

  it('SIGTERM to the primary drains every worker and exits 0', async () => {
    const workers = listening(p).slice(1).map((l) => l.pid as number);
    p.child.kill('SIGTERM');
    expect(await p.exit).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(processAlive(pid)).toBe(false);
    expect(p.logs.filter((l) => l.msg === 'shut down').map((l) => l.pid).sort()).toEqual([...workers].sort());
    expect(p.stderr()).toContain('writ: SIGTERM received, stopping 2 workers\n');
  });
});

describePg('WRIT_WORKERS=2, a signal during start-up', () => {
  it('the starting worker comes up, shuts down, and no other is started: exit 0', async () => {
    const store = await createTestStore();
    stores.push(store);
    const dir = fresh();
    const p = start(dir, brokerEnv(dir, store.databaseUrl, { WRIT_WORKERS: '2' }));
    await waitFor('the first worker opening the database', () => p.logs.some((l) => l.msg === 'database ready'));
    p.child.kill('SIGTERM');
    expect(await p.exit).toEqual({ code: 0, signal: null });
    const pids = workerPids(p);
    expect(pids).toHaveLength(1);
    expect(processAlive(pids[0]!)).toBe(false);
    expect(p.logs.some((l) => l.worker === 2)).toBe(false);
  });
});
