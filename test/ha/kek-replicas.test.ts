import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { Client } from 'pg';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';
import { brokerEnv, spawnWrit, type WritProcess } from '../support/process';

const ADMIN = 'writ_admin_kek_replicas_token_0123456789';
const TD = 'ha.test';
const describePg = usingPostgres() ? describe : describe.skip;

interface Bundle {
  spiffe_sequence: number;
  keys: { use: string; kid?: string; x5c?: string[] }[];
}

describePg('three broker processes sharing one KEK (no shared files)', () => {
  let store: TestStore;
  let dir: string;
  const procs: WritProcess[] = [];
  const urls: string[] = [];

  beforeAll(async () => {
    store = await createTestStore();
    dir = mkdtempSync(join(tmpdir(), 'writ-kek-replicas-'));
    writeFileSync(join(dir, 'kek'), randomBytes(32).toString('base64'), { mode: 0o400 });
    // All three start at once, each with its own WRIT_CA_DIR, as pods of a Deployment do.
    for (const name of ['a', 'b', 'c']) {
      procs.push(spawnWrit(dir, { ...brokerEnv(join(dir, name), store.databaseUrl), WRIT_KEK_FILE: join(dir, 'kek'), WRIT_ADMIN_TOKEN: ADMIN, WRIT_TRUST_DOMAIN: TD }));
    }
    for (const p of procs) urls.push((await p.ready).apiUrl);
  });
  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exit));
    await store?.drop();
  });

  /** Requests trust nothing but what a bundle names; the first bundle is fetched on trust (as a bootstrap would be). */
  let trust = '';
  const call = (base: string, path: string, opts: { body?: unknown; as?: { cert: string; key: string }; accept?: string } = {}) =>
    httpsRequest(`${base}${path}`, {
      ca: trust,
      insecure: trust === '',
      method: opts.body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json', accept: opts.accept ?? 'application/json', ...(opts.as ? {} : { authorization: `Bearer ${ADMIN}` }) },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      ...(opts.as && { cert: opts.as.cert, key: opts.as.key }),
    });
  const bundleOf = async (base: string): Promise<Bundle> => JSON.parse((await call(base, '/v1/bundle')).body) as Bundle;
  const x509Ids = (b: Bundle) => b.keys.filter((k) => k.use === 'x509-svid').map((k) => k.x5c![0]!).sort();

  async function svidFrom(base: string, name: string): Promise<{ cert: string; key: string; chain: string[] }> {
    const entry = JSON.parse((await call(base, '/v1/admin/entries', { body: { spiffe_id: `spiffe://${TD}/${name}` } })).body);
    const token = JSON.parse((await call(base, '/v1/admin/join-tokens', { body: { entry_id: entry.id } })).body);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: dir });
    const res = await call(base, '/v1/attest', { body: { attestor: 'join_token', evidence: { token: token.token }, csr: readFileSync(join(dir, `${name}.csr`), 'utf8') } });
    expect(res.status).toBe(201);
    const svid = JSON.parse(res.body).svid as string;
    return { cert: svid, key: readFileSync(join(dir, `${name}.key`), 'utf8'), chain: svid.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)! };
  }

  /** Whether `leaf` verifies against one of the bundle's X.509 authorities. */
  const verifiesWith = (leaf: string, bundle: Bundle) =>
    bundle.keys
      .filter((k) => k.use === 'x509-svid')
      .map((k) => new X509Certificate(Buffer.from(k.x5c![0]!, 'base64')))
      .some((anchor) => new X509Certificate(leaf).checkIssued(anchor) && new X509Certificate(leaf).verify(anchor.publicKey));

  async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
    const start = Date.now();
    while (!(await check())) {
      if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
    return Date.now() - start;
  }

  it('one process creates the CA; all three serve the same bundle', async () => {
    const bundles = await Promise.all(urls.map(bundleOf));
    expect(new Set(bundles.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(x509Ids(bundles[0]!)).toHaveLength(1);
    trust = (await call(urls[0]!, '/v1/bundle', { accept: 'application/x-pem-file' })).body;
    const created = procs.flatMap((p) => p.logs).filter((l) => l.msg === 'authority keys sealed in the database under the KEK');
    expect(created).toHaveLength(3);
  });

  it('a rotation through one is in the bundle of all three within a second; after activation, what any of them signs verifies with every bundle', async () => {
    const before = await bundleOf(urls[0]!);
    const rotate = await call(urls[0]!, '/v1/admin/ca/rotate', { body: { overlap: 3 } });
    expect(rotate.status).toBe(202);
    const { activates_at: activatesAt, jwt_authority: jwtAuthority, spiffe_sequence: sequence } = JSON.parse(rotate.body);
    const seen = await within(1000, async () => (await Promise.all(urls.map(bundleOf))).every((b) => b.spiffe_sequence >= sequence && x509Ids(b).length === 2));
    expect(seen).toBeLessThanOrEqual(1000);
    for (const b of await Promise.all(urls.map(bundleOf))) expect(x509Ids(b)).toEqual(expect.arrayContaining(x509Ids(before)));
    trust = (await call(urls[1]!, '/v1/bundle', { accept: 'application/x-pem-file' })).body; // both roots now

    // After activation every replica signs with the new authorities within a second, whichever one activated.
    await new Promise((r) => setTimeout(r, Math.max(0, new Date(activatesAt).getTime() - Date.now())));
    const oldRoot = new X509Certificate(Buffer.from(x509Ids(before)[0]!, 'base64'));
    const svids: { cert: string; key: string; chain: string[] }[] = [];
    await within(1000, async () => {
      svids.length = 0;
      for (const [i, base] of urls.entries()) svids.push(await svidFrom(base, `after-${i}-${randomBytes(3).toString('hex')}`));
      return svids.every((s) => !new X509Certificate(s.chain[0]!).checkIssued(oldRoot));
    });
    const bundles = await Promise.all(urls.map(bundleOf));
    for (const svid of svids) for (const b of bundles) expect(verifiesWith(svid.chain[0]!, b)).toBe(true);

    // JWT-SVIDs from each replica carry the new key and verify with every replica's bundle.
    for (const [i, base] of urls.entries()) {
      const res = await call(base, '/v1/jwt-svid', { body: { audience: ['spiffe://ha.test/db'] }, as: svids[i]! });
      expect(res.status).toBe(201);
      const token = JSON.parse(res.body).token as string;
      for (const b of bundles) {
        const jwks = { keys: b.keys.filter((k) => k.use === 'jwt-svid').map((k) => ({ ...k, use: 'sig' })) } as JSONWebKeySet;
        const { protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), { audience: 'spiffe://ha.test/db' });
        expect(protectedHeader.kid).toBe(jwtAuthority);
      }
    }
  });

  it('a replica whose listener was cut follows a rotation made meanwhile once it reconnects (a reload, not only a notification)', async () => {
    const before = await bundleOf(urls[1]!);
    const killer = new Client({ connectionString: store.databaseUrl });
    await killer.connect();
    try {
      // Cut B's and C's listening connections, then rotate through A at once: what they missed is reloaded on reconnection.
      await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'writ-revocation-watch' AND datname = current_database() AND pid <> pg_backend_pid()");
    } finally {
      await killer.end();
    }
    const rotate = await call(urls[0]!, '/v1/admin/ca/rotate', { body: { overlap: 2 } });
    expect(rotate.status).toBe(202);
    const { activates_at: activatesAt, spiffe_sequence: sequence } = JSON.parse(rotate.body);
    trust = (await call(urls[0]!, '/v1/bundle', { accept: 'application/x-pem-file' })).body; // the new root too, before anything chains to it
    await within(1900, async () => (await Promise.all(urls.slice(1).map(bundleOf))).every((b) => b.spiffe_sequence >= sequence && b.spiffe_sequence > before.spiffe_sequence));
    // Let it activate before the next scenario rotates again.
    await new Promise((r) => setTimeout(r, Math.max(0, new Date(activatesAt).getTime() - Date.now()) + 500));
  });

  it('a rotation prepared by a replica that is then killed still activates on time on the others', async () => {
    const before = await bundleOf(urls[1]!);
    const rotate = await call(urls[0]!, '/v1/admin/ca/rotate', { body: { overlap: 2 } });
    expect(rotate.status).toBe(202);
    const { activates_at: activatesAt, x509_authority: x509Authority } = JSON.parse(rotate.body);
    procs[0]!.child.kill('SIGKILL');
    await procs[0]!.exit;
    const survivors = urls.slice(1);
    await within(1000, async () => (await Promise.all(survivors.map(bundleOf))).every((b) => b.spiffe_sequence > before.spiffe_sequence));
    trust = (await call(urls[1]!, '/v1/bundle', { accept: 'application/x-pem-file' })).body;
    await new Promise((r) => setTimeout(r, Math.max(0, new Date(activatesAt).getTime() - Date.now())));
    const prepared = (await Promise.all(survivors.map(bundleOf)))[0]!.keys.filter((k) => k.use === 'x509-svid').map((k) => new X509Certificate(Buffer.from(k.x5c![0]!, 'base64')));
    const newRoot = prepared.find((c) => c.fingerprint256.replace(/:/g, '').toLowerCase() === x509Authority)!;
    expect(newRoot).toBeDefined();
    await within(1000, async () => {
      const svids = await Promise.all(survivors.map((base, i) => svidFrom(base, `orphan-${i}-${randomBytes(3).toString('hex')}`)));
      return svids.every((s) => new X509Certificate(s.chain[0]!).checkIssued(newRoot));
    });
  });
});
