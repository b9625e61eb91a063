import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CONFIG_ENV_NAMES, loadConfig } from '../../src/config';
import { CHART, Helm, type K8sObject, materialize, NAMESPACE, ROOT, type Rendered } from '../support/helm';

// Test values of the Secrets; none of them may appear anywhere but in a Secret.
const DB_URL = 'postgresql://writ:db-password-5f2c@db.example.com:5432/writ';
const ADMIN = 'admin-token-for-the-chart-test-7c1e';
const KEK = Buffer.alloc(32, 7).toString('base64');
const KEK_OLD = Buffer.alloc(32, 9).toString('base64');
const SECRET_VALUES = [DB_URL, 'db-password-5f2c', ADMIN, KEK, KEK_OLD];
/** The Secrets the ci values files name, for laying out a pod. */
const EXISTING: Record<string, Record<string, string>> = {
  'writ-database': { url: DB_URL },
  'writ-kek': { kek: KEK_OLD },
  'writ-kek-2': { kek: KEK },
  'writ-admin': { token: ADMIN },
  'writ-upstream-ca': { 'ca.crt': '-----BEGIN CERTIFICATE-----\n', 'ca.key': '-----BEGIN PRIVATE KEY-----\n' },
};
const SVC = 'writ';
const SVC_NAMES = [SVC, `${SVC}.${NAMESPACE}`, `${SVC}.${NAMESPACE}.svc`, `${SVC}.${NAMESPACE}.svc.cluster.local`];

let helm: Helm;
const work: string[] = [];
beforeAll(() => {
  helm = new Helm();
});
afterAll(() => {
  helm?.dispose();
  for (const d of work) rmSync(d, { recursive: true, force: true });
});

