import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestStore, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';
import { brokerEnv, spawnWrit, MAIN, type WritProcess } from '../support/process';

/** Each test's brokers get a database of their own (a deployment shares one CA per database). */
const stores: TestStore[] = [];
const freshStore = async () => {
  const s = await createTestStore();
  stores.push(s);
  return s;
};
const running: WritProcess[] = [];
const start = (cwd: string, env: Record<string, string | undefined>) => {
  const p = spawnWrit(cwd, env);
  running.push(p);
  return p;
};

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
});
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const s of stores) await s.drop();
});

const fresh = () => mkdtempSync(join(tmpdir(), 'writ-proc-'));

/** Runs the broker expecting it to refuse to start; returns its stderr. */
async function refusal(env: Record<string, string | undefined>, cwd = fresh()): Promise<string> {
  const p = start(cwd, env);
  const { code } = await p.exit;
  expect(code).not.toBe(0);
  return p.stderr();
}

describe('start-up with bad configuration exits non-zero with one line naming the setting', () => {
  it.each([
    [{ WRIT_TRUST_DOMAIN: 'Not A Domain' }, /^writ: WRIT_TRUST_DOMAIN: "Not A Domain" is not a valid SPIFFE trust domain: .+\n$/],
    [{ WRIT_PORT: '99999' }, /^writ: WRIT_PORT: must be a port number from 0 to 65535, got "99999"\n$/],
    [{ WRIT_OPS_PORT: 'ops' }, /^writ: WRIT_OPS_PORT: must be a port number from 0 to 65535, got "ops"\n$/],
    [{ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/writ' }, /^writ: DATABASE_URL: cannot connect to PostgreSQL at 127\.0\.0\.1:1\/writ: ECONNREFUSED\n$/],
    [{ WRIT_CONFIG: '/nonexistent/writ.yaml' }, /^writ: WRIT_CONFIG: cannot read \/nonexistent\/writ.yaml: ENOENT\n$/],
  ])('%j', async (env, line) => {
    expect(await refusal(env)).toMatch(line);
  });

  it('a CA key that does not match its certificate', async () => {
    const dir = fresh();
    mkdirSync(join(dir, 'certs'));
    const cn = ['-subj', '/CN=writ.local', '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'];
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', 'certs/other.key', '-out', 'certs/ca.crt', ...cn], { cwd: dir });
    openssl(['req', '-x509', ...ec, '-keyout', 'certs/ca.key', '-out', 'certs/other.crt', ...cn], { cwd: dir });
    expect(await refusal(brokerEnv(dir, undefined))).toBe('writ: WRIT_CA_DIR: ca.key does not match the certificate in ca.crt\n');
  });

  it('unreadable CA files', async () => {
    const dir = fresh();
    mkdirSync(join(dir, 'certs', 'ca.crt'), { recursive: true });
    const err = await refusal(brokerEnv(dir, undefined));
    expect(err).toMatch(/^writ: WRIT_CA_DIR: cannot read .*ca.crt: EISDIR\n$/);
  });
});

describe('a fresh start (the README quick start)', () => {
  it('creates ./certs and ./data, shows the admin token once, and serves the bundle', async () => {
    const cwd = fresh();
    const store = await freshStore();
    const p = start(cwd, store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {});
    const { apiUrl, opsUrl } = await p.ready;
    expect((await fetch(`${opsUrl}/readyz`)).status).toBe(200);
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'), 'utf8');
    const bundle = await httpsRequest(`${apiUrl}/v1/bundle`, { ca });
    expect(bundle.status).toBe(200);
    expect(JSON.parse(bundle.body).keys).toHaveLength(2);
    expect(existsSync(join(cwd, 'data'))).toBe(!store.databaseUrl);
    expect(p.stderr()).toMatch(/^writ: generated the bootstrap admin token \(kept in \S+bootstrap-admin-token until its first use\): writ_admin_\S+\n$/);
    const tokenFile = /kept in (\S+) until/.exec(p.stderr())![1]!;
    p.child.kill('SIGTERM');
    expect(await p.exit).toEqual({ code: 0, signal: null });

    const again = start(cwd, store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {});
    await again.ready;
    again.child.kill('SIGTERM');
    expect((await again.exit).code).toBe(0);
    // No second admin token: where the unused one is kept.
    expect(again.stderr()).toBe(`writ: the bootstrap admin token has not been used yet; it is in ${tokenFile} (its first use deletes the file)\nwrit: SIGTERM received, shutting down\n`);
  });
});

/** Resolves when the broker logs that it stopped accepting connections (waits for the event; proves nothing by elapsed time). */
async function shutdownBegun(logs: readonly Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the broker did not log the start of its shutdown within 5 s');
}

describe('SIGTERM', () => {
  it('stops accepting, finishes the in-flight request, closes the database and exits 0', async () => {
    const dir = fresh();
    const store = await freshStore();
    const p = start(dir, brokerEnv(dir, store.databaseUrl));
    const { apiUrl, opsUrl } = await p.ready;
    const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
    // An in-flight request: headers sent, body still arriving.
    const body = JSON.stringify({ hello: 'world' });
    const inflight = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request(`${apiUrl}/v1/bundle`, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
      });
      req.on('error', reject);
      req.write(body.slice(0, 5));
      setTimeout(async () => {
        p.child.kill('SIGTERM');
        try {
          // Once the broker says it is draining (not after some time), it must still be running: the request is in flight.
          await shutdownBegun(p.logs);
          expect(p.child.exitCode).toBeNull();
          const readyz = await fetch(`${opsUrl}/readyz`);
          expect(readyz.status).toBe(503);
          expect(await readyz.json()).toEqual({ status: 'not ready', reason: 'shutting down' });
          await expect(httpsRequest(`${apiUrl}/v1/bundle`, { ca })).rejects.toThrow(/ECONNREFUSED/);
          expect(p.child.exitCode).toBeNull(); // still finishing the request
        } catch (err) {
          reject(err);
        }
        req.end(body.slice(5));
      }, 200); // the first bytes of the body reach the broker
    });
    expect(await inflight).toEqual({ status: 404, connection: 'close' });
    expect(await p.exit).toEqual({ code: 0, signal: null });
    expect(p.logs.at(-1)).toMatchObject({ msg: 'shut down' });
  });
});

