import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';
import { brokerEnv, spawnWrit, type WritProcess } from '../support/process';

const ADMIN = 'writ_admin_replica_test_token_0123456789';
const describePg = usingPostgres() ? describe : describe.skip;

describePg('two broker processes on one PostgreSQL', () => {
  let store: TestStore;
  let dir: string;
  let a: WritProcess;
  let b: WritProcess;
  let urlA: string;
  let urlB: string;
  let ca: string;

  beforeAll(async () => {
    store = await createTestStore();
    dir = mkdtempSync(join(tmpdir(), 'writ-replicas-'));
    const env = brokerEnv(dir, store.databaseUrl, { WRIT_ADMIN_TOKEN: ADMIN, WRIT_TRUST_DOMAIN: 'replicas.test' });
    a = spawnWrit(dir, env);
    urlA = (await a.ready).apiUrl;
    b = spawnWrit(dir, env);
    urlB = (await b.ready).apiUrl;
    ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
  });
  afterAll(async () => {
    for (const p of [a, b]) if (p && p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all([a?.exit, b?.exit]);
    await store?.drop();
  });

  const json = (base: string, path: string, body?: unknown, as?: { cert: string; key: string }) =>
    httpsRequest(`${base}${path}`, {
      ca,
      method: body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json', ...(as ? {} : { authorization: `Bearer ${ADMIN}` }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      ...(as && { cert: as.cert, key: as.key }),
    }).then((r) => ({ status: r.status, json: r.body ? JSON.parse(r.body) : undefined }));

  async function connector(name: string) {
    const entry = await json(urlA, '/v1/admin/entries', { spiffe_id: `spiffe://replicas.test/${name}` });
    const join1 = await json(urlA, '/v1/admin/join-tokens', { entry_id: entry.json.id });
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: dir });
    const res = await json(urlA, '/v1/attest', { attestor: 'join_token', evidence: { token: join1.json.token }, csr: readFileSync(join(dir, `${name}.csr`), 'utf8') });
    return { spiffeId: `spiffe://replicas.test/${name}`, cert: res.json.svid as string, key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  }

  /** Polls B until it refuses the SVID, for at most a second. */
  async function refusedByBWithin1s(svid: { cert: string; key: string }): Promise<boolean> {
    const deadline = Date.now() + 1000;
    do {
      if ((await json(urlB, '/v1/jwt-svid', { audience: ['x'] }, svid)).status === 401) return true;
    } while (Date.now() < deadline);
    return false;
  }

  it('a kill switch pulled on one is enforced by the other within a second', async () => {
    const svid = await connector('one');
    expect((await json(urlB, '/v1/jwt-svid', { audience: ['x'] }, svid)).status).toBe(201);
    expect((await json(urlA, `/v1/admin/connectors/${encodeURIComponent(svid.spiffeId)}/disable`, { reason: 'test' })).status).toBe(200);
    expect(await refusedByBWithin1s(svid)).toBe(true);
  });

  it('still holds after the listener connections were killed and came back', async () => {
    const svid = await connector('two');
    const killer = new Client({ connectionString: store.databaseUrl });
    await killer.connect();
    await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'writ-revocation-watch' AND datname = current_database()");
    await killer.end();
    expect((await json(urlA, '/v1/admin/revocations', { connector: svid.spiffeId, reason: 'test' })).json.revoked).toBeGreaterThanOrEqual(1);
    expect(await refusedByBWithin1s(svid)).toBe(true);
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = (await fetch(`${(await b.ready).opsUrl}/readyz`)).status === 200;
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ready).toBe(true);
  });
});
