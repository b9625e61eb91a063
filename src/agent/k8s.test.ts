import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerOfCgroup, k8sSelectors, Kubelet, selectorsOfPod } from './k8s';

const POD_UID = '2c48913c-b29f-11e7-9350-020968147796';
const CONTAINER = '9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961';

describe('the caller\'s pod and container, from its cgroup', () => {
  it.each([
    ['cgroup v1, cgroupfs driver', `12:devices:/kubepods/burstable/pod${POD_UID}/${CONTAINER}\n11:memory:/kubepods/burstable/pod${POD_UID}/${CONTAINER}`],
    ['a guaranteed pod', `4:cpu,cpuacct:/kubepods/pod${POD_UID}/${CONTAINER}`],
    ['systemd driver, containerd (v2)', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice/cri-containerd-${CONTAINER}.scope`],
    ['systemd driver, CRI-O', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_UID.replace(/-/g, '_')}.slice/crio-${CONTAINER}.scope`],
    ['systemd driver, Docker', `1:name=systemd:/kubepods.slice/kubepods-pod${POD_UID.replace(/-/g, '_')}.slice/docker-${CONTAINER}.scope`],
  ])('%s', (_, text) => {
    expect(containerOfCgroup(text)).toEqual({ podUid: POD_UID, containerId: CONTAINER });
  });

  it.each([
    ['a process in no pod', '0::/user.slice/user-1000.slice/session-2.scope'],
    ['a pod slice without a container (the pause sandbox\'s parent)', `0::/kubepods.slice/kubepods-pod${POD_UID.replace(/-/g, '_')}.slice`],
    ['a container id that is not one', `0::/kubepods/pod${POD_UID}/not-a-container`],
  ])('none for %s', (_, text) => {
    expect(containerOfCgroup(text)).toBeUndefined();
  });
});

const POD = {
  metadata: { uid: POD_UID, name: 'github-connector-7d9f', namespace: 'mcp', labels: { app: 'github-connector' } },
  spec: { serviceAccountName: 'github', nodeName: 'node-1' },
  status: { containerStatuses: [{ name: 'connector', image: 'registry/connector:1', containerID: `containerd://${CONTAINER}` }, { name: 'sidecar', containerID: `containerd://${'a'.repeat(64)}` }] },
};

describe('selectors of a pod\'s container (SPIRE\'s k8s names)', () => {
  it('names namespace, service account, pod, node, container and labels', () => {
    expect(selectorsOfPod(POD, CONTAINER)).toEqual([
      'k8s:ns:mcp',
      `k8s:pod-uid:${POD_UID}`,
      'k8s:sa:github',
      'k8s:pod-name:github-connector-7d9f',
      'k8s:node-name:node-1',
      'k8s:container-name:connector',
      'k8s:pod-label:app:github-connector',
    ]);
    expect(selectorsOfPod(POD, 'b'.repeat(64))).toBeUndefined(); // not a container of this pod
  });
});

describe('the kubelet\'s pod list, over verified TLS with a bearer token', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let pods: unknown[];
  const seen: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-kubelet-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=kubelet', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
    writeFileSync(join(dir, 'token'), 'agent-token\n');
    pods = [];
    server = createServer({ cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      if (req.headers.authorization !== 'Bearer agent-token') return res.writeHead(401).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', items: pods }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the caller\'s container; a new pod missing from the cached list makes it ask again', async () => {
    let now = 0;
    const kubelet = new Kubelet({ url, caPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), tokenFile: join(dir, 'token'), now: () => now });
    try {
      const cgroup = `0::/kubepods/pod${POD_UID}/${CONTAINER}`;
      await expect(k8sSelectors(kubelet, 4242, () => cgroup)).rejects.toThrow(/knows no container 9bca8d63d5fa of pod/); // fail closed
      pods.push(POD);
      now += 1000; // within the cache time: the miss asks again
      expect(await k8sSelectors(kubelet, 4242, () => cgroup)).toContain('k8s:sa:github');
      expect(seen.at(-1)).toBe('GET /pods Bearer agent-token');
      expect(await k8sSelectors(kubelet, 4242, () => '0::/user.slice')).toEqual([]); // not in a pod: unix selectors only
    } finally {
      await kubelet.close();
    }
  });

  it('refuses a kubelet whose certificate does not chain to the configured CA', async () => {
    const other = mkdtempSync(join(tmpdir(), 'writ-kubelet-other-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=other'], { cwd: other, stdio: 'ignore' });
    const kubelet = new Kubelet({ url, caPem: readFileSync(join(other, 'c.pem'), 'utf8'), tokenFile: join(dir, 'token') });
    try {
      await expect(k8sSelectors(kubelet, 1, () => `0::/kubepods/pod${POD_UID}/${CONTAINER}`)).rejects.toThrow();
    } finally {
      await kubelet.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});