describe('two brokers starting at once on one database', () => {
  it(
    process.env.TEST_DATABASE_URL
      ? 'both start; each migration is applied exactly once; both serve the same bundle'
      : 'the embedded database admits one: the other exits with a clear reason',
    async () => {
      const dir = fresh();
      const store = await freshStore();
      const env = brokerEnv(dir, store.databaseUrl);
      const a = start(dir, env);
      const b = start(dir, env);
      if (!store.databaseUrl) {
        const outcomes = await Promise.allSettled([a.ready, b.ready]);
        expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
        const loser = outcomes[0].status === 'rejected' ? a : b;
        expect(loser.stderr()).toMatch(/^writ: WRIT_DATA_DIR: the embedded database is in use by another Writ process \(pid \d+\); it serves one process only, set DATABASE_URL to run replicas\n$/);
        return;
      }
      const [ua, ub] = await Promise.all([a.ready, b.ready]);
      const client = new Client({ connectionString: store.databaseUrl });
      await client.connect();
      const { rows } = await client.query('SELECT migration_name, count(*)::int AS n FROM "_prisma_migrations" GROUP BY migration_name');
      await client.end();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.n === 1)).toBe(true);
      const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
      const [ba, bb] = await Promise.all([httpsRequest(`${ua.apiUrl}/v1/bundle`, { ca }), httpsRequest(`${ub.apiUrl}/v1/bundle`, { ca })]);
      expect(JSON.parse(ba.body)).toEqual(JSON.parse(bb.body));
    },
  );
});
