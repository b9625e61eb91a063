import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';
import { MAIN, spawnWrit, type WritProcess } from '../support/process';
import { Helm, materialize, NAMESPACE, type Rendered } from '../support/helm';

const describePg = usingPostgres() ? describe : describe.skip;
const START_TIMEOUT_MS = 30_000;

/** What a broker said, for a failure message. */
const describeProcess = (p: WritProcess, i: number) =>
  `broker ${i + 1} (${p.child.exitCode === null ? 'running' : `exit ${p.child.exitCode}`}): stderr ${JSON.stringify(p.stderr())}; last log lines ${JSON.stringify(p.logs.slice(-3))}`;

/**
 * The chart's pod, run here: the Deployment container's environment exactly as rendered for
 * an external PostgreSQL with a KEK and 2 replicas (Secrets resolved to test values, mounted
 * files laid out in a temporary directory), only the ports moved to free ones so that two
 * brokers fit on one machine. Both must come up ready and serve the same trust bundle.
 */
describePg('Helm chart: two replicas as the chart configures them', () => {
  const ADMIN = `chart-smoke-admin-${randomBytes(8).toString('hex')}`;
  let helm: Helm;
  let store: TestStore;
  let rendered: Rendered;
  const dirs: string[] = [];
  const running: WritProcess[] = [];
  let urls: { apiUrl: string; opsUrl: string }[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
    helm = new Helm();
    store = await createTestStore();
    rendered = helm.render({ files: ['postgresql-kek-values.yaml'], set: { replicaCount: 2 } });
    const secrets = {
      'writ-database': { url: store.databaseUrl! },
      'writ-kek': { kek: randomBytes(32).toString('base64') },
      'writ-admin': { token: ADMIN },
    };
    const pods = ['pod-a', 'pod-b'].map((name) => {
      // Each pod its own files (emptyDirs are per pod); the same Secrets and ConfigMap.
      const dir = mkdtempSync(join(tmpdir(), `writ-helm-${name}-`));
      dirs.push(dir);
      return { dir, env: { ...materialize(rendered, secrets, dir), WRIT_PORT: '0', WRIT_OPS_PORT: '0' } };
    });
    // Started together, as a Deployment starts its replicas.
    for (const pod of pods) running.push(spawnWrit(pod.dir, pod.env));
    urls = await Promise.race([
      Promise.all(running.map((p) => p.ready)),
      new Promise<never>((_, reject) => {
        const t = setTimeout(() => reject(new Error(`not both listening within ${START_TIMEOUT_MS} ms:\n${running.map(describeProcess).join('\n')}`)), START_TIMEOUT_MS);
        t.unref();
      }),
    ]);
  }, START_TIMEOUT_MS + 15_000);

  afterAll(async () => {
    for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(running.map((p) => p.exit));
    await store?.drop();
    helm?.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('the chart sets the listeners on every interface and a KEK file from a Secret', () => {
    expect(rendered.deployment.spec.replicas).toBe(2);
    expect(rendered.envValue('WRIT_HOST')).toBe('0.0.0.0');
    expect(rendered.envValue('WRIT_KEK_FILE')).toBeDefined();
  });

  it('both replicas are ready', async () => {
    for (const { opsUrl } of urls) expect((await fetch(`${opsUrl}/readyz`)).status).toBe(200);
  });

  it('both serve the same trust bundle, and each TLS certificate chains to it for the Service name', async () => {
    const bundles = await Promise.all(
      urls.map(async ({ apiUrl }) => {
        const r = await httpsRequest(`${apiUrl}/v1/bundle`, { ca: '', insecure: true });
        expect(r.status).toBe(200);
        return JSON.parse(r.body) as { spiffe_sequence: number; keys: { use: string; kid?: string; x5c?: string[] }[] };
      }),
    );
    expect(bundles[1]!.spiffe_sequence).toBe(bundles[0]!.spiffe_sequence);
    expect(bundles[1]!.keys).toEqual(bundles[0]!.keys);
    expect(bundles[0]!.keys.map((k) => k.use).sort()).toEqual(expect.arrayContaining(['jwt-svid', 'x509-svid']));

    // Verified now against the bundle's X.509 authorities, under the Service's DNS name.
    const ca = bundles[0]!.keys
      .filter((k) => k.use === 'x509-svid')
      .map((k) => new X509Certificate(Buffer.from(k.x5c![0]!, 'base64')).toString())
      .join('');
    const service = `writ.${NAMESPACE}.svc`;
    for (const { apiUrl } of urls) {
      const r = await httpsRequest(`${apiUrl}/v1/bundle`, { ca, servername: service });
      expect(r.status).toBe(200);
    }
  });

  it('the admin token from the Secret is the admin credential on both', async () => {
    for (const { apiUrl } of urls) {
      const r = await httpsRequest(`${apiUrl}/v1/admin/entries`, { ca: '', insecure: true, headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.status).toBe(200);
    }
    for (const p of running) expect(p.stderr()).not.toContain('generated the bootstrap admin token');
  });

  it('SIGTERM drains and exits 0 within the pod\'s termination grace period', async () => {
    const grace = rendered.pod.terminationGracePeriodSeconds as number;
    const started = Date.now();
    for (const p of running) p.child.kill('SIGTERM');
    const exits = await Promise.all(running.map((p) => p.exit));
    expect(exits).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
    expect(Date.now() - started).toBeLessThan(grace * 1000);
  });
});