/** What every rendering must hold, whatever the mode. */
function checkPod(r: Rendered): void {
  const { pod, container, env } = r;
  const names = env.map((e) => e.name);

  // Every variable the chart sets is a setting Writ reads: renaming one breaks this.
  for (const name of names) expect(CONFIG_ENV_NAMES).toContain(name);
  expect(new Set(names).size).toBe(names.length);

  // Listeners: on every interface, on the ports the container declares.
  expect(r.envValue('WRIT_HOST')).toBe('0.0.0.0');
  expect(r.envValue('WRIT_OPS_HOST')).toBe('0.0.0.0');
  const port = (name: string) => (container.ports as { name: string; containerPort: number }[]).find((p) => p.name === name)?.containerPort;
  expect(port('https')).toBe(Number(r.envValue('WRIT_PORT')));
  expect(port('ops')).toBe(Number(r.envValue('WRIT_OPS_PORT')));

  // Probes on the ops listener (the plain-HTTP one Writ serves /healthz and /readyz on).
  const probePort = (p: { httpGet: { port: string | number } }) => (typeof p.httpGet.port === 'number' ? p.httpGet.port : port(p.httpGet.port));
  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  expect(container.startupProbe.httpGet.path).toBe('/healthz');
  for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
    expect(probePort(probe)).toBe(Number(r.envValue('WRIT_OPS_PORT')));
    expect(probe.httpGet.scheme ?? 'HTTP').toBe('HTTP');
  }

  // Security context.
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(container.securityContext).toMatchObject({
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(pod.automountServiceAccountToken).toBe(false);
  expect(r.volumeAt('/tmp')?.volume.emptyDir).toBeDefined();
  expect(container.resources.requests).toMatchObject({ memory: expect.any(String), cpu: expect.any(String) });
  expect(container.resources.limits.memory).toBeDefined();

  // Draining: preStop sleep, then WRIT_SHUTDOWN_GRACE, all within the termination grace period.
  const sleep = container.lifecycle.preStop.exec.command as string[];
  expect(sleep[0]).toBe('sleep');
  expect(Number(sleep[1]) + Number(r.envValue('WRIT_SHUTDOWN_GRACE'))).toBeLessThan(pod.terminationGracePeriodSeconds);

  // Secrets come from Secrets: referenced, never inlined.
  for (const name of ['DATABASE_URL', 'WRIT_ADMIN_TOKEN']) {
    const e = env.find((v) => v.name === name);
    if (e) {
      expect(e.value).toBeUndefined();
      expect(e.valueFrom?.secretKeyRef).toMatchObject({ name: expect.any(String), key: expect.any(String) });
    }
  }
  const inlined = JSON.stringify(r.objects.filter((o) => o.kind !== 'Secret'));
  for (const s of SECRET_VALUES) expect(inlined).not.toContain(s);
  for (const s of SECRET_VALUES) expect(inlined).not.toContain(Buffer.from(s).toString('base64'));

  // Files: the config from the ConfigMap, the KEKs from Secret volumes mounted read-only
  // that others cannot read.
  const config = r.volumeAt(r.envValue('WRIT_CONFIG')!);
  expect(config?.volume.configMap).toBeDefined();
  for (const name of ['WRIT_KEK_FILE', 'WRIT_KEK_PREVIOUS_FILE']) {
    const path = r.envValue(name);
    if (path === undefined) continue;
    const at = r.volumeAt(path)!;
    expect(at.volume.secret).toBeDefined();
    expect(at.mount.readOnly).toBe(true);
    expect(at.volume.secret.defaultMode & 0o007).toBe(0);
    expect(at.volume.secret.items).toEqual([{ key: expect.any(String), path: path.slice(at.mount.mountPath.length + 1) }]);
  }

  // Secret files are root-owned: uid 10001 reads them only through fsGroup and group read
  // permission, and others never (the kubelet adds group read to a read-only volume's files).
  for (const v of (pod.volumes as any[]).filter((v) => v.secret)) {
    expect({ volume: v.name, fsGroup: pod.securityContext.fsGroup }).toEqual({ volume: v.name, fsGroup: expect.any(Number) });
    expect({ volume: v.name, mode: v.secret.defaultMode & 0o047 }).toEqual({ volume: v.name, mode: 0o040 });
  }
  // With the default policy (Always) the kubelet makes every file on the claim group-writable
  // at each mount: ca.key 0660, which Writ refuses, so the pod would not start again.
  if ((pod.volumes as any[]).some((v) => v.persistentVolumeClaim)) {
    expect(pod.securityContext).toMatchObject({ fsGroup: expect.any(Number), fsGroupChangePolicy: 'OnRootMismatch' });
  }

  // The broker's certificate names the Service; the issuer is an https URL.
  expect(r.envValue('WRIT_SERVER_DNS_NAMES')!.split(',')).toEqual(expect.arrayContaining(SVC_NAMES));
  expect(r.envValue('WRIT_ISSUER')).toMatch(/^https:\/\/[^/?#]+$/);

  // Config changes roll the pods.
  const cm = r.one('ConfigMap');
  expect(pod.volumes.find((v: { name: string }) => v.name === config!.mount.name).configMap.name).toBe(cm.metadata.name);
  expect(r.deployment.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);

  // Spread across nodes, and a PodDisruptionBudget over the same pods.
  const labels = r.deployment.spec.template.metadata.labels;
  const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  expect(term.topologyKey).toBe('kubernetes.io/hostname');
  expect(labels).toMatchObject(term.labelSelector.matchLabels);
  const pdb = r.one('PodDisruptionBudget');
  expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
  // It lets at least one pod go, whatever the count (1 replica included): drains never hang.
  const fewest = r.deployment.spec.replicas ?? r.one('HorizontalPodAutoscaler').spec.minReplicas;
  if (pdb.spec.minAvailable !== undefined) expect(typeof pdb.spec.minAvailable === 'number' ? pdb.spec.minAvailable : 0).toBeLessThan(fewest);
  else expect(pdb.spec.maxUnavailable).toBeGreaterThanOrEqual(1);
  expect(labels).toMatchObject(r.deployment.spec.selector.matchLabels);

  // The Services: the API port on the one the certificate names, the ops port on exactly
  // one ClusterIP Service (the same one when it is ClusterIP), onto the container's named
  // ports. /healthz, /readyz and /metrics are unauthenticated: no LoadBalancer or NodePort
  // Service may carry them out of the cluster.
  const services = r.all('Service');
  for (const s of services) expect(labels).toMatchObject(s.spec.selector);
  const svc = services.find((s) => s.metadata.name === SVC)!;
  expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toContain('https');
  const carryingOps = services.filter((s) => servicePortsOnto(r, s, 'ops').length > 0);
  expect(carryingOps.map((s) => s.spec.type ?? 'ClusterIP')).toEqual(['ClusterIP']);
  if ((svc.spec.type ?? 'ClusterIP') === 'ClusterIP') {
    expect(services).toEqual([svc]);
    expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort).sort()).toEqual(['https', 'ops']);
  }
  for (const s of services) expect(servicePortsOnto(r, s, 'https').length + servicePortsOnto(r, s, 'ops').length).toBe(s.spec.ports.length);
  expect(r.one('ServiceAccount').automountServiceAccountToken).toBe(false);
}

/** The ports of a Service that reach the container port named `name` (by name or by number). */
function servicePortsOnto(r: Rendered, svc: K8sObject, name: string): { name: string; port: number; targetPort: string | number }[] {
  const containerPort = (r.container.ports as { name: string; containerPort: number }[]).find((p) => p.name === name)!.containerPort;
  return (svc.spec.ports as { name: string; port: number; targetPort?: string | number }[])
    .filter((p) => (p.targetPort ?? p.port) === name || (p.targetPort ?? p.port) === containerPort)
    .map((p) => ({ ...p, targetPort: p.targetPort ?? p.port }));
}

/** The Service port the ServiceMonitor's endpoint scrapes: Services it selects, with a port of that name. */
function scrapedPorts(r: Rendered): { svc: K8sObject; port: { name: string; targetPort: string | number } }[] {
  const sm = r.one('ServiceMonitor');
  expect(sm.spec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
  expect(sm.spec.endpoints).toHaveLength(1);
  const selector = sm.spec.selector.matchLabels as Record<string, string>;
  return r
    .all('Service')
    .filter((s) => Object.entries(selector).every(([k, v]) => s.metadata.labels?.[k] === v))
    .flatMap((svc) => (svc.spec.ports as { name: string; targetPort: string | number }[]).filter((p) => p.name === sm.spec.endpoints[0].port).map((port) => ({ svc, port })));
}

/** Writ itself accepts what the chart sets: its config loader, with files laid out as the pod sees them. */
function loadedConfig(r: Rendered) {
  const dir = mkdtempSync(join(tmpdir(), 'writ-helm-pod-'));
  work.push(dir);
  return loadConfig(materialize(r, EXISTING, dir));
}

describe('Helm chart', () => {
  it('Chart.yaml appVersion is package.json version', () => {
    const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(chart.apiVersion).toBe('v2');
    expect(chart.appVersion).toBe(pkg.version);
  });

  it('helm lint passes with the defaults and with every ci values file', () => {
    const files = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const extra of [[], ...files.map((f) => ['-f', join(CHART, 'ci', f)])]) {
      const r = helm.run(['lint', CHART, '--strict', '--namespace', NAMESPACE, ...extra]);
      expect({ extra, status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
    }
  });

  it('templates generate no secrets (a random value would change on every upgrade)', () => {
    const dir = join(CHART, 'templates');
    for (const f of readdirSync(dir)) {
      const text = readFileSync(join(dir, f), 'utf8');
      expect({ f, rand: /\b(rand[A-Z]\w*|randBytes|uuidv4|genPrivateKey|genCA|genSelfSignedCert|genSignedCert|derivePassword)\b/.exec(text)?.[0] }).toEqual({ f, rand: undefined });
    }
  });

  it('values.yaml has a comment on every value', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
    const lines = readFileSync(join(CHART, 'values.yaml'), 'utf8').split('\n');
    const path: { indent: number; key: string }[] = [];
    const uncommented: string[] = [];
    lines.forEach((line, i) => {
      const m = /^( *)([A-Za-z][\w.-]*):/.exec(line);
      if (!m) return;
      const indent = m[1]!.length;
      while (path.length && path[path.length - 1]!.indent >= indent) path.pop();
      // Keys inside a free-form value (podSecurityContext, resources, …) are that value's content.
      let node = schema;
      for (const p of path) node = node?.properties?.[p.key];
      if (!node?.properties) return;
      path.push({ indent, key: m[2]! });
      const own = node.properties[m[2]!];
      if (own?.properties) return; // a group: its values carry the comments
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === '') j--;
      if (!/^\s*#/.test(lines[j] ?? '')) uncommented.push(path.map((p) => p.key).join('.'));
    });
    expect(uncommented).toEqual([]);
  });

  it('the defaults render: 2 replicas on an external PostgreSQL from Secret writ-database, KEK from Secret writ-kek', () => {
    const r = helm.render();
    checkPod(r);
    expect(r.deployment.spec.replicas).toBe(2);
    expect(r.deployment.spec.strategy).toMatchObject({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } });
    expect(r.env.find((e) => e.name === 'DATABASE_URL')!.valueFrom.secretKeyRef).toEqual({ name: 'writ-database', key: 'url' });
    expect(r.volumeAt(r.envValue('WRIT_KEK_FILE')!)!.volume.secret.secretName).toBe('writ-kek');
    expect(r.volumeAt(r.envValue('WRIT_CA_DIR')!)!.volume.emptyDir).toBeDefined();
    expect(r.envValue('WRIT_DATA_DIR')).toBeUndefined();
    expect(r.envValue('WRIT_ADMIN_TOKEN')).toBeUndefined();
    expect(r.envValue('WRIT_ISSUER')).toBe(`https://${SVC}.${NAMESPACE}.svc:8443`);
    expect(r.envValue('WRIT_CONFIG')).toBe('/etc/writ/config/writ.yaml');
    expect(r.all('Secret')).toEqual([]);
    expect(r.all('HorizontalPodAutoscaler')).toEqual([]);
    expect(r.all('PersistentVolumeClaim')).toEqual([]);
    expect(loadedConfig(r)).toMatchObject({ host: '0.0.0.0', port: 8443, opsPort: 9090, workers: 1, serverDnsNames: SVC_NAMES, databaseUrl: DB_URL });
  });

  it('secrets given as values go into the chart\'s own Secrets and are referenced from there', () => {
    const r = helm.render({ setString: { 'database.url': DB_URL, 'kek.value': KEK, 'adminToken.value': ADMIN } });
    checkPod(r);
    expect(r.secretData('writ')).toEqual({ 'database-url': DB_URL, 'admin-token': ADMIN });
    expect(r.secretData('writ-kek')).toEqual({ kek: KEK });
    expect(r.env.find((e) => e.name === 'DATABASE_URL')!.valueFrom.secretKeyRef).toEqual({ name: 'writ', key: 'database-url' });
    expect(r.env.find((e) => e.name === 'WRIT_ADMIN_TOKEN')!.valueFrom.secretKeyRef).toEqual({ name: 'writ', key: 'admin-token' });
    expect(r.volumeAt(r.envValue('WRIT_KEK_FILE')!)!.volume.secret).toMatchObject({ secretName: 'writ-kek', items: [{ key: 'kek', path: 'kek' }] });
    expect(loadedConfig(r)).toMatchObject({ databaseUrl: DB_URL, adminToken: ADMIN, kekFile: expect.stringMatching(/\/kek$/) });
  });

  it('external PostgreSQL, 3 replicas, KEK, config file, policy, NetworkPolicy and ServiceMonitor', () => {
    const r = helm.render({ files: ['postgresql-kek-values.yaml'] });
    checkPod(r);
    expect(r.deployment.spec.replicas).toBe(3);
    expect(r.env.find((e) => e.name === 'WRIT_ADMIN_TOKEN')!.valueFrom.secretKeyRef).toEqual({ name: 'writ-admin', key: 'token' });
    expect(r.envValue('WRIT_SERVER_DNS_NAMES')!.split(',')).toEqual([...SVC_NAMES, 'writ.example.com']);
    const files = r.one('ConfigMap').data;
    expect(Object.keys(files).sort()).toEqual(['idp-jwks.json', 'policy.cedar', 'writ.yaml']);
    expect(parseYaml(files['writ.yaml'])).toMatchObject({ policy_file: 'policy.cedar', identity_providers: [{ jwks_file: 'idp-jwks.json' }] });
    const config = loadedConfig(r);
    expect(config).toMatchObject({ trustDomain: 'prod.example.com', logLevel: 'info', riskRevokeLevels: ['HIGH'], adminToken: ADMIN });
    expect(config.policyFile).toMatch(/\/policy\.cedar$/);
    expect(readFileSync(config.policyFile!, 'utf8')).toContain('eng-read');
    const np = r.one('NetworkPolicy');
    expect(np.spec.ingress.map((i: { ports: { port: string }[] }) => i.ports[0]!.port)).toEqual(['https', 'ops']);
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.egress).toBeUndefined();
    const sm = r.one('ServiceMonitor');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels.release).toBe('prometheus');
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'ops', path: '/metrics' })]);
    // The endpoint names a port of the Service it selects, the one onto the ops listener.
    const scraped = scrapedPorts(r);
    expect(scraped).toHaveLength(1);
    expect(scraped[0]!.svc.metadata.name).toBe(SVC);
    expect(scraped[0]!.port.targetPort).toBe('ops');
  });

  it.each(['LoadBalancer', 'NodePort'])('service.type %s: that Service carries the API port only; the ops port stays on a ClusterIP Service, which the ServiceMonitor scrapes', (type) => {
    const r = helm.render({ files: ['postgresql-kek-values.yaml'], set: { 'service.type': type }, setString: { 'service.annotations.lb\\.example\\.com/passthrough': 'true' } });
    checkPod(r);
    const services = r.all('Service');
    const svc = services.find((s) => s.metadata.name === SVC)!;
    expect(svc.spec.type).toBe(type);
    expect(svc.metadata.annotations).toEqual({ 'lb.example.com/passthrough': 'true' });
    expect(svc.spec.ports).toEqual([expect.objectContaining({ name: 'https', port: 8443, targetPort: 'https' })]);
    for (const s of services.filter((s) => (s.spec.type ?? 'ClusterIP') !== 'ClusterIP')) expect({ name: s.metadata.name, ops: servicePortsOnto(r, s, 'ops') }).toEqual({ name: s.metadata.name, ops: [] });
    const ops = services.find((s) => s.metadata.name === `${SVC}-ops`)!;
    expect(ops.spec.type).toBe('ClusterIP');
    expect(ops.metadata.annotations).toBeUndefined();
    expect(ops.spec.ports).toEqual([expect.objectContaining({ name: 'ops', port: 9090, targetPort: 'ops' })]);
    // The ServiceMonitor selects only the ops Service, and its endpoint reaches the ops listener.
    const scraped = scrapedPorts(r);
    expect(scraped.map((s) => s.svc.metadata.name)).toEqual([`${SVC}-ops`]);
    expect(servicePortsOnto(r, scraped[0]!.svc, 'ops')).toEqual([scraped[0]!.port]);
    expect(svc.metadata.labels).not.toMatchObject(r.one('ServiceMonitor').spec.selector.matchLabels);
    // The certificate and the issuer still name the API Service.
    expect(r.envValue('WRIT_ISSUER')).toBe(`https://${SVC}.${NAMESPACE}.svc:8443`);
  });

  it('NetworkPolicy with egress rules: DNS is always allowed, and the given rules follow', () => {
    const pg = { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ port: 5432, protocol: 'TCP' }] };
    const r = helm.render({ files: ['postgresql-kek-values.yaml'], set: { 'networkPolicy.egress[0].to[0].ipBlock.cidr': '10.20.0.0/16', 'networkPolicy.egress[0].ports[0].port': 5432, 'networkPolicy.egress[0].ports[0].protocol': 'TCP' } });
    const np = r.one('NetworkPolicy');
    expect(np.spec.podSelector.matchLabels).toEqual(r.deployment.spec.selector.matchLabels);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.egress).toEqual([
      { ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
      pg,
    ]);
  });

  it('a config change changes the checksum annotation (pods roll)', () => {
    const a = helm.render().deployment.spec.template.metadata.annotations['checksum/config'];
    const b = helm.render({ set: { 'config.access_token_ttl': 120 } }).deployment.spec.template.metadata.annotations['checksum/config'];
    expect(a).not.toBe(b);
  });

  it('embedded: 1 replica, the database and the generated CA on a PersistentVolumeClaim, Recreate', () => {
    const r = helm.render({ files: ['embedded-values.yaml'] });
    checkPod(r);
    expect(r.deployment.spec.replicas).toBe(1);
    expect(r.deployment.spec.strategy).toEqual({ type: 'Recreate' });
    const pvc = r.one('PersistentVolumeClaim');
    for (const name of ['WRIT_DATA_DIR', 'WRIT_CA_DIR']) {
      const at = r.volumeAt(r.envValue(name)!)!;
      expect(at.volume.persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
      expect(at.mount.readOnly).toBeFalsy();
    }
    expect(r.envValue('DATABASE_URL')).toBeUndefined();
    expect(r.env.find((e) => e.name === 'DATABASE_URL')).toBeUndefined();
    expect(r.envValue('WRIT_KEK_FILE')).toBeUndefined();
    expect(loadedConfig(r)).toMatchObject({ databaseUrl: undefined, workers: 1 });
  });

  it('upstream CA: the Secret mounted read-only as WRIT_CA_DIR (alone, or with a KEK sealing the JWT key)', () => {
    for (const r of [
      helm.render({ files: ['upstream-ca-values.yaml'] }),
      helm.render({ set: { 'upstreamCa.enabled': true }, setString: { 'upstreamCa.cert': '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----', 'upstreamCa.key': '-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----' } }),
    ]) {
      checkPod(r);
      expect(r.deployment.spec.replicas).toBe(2);
      const at = r.volumeAt(r.envValue('WRIT_CA_DIR')!)!;
      expect(at.mount.mountPath).toBe(r.envValue('WRIT_CA_DIR'));
      expect(at.mount.readOnly).toBe(true);
      expect(at.volume.secret.defaultMode & 0o007).toBe(0);
      const name = at.volume.secret.secretName;
      expect(r.envValue('WRIT_KEK_FILE') === undefined).toBe(name === 'writ-upstream-ca');
      if (name !== 'writ-upstream-ca') expect(Object.keys(r.secretData(name)!).sort()).toEqual(['ca.crt', 'ca.key']);
    }
    const replace = helm.render({ files: ['upstream-ca-values.yaml'], set: { replaceCa: true } });
    expect(replace.envValue('WRIT_CA_REPLACE')).toBe('true');
  });

  it('KEK rotation: the new KEK and the previous one, each a file in its own Secret volume', () => {
    const r = helm.render({ files: ['kek-rotation-values.yaml'] });
    checkPod(r);
    const now = r.volumeAt(r.envValue('WRIT_KEK_FILE')!)!;
    const before = r.volumeAt(r.envValue('WRIT_KEK_PREVIOUS_FILE')!)!;
    expect(now.volume.secret.secretName).toBe('writ-kek-2');
    expect(before.volume.secret.secretName).toBe('writ-kek');
    expect(now.mount.mountPath).not.toBe(before.mount.mountPath);
    const config = loadedConfig(r);
    expect(readFileSync(config.kekFile!, 'utf8')).toBe(KEK);
    expect(readFileSync(config.kekPreviousFile!, 'utf8')).toBe(KEK_OLD);

    const values = helm.render({ setString: { 'kek.value': KEK, 'kek.previous.value': KEK_OLD } });
    checkPod(values);
    expect(values.secretData('writ-kek')).toEqual({ kek: KEK, previous: KEK_OLD });
  });

  it('autoscaling: a HorizontalPodAutoscaler owns the replica count', () => {
    const r = helm.render({ files: ['autoscaling-values.yaml'] });
    checkPod(r);
    expect(r.deployment.spec.replicas).toBeUndefined();
    const hpa = r.one('HorizontalPodAutoscaler');
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 8, scaleTargetRef: { kind: 'Deployment', name: r.deployment.metadata.name } });
  });

  it('NOTES.txt says how to fetch the trust bundle and where the admin credential is', () => {
    const notes = (extra: string[]) => {
      const r = helm.run(['install', 'writ', CHART, '--dry-run=client', '--namespace', NAMESPACE, ...extra]);
      expect(r.status).toBe(0);
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    const generated = notes([]);
    expect(generated).toContain(`kubectl -n ${NAMESPACE} port-forward svc/${SVC} 8443:8443`);
    expect(generated).toContain('curl -sk https://localhost:8443/v1/bundle');
    expect(generated).toContain(`https://${SVC}.${NAMESPACE}.svc:8443/v1/bundle`);
    expect(generated).toContain("grep 'generated the bootstrap admin token'");
    const given = notes(['-f', join(CHART, 'ci', 'postgresql-kek-values.yaml')]);
    expect(given).toContain(`get secret writ-admin -o jsonpath='{.data.token}'`);
    expect(given).not.toContain('generated the bootstrap admin token');
    expect(generated).toContain(`kubectl -n ${NAMESPACE} port-forward svc/${SVC} 9090:9090`);
    const balanced = notes(['--set', 'service.type=LoadBalancer']);
    expect(balanced).toContain(`kubectl -n ${NAMESPACE} port-forward svc/${SVC} 8443:8443`);
    expect(balanced).toContain(`kubectl -n ${NAMESPACE} port-forward svc/${SVC}-ops 9090:9090`);
    expect(balanced).toMatch(/LoadBalancer Service writ carries the API port only\. The ops port .* is on ClusterIP Service writ-ops/s);
  });

  describe('refuses values that cannot work, saying what to change', () => {
    const refused = (opts: Parameters<Helm['template']>[0], message: RegExp) => {
      const r = helm.template(opts);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(message);
      for (const s of SECRET_VALUES) expect(r.stderr).not.toContain(s);
      return r.stderr;
    };

    it('embedded with 3 replicas', () => {
      refused({ files: ['embedded-values.yaml'], set: { replicaCount: 3 } }, /database\.embedded: the embedded database \(PGlite\) serves one process only, but replicaCount 3/);
    });
    it('embedded with autoscaling', () => {
      refused({ files: ['embedded-values.yaml'], set: { 'autoscaling.enabled': true } }, /database\.embedded: .*serves one process only, but autoscaling\.enabled/);
    });
    it('embedded without persistence', () => {
      refused({ files: ['embedded-values.yaml'], set: { 'persistence.enabled': false } }, /database\.embedded: .*needs a PersistentVolumeClaim: set persistence\.enabled true/);
    });
    it('embedded with several worker processes', () => {
      refused({ files: ['embedded-values.yaml'], set: { workers: 2 } }, /workers 2 needs an external PostgreSQL/);
    });
    it('an external PostgreSQL without a DATABASE_URL Secret', () => {
      refused({ set: { 'database.existingSecret': '' } }, /an external PostgreSQL needs DATABASE_URL: set database\.existingSecret .* or database\.url/);
    });
    it('2 replicas with neither kek nor upstreamCa', () => {
      refused({ set: { 'kek.enabled': false } }, /replicaCount 2: replicas must share one CA and JWT signing key: configure kek .* or upstreamCa/);
      refused({ set: { 'kek.enabled': false, 'autoscaling.enabled': true } }, /autoscaling\.enabled: replicas must share .*configure kek .* or upstreamCa/);
    });
    it('1 replica with neither kek nor upstreamCa nor persistence (the CA would not survive a restart)', () => {
      refused({ set: { 'kek.enabled': false, replicaCount: 1 } }, /configure kek or upstreamCa, or set persistence\.enabled true/);
    });
    it('kek enabled without its Secret', () => {
      refused({ set: { 'kek.existingSecret': '' } }, /kek\.enabled: set kek\.existingSecret .* or kek\.value/);
    });
    it('upstreamCa enabled without its Secret', () => {
      refused({ set: { 'kek.enabled': false, 'upstreamCa.enabled': true } }, /upstreamCa\.enabled: set upstreamCa\.existingSecret/);
    });
    it('a PodDisruptionBudget that allows no eviction (node drains would hang)', () => {
      refused({ set: { 'podDisruptionBudget.maxUnavailable': 0 } }, /podDisruptionBudget\.maxUnavailable 0 would allow no eviction/);
      refused({ set: { 'podDisruptionBudget.minAvailable': 2 } }, /podDisruptionBudget\.minAvailable 2 with replicaCount 2 would allow no eviction/);
      refused({ files: ['embedded-values.yaml'], set: { 'podDisruptionBudget.minAvailable': 1 } }, /minAvailable 1 with replicaCount 1 would allow no eviction/);
      refused({ files: ['autoscaling-values.yaml'], set: { 'podDisruptionBudget.minAvailable': '100%' } }, /minAvailable 100% with autoscaling\.minReplicas 2/);
      expect(helm.render({ set: { 'podDisruptionBudget.minAvailable': 1 } }).one('PodDisruptionBudget').spec).toMatchObject({ minAvailable: 1 });
    });
    it('a claim without fsGroupChangePolicy OnRootMismatch (the kubelet would make ca.key group-writable)', () => {
      refused({ files: ['embedded-values.yaml'], set: { 'podSecurityContext.fsGroupChangePolicy': 'Always' } }, /fsGroupChangePolicy must be OnRootMismatch with persistence/);
      refused({ files: ['embedded-values.yaml'], set: { 'podSecurityContext.fsGroupChangePolicy': null } }, /fsGroupChangePolicy must be OnRootMismatch/);
    });
    it('an upstream CA Secret from values without jwt-signing.key and without kek (read-only WRIT_CA_DIR)', () => {
      const pem = { 'upstreamCa.cert': '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----', 'upstreamCa.key': '-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----' };
      refused({ set: { 'kek.enabled': false, 'upstreamCa.enabled': true }, setString: pem }, /upstreamCa: without kek, the read-only CA Secret must hold jwt-signing\.key/);
      const r = helm.render({ set: { 'kek.enabled': false, 'upstreamCa.enabled': true }, setString: { ...pem, 'upstreamCa.jwtSigningKey': pem['upstreamCa.key'] } });
      expect(Object.keys(r.secretData('writ-ca')!).sort()).toEqual(['ca.crt', 'ca.key', 'jwt-signing.key']);
    });
    it('a termination grace period shorter than the drain', () => {
      refused({ set: { terminationGracePeriodSeconds: 20 } }, /terminationGracePeriodSeconds 20 is shorter than preStopSleepSeconds \+ shutdownGrace \(30\)/);
    });
    it('secrets or chart-managed settings in the config file', () => {
      refused({ setString: { 'config.database_url': DB_URL } }, /config\.database_url: a secret does not belong in the ConfigMap/);
      refused({ set: { 'config.port': 443 } }, /config\.port: the chart sets this setting/);
    });
    it('malformed secret values, without printing them', () => {
      refused({ setString: { 'database.url': DB_URL.replace('postgresql', 'mysql') } }, /database\.url must be a postgresql:\/\/ URL .*the value is not shown/);
      refused({ setString: { 'adminToken.value': ADMIN.slice(0, 10) } }, /adminToken\.value must be at least 16 characters long/);
      refused({ setString: { 'kek.value': KEK.slice(0, 20) } }, /kek\.value must be 32 random bytes, base64-encoded/);
    });
    it('schema violations', () => {
      refused({ set: { replicaCount: 'two' } }, /replicaCount.*got string, want integer/);
      refused({ set: { logLevel: 'verbose' } }, /logLevel.*value must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'/);
      refused({ set: { workers: 65 } }, /workers/);
      refused({ set: { replicas: 3 } }, /additional properties 'replicas' not allowed/);
      refused({ set: { 'env.DATABASE_URL': 'x' } }, /DATABASE_URL.*does not match pattern/);
    });
  });
});
