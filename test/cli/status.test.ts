import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectRefused, expectUsage, startCliBroker, writ, type CliBroker } from '../support/cli';

let b: CliBroker;

beforeAll(async () => {
  b = await startCliBroker(() => ({ WRIT_TRUST_DOMAIN: 'status.test' }));
});

afterAll(async () => {
  await b?.stop();
});

/** A plain HTTP server answering every request with `status` and `body` (a stand-in ops listener). */
async function fakeOps(status: number, body: unknown): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<string> {
  const { url, server } = await fakeOps(200, {});
  await new Promise<void>((r) => server.close(() => r()));
  return url;
}

describe('writ status', () => {
  it('reports ready (exit 0): readiness, both listeners, the CA\'s expiry, the JWT keys, and the policy version with admin credentials', async () => {
    const json = await writ(['status', '--ops', b.broker.opsUrl, '-o', 'json'], b.env);
    expect(json.code).toBe(0);
    const s = json.json();
    expect(s).toMatchObject({
      ready: true,
      readiness: { status: 'ready' },
      api: { url: b.broker.apiUrl, reachable: true },
      ops: { url: b.broker.opsUrl, reachable: true },
      spiffe_sequence: expect.any(Number),
      policy_version: 0,
    });
    expect(s.x509_authorities.length).toBeGreaterThanOrEqual(1);
    for (const a of s.x509_authorities) {
      const left = (Date.parse(a.not_after) - Date.now()) / 1000;
      expect(Math.abs(a.seconds_left - left)).toBeLessThan(60);
      expect(a.seconds_left).toBeGreaterThan(0);
    }
    expect(s.jwt_authorities).toEqual(expect.arrayContaining([expect.objectContaining({ kid: expect.any(String) })]));

    // WRIT_OPS names the ops listener; without admin credentials the policy version is unknown, not an error.
    const table = await writ(['status'], { ...b.anonymous, WRIT_OPS: b.broker.opsUrl });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ready +true$/m);
    expect(table.stdout).toMatch(/^policy_version +unknown \(needs admin credentials\)$/m);
    expect(table.stdout).toMatch(/^X\.509 AUTHORITY +NOT AFTER +SECONDS LEFT$/m);
    expect(table.stdout).toMatch(/^JWT KEY +KTY +CRV$/m);
    expect(table.stdout + table.stderr).not.toContain(b.adminToken);

    const policy = join(b.work, 'p.cedar');
    writeFileSync(policy, '@id("read-all")\npermit (principal, action == Writ::Action::"read", resource is Writ::Tool);\n');
    expect((await writ(['policy', 'set', policy], b.env)).code).toBe(0);
    expect((await writ(['status', '--ops', b.broker.opsUrl, '-o', 'json'], b.env)).json().policy_version).toBe(1);
    // A wrong admin token: the status still answers, with why the version is unknown (and not the token).
    const wrong = await writ(['status', '--ops', b.broker.opsUrl, '-o', 'json'], { ...b.env, WRIT_ADMIN_TOKEN: 'not-the-admin-token-at-all' });
    expect(wrong.code).toBe(0);
    expect(wrong.json()).toMatchObject({ policy_version: null, policy_error: expect.stringMatching(/401/) });
    expect(wrong.stdout + wrong.stderr).not.toContain('not-the-admin-token-at-all');
  });

  it('exits 1 when the ops listener says not ready, 3 when a listener cannot be reached', async () => {
    const ops = await fakeOps(503, { status: 'not ready', reason: 'database unreachable' });
    try {
      const notReady = await writ(['status', '--ops', ops.url, '-o', 'json'], b.anonymous);
      expect(notReady.code).toBe(1);
      expect(notReady.json()).toMatchObject({ ready: false, readiness: { status: 'not ready', reason: 'database unreachable' }, ops: { reachable: true }, api: { reachable: true } });
      expect(notReady.stderr).toBe('writ: not ready: not ready (database unreachable)\n');
    } finally {
      await new Promise<void>((r) => ops.server.close(() => r()));
    }

    const nowhere = await closedPort();
    const noOps = await writ(['status', '--ops', nowhere, '-o', 'json'], b.anonymous);
    expect(noOps.code).toBe(3);
    expect(noOps.json()).toMatchObject({ ready: false, readiness: null, ops: { url: nowhere, reachable: false, error: expect.stringMatching(/ECONNREFUSED/) }, api: { reachable: true } });
    expect(noOps.stderr.trimEnd().split('\n')).toHaveLength(1);

    const noApi = await writ(['status', '--ops', b.broker.opsUrl, '--server', nowhere.replace('http:', 'https:')], { WRIT_CA: b.caFile });
    expect(noApi.code).toBe(3);
    expect(noApi.stdout).toMatch(/^api +https:\/\/127\.0\.0\.1:\d+ unreachable: /m);
    expect(noApi.stderr).toMatch(/^writ: cannot reach the API/);

    expectUsage(await writ(['status', '--ops', 'https://127.0.0.1:9090'], b.anonymous), 'writ status', /must be an http:\/\/ URL/);
    expectUsage(await writ(['status', '--ops', 'not a url'], b.anonymous), 'writ status', /is not a URL/);
    expectRefused(await writ(['status', '--ops', b.broker.opsUrl, '--ca', join(b.work, 'missing.pem')], b.anonymous), /cannot read the CA bundle/);
  });
});
