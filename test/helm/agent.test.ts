import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program';
import { CHART, Helm, type K8sObject, NAMESPACE, type Rendered } from '../support/helm';

/**
 * The node agent's DaemonSet (templates/agent.yaml): `writ agent` on each node, serving the SPIFFE
 * Workload API on a hostPath socket and attesting with a projected service-account token.
 */
const BUNDLE = { 'agent.enabled': true, 'agent.trustBundle.configMap': 'writ-bundle' };
const SOCKET_DIR = '/run/writ-agent/public';

let helm: Helm;
beforeAll(() => {
  helm = new Helm();
});
afterAll(() => helm?.dispose());

const render = (set: Record<string, string | number | boolean | null> = {}) => helm.render({ set: { ...BUNDLE, ...set } });
const daemonSet = (r: Rendered): K8sObject => r.one('DaemonSet');
const podOf = (r: Rendered): any => daemonSet(r).spec.template.spec;
const agentOf = (r: Rendered): any => (podOf(r).containers as any[]).find((c) => c.name === 'agent');

/** The volume mounted where `path` lies in the agent container (the longest mountPath holding it). */
function agentVolumeAt(r: Rendered, path: string): { mount: any; volume: any } | undefined {
  const mount = (agentOf(r).volumeMounts as any[])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return mount && { mount, volume: (podOf(r).volumes as any[]).find((v) => v.name === mount.name) };
}

/**
 * The options `writ agent` parses from the rendered args, through the real command line with
 * its action replaced: a flag the CLI does not know fails here, as it would in the pod.
 */
async function parsedOptions(r: Rendered): Promise<Record<string, unknown>> {
  const { command, args } = agentOf(r) as { command: string[]; args: string[] };
  expect(command).toEqual(['node', 'dist/cli/main.js', 'agent']);
  const program = buildProgram();
  const agent = program.commands.find((c) => c.name() === 'agent')!;
  let seen: Record<string, unknown> | undefined;
  agent.action((_o: unknown, cmd: Command) => {
    seen = cmd.optsWithGlobals();
  });
  // The environment must not supply what the chart does not: commander reads these variables.
  const saved = Object.fromEntries(['WRIT_SERVER', 'WRIT_CA', 'SPIFFE_ENDPOINT_SOCKET', 'WRIT_AGENT_DATA_DIR', 'WRIT_AGENT_OIDC_TOKEN_FILE', 'WRIT_AGENT_SYNC_INTERVAL_MS', 'WRIT_AGENT_JOIN_TOKEN', 'WRIT_AGENT_KUBELET_URL', 'WRIT_AGENT_KUBELET_CA', 'WRIT_AGENT_KUBELET_TOKEN_FILE'].map((k) => [k, process.env[k]]));
  for (const k of Object.keys(saved)) delete process.env[k];
  try {
    await program.parseAsync(['agent', ...args], { from: 'user' });
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
  return seen!;
}

describe('Helm chart: the node agent DaemonSet', () => {
  it('is absent by default', () => {
    const r = helm.render();
    expect(r.all('DaemonSet')).toEqual([]);
    expect(r.all('ServiceAccount').map((s) => s.metadata.name)).toEqual(['writ']);
  });

  it('runs `writ agent` against this release\'s Service, with the bundle, socket, data dir and token the pod mounts', async () => {
    const r = render();
    const o = await parsedOptions(r);
    expect(o).toMatchObject({
      server: `https://writ.${NAMESPACE}.svc:8443`,
      socket: `unix://${SOCKET_DIR}/api.sock`,
      dataDir: '/var/lib/writ-agent',
      oidcTokenFile: '/var/run/secrets/writ-agent/token',
      syncInterval: 5000,
    });
    expect(o.joinToken).toBeUndefined();
    expect(agentOf(r).env).toBeUndefined();

    // The default server is a name on the broker's certificate, at the Service's API port.
    const server = new URL(o.server as string);
    expect(r.envValue('WRIT_SERVER_DNS_NAMES')!.split(',')).toContain(server.hostname);
    const service = r.all('Service').find((s) => s.metadata.name === 'writ')!;
    expect(Number(server.port)).toBe((service.spec.ports as any[]).find((p) => p.name === 'https').port);
    const moved = await parsedOptions(render({ 'service.port': 9443 }));
    expect(moved.server).toBe(`https://writ.${NAMESPACE}.svc:9443`);

    // --ca: the ConfigMap's key, read-only.
    const ca = agentVolumeAt(r, o.ca as string)!;
    expect(ca.mount.readOnly).toBe(true);
    expect(ca.volume.configMap).toEqual({ name: 'writ-bundle', items: [{ key: 'bundle.pem', path: (o.ca as string).slice(ca.mount.mountPath.length + 1) }] });

    // The socket: in a hostPath directory mounted at the same path, so connector pods find it there.
    const socket = agentVolumeAt(r, (o.socket as string).replace(/^unix:\/\//, ''))!;
    expect(socket.volume.hostPath).toEqual({ path: SOCKET_DIR, type: 'DirectoryOrCreate' });
    expect(socket.mount.mountPath).toBe(SOCKET_DIR);
    expect(socket.mount.readOnly).toBeFalsy();

    // The token: projected for the broker's audience, not the API server's.
    const token = agentVolumeAt(r, o.oidcTokenFile as string)!;
    expect(token.mount.readOnly).toBe(true);
    expect(token.volume.projected.sources).toEqual([{ serviceAccountToken: { audience: 'writ', expirationSeconds: 3600, path: 'token' } }]);
    expect(token.mount.mountPath).toBe('/var/run/secrets/writ-agent');

    // The data dir: writable, per pod.
    const data = agentVolumeAt(r, o.dataDir as string)!;
    expect(data.volume.emptyDir).toBeDefined();
    expect(data.mount.mountPath).toBe(o.dataDir);
  });

  it('has the node\'s PID namespace, and root with CAP_SYS_PTRACE only, on a read-only root filesystem', () => {
    const r = render();
    const pod = podOf(r);
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.securityContext).toMatchObject({ seccompProfile: { type: 'RuntimeDefault' } });
    expect(agentOf(r).securityContext).toEqual({
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['SYS_PTRACE'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(agentOf(r).securityContext.privileged).toBeUndefined();
    expect(agentOf(r).image).toBe(r.container.image);
    expect(agentOf(r).imagePullPolicy).toBe(r.container.imagePullPolicy);
    expect(agentOf(r).resources).toMatchObject({ requests: { cpu: expect.any(String), memory: expect.any(String) }, limits: { memory: expect.any(String) } });
  });

  it('runs as ServiceAccount <fullname>-agent, with no Kubernetes API token mounted', () => {
    const r = render();
    const pod = podOf(r);
    expect(pod.serviceAccountName).toBe('writ-agent');
    expect(pod.automountServiceAccountToken).toBe(false);
    const sa = r.all('ServiceAccount').find((s) => s.metadata.name === 'writ-agent')!;
    expect(sa).toMatchObject({ metadata: { namespace: NAMESPACE }, automountServiceAccountToken: false });
  });

  it('probes the socket with exec (the agent has no HTTP port)', () => {
    const r = render();
    const c = agentOf(r);
    expect(c.ports).toBeUndefined();
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
      expect(probe.httpGet).toBeUndefined();
      expect(probe.exec.command).toEqual(['test', '-S', `${SOCKET_DIR}/api.sock`]);
    }
  });

  it('carries labels of its own: the broker\'s Service, PodDisruptionBudget and NetworkPolicy do not select its pods', () => {
    const r = render({ 'networkPolicy.enabled': true });
    const labels = daemonSet(r).spec.template.metadata.labels as Record<string, string>;
    expect(daemonSet(r).spec.selector.matchLabels).toEqual(labels);
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    expect(selects(r.all('Service').find((s) => s.metadata.name === 'writ')!.spec.selector)).toBe(false);
    expect(selects(r.one('PodDisruptionBudget').spec.selector.matchLabels)).toBe(false);
    expect(selects(r.one('NetworkPolicy').spec.podSelector.matchLabels)).toBe(false);
    expect(selects(r.deployment.spec.selector.matchLabels)).toBe(false);
  });

  it('follows its values', async () => {
    const r = helm.render({
      set: {
        ...BUNDLE,
        'agent.server': 'https://writ.example.com',
        'agent.trustBundle.key': 'ca.pem',
        'agent.socketHostPath': '/run/spire/sockets',
        'agent.tokenAudience': 'writ-agent',
        'agent.tokenExpirationSeconds': 7200,
        'agent.syncIntervalMs': 2000,
        'agent.hostPID': false,
        'agent.priorityClassName': 'system-node-critical',
        'agent.nodeSelector.kubernetes\\.io/os': 'linux',
        'agent.tolerations[0].operator': 'Exists',
        'agent.podAnnotations.example\\.com/team': 'identity',
      },
    });
    const o = await parsedOptions(r);
    expect(o).toMatchObject({ server: 'https://writ.example.com', socket: 'unix:///run/spire/sockets/api.sock', syncInterval: 2000 });
    expect(agentVolumeAt(r, '/run/spire/sockets/api.sock')!.volume.hostPath).toEqual({ path: '/run/spire/sockets', type: 'DirectoryOrCreate' });
    expect(agentVolumeAt(r, o.ca as string)!.volume.configMap.items).toEqual([{ key: 'ca.pem', path: 'bundle.pem' }]);
    expect(agentVolumeAt(r, o.oidcTokenFile as string)!.volume.projected.sources[0].serviceAccountToken).toMatchObject({ audience: 'writ-agent', expirationSeconds: 7200 });
    expect(agentOf(r).livenessProbe.exec.command).toEqual(['test', '-S', '/run/spire/sockets/api.sock']);
    const pod = podOf(r);
    expect(pod).toMatchObject({ hostPID: false, priorityClassName: 'system-node-critical', nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ operator: 'Exists' }] });
    expect(daemonSet(r).spec.template.metadata.annotations).toEqual({ 'example.com/team': 'identity' });
  });

  describe('refuses values that cannot work, saying what to change', () => {
    const refused = (set: Record<string, string | number | boolean | null>, message: RegExp) => {
      const r = helm.template({ set });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(message);
    };
    it('no trust bundle ConfigMap', () => {
      refused({ 'agent.enabled': true }, /agent\.trustBundle\.configMap: the agent needs the broker's trust bundle .*kubectl -n writ-test create configmap writ-bundle --from-file=bundle\.pem=.*application\/x-pem-file.*\/v1\/bundle/);
    });
    it('schema violations', () => {
      refused({ ...BUNDLE, 'agent.tokenExpirationSeconds': 300 }, /\/agent\/tokenExpirationSeconds.*minimum/);
      refused({ ...BUNDLE, 'agent.server': 'http://writ.example.com' }, /\/agent\/server.*does not match pattern/);
      refused({ ...BUNDLE, 'agent.socketHostPath': 'run/writ' }, /\/agent\/socketHostPath.*does not match pattern/);
      refused({ ...BUNDLE, 'agent.joinToken': 'x' }, /additional properties 'joinToken' not allowed/);
    });
  });

  it('with agent.kubelet, asks its node\'s kubelet (the host IP), verified against the CA ConfigMap, with a token of the API server\'s audience, allowed nodes/proxy get', async () => {
    const r = render({ 'agent.kubelet.enabled': true, 'agent.kubelet.caConfigMap': 'kubelet-ca' });
    const o = await parsedOptions(r);
    expect(o).toMatchObject({ kubeletUrl: 'https://$(NODE_IP):10250', kubeletCa: '/etc/writ-agent/kubelet/ca.crt', kubeletTokenFile: '/var/run/secrets/writ-agent/kubelet-token' });
    expect(agentOf(r).env).toEqual([{ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }]);
    expect(agentVolumeAt(r, '/etc/writ-agent/kubelet/ca.crt')!.volume.configMap).toEqual({ name: 'kubelet-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    const sources = agentVolumeAt(r, '/var/run/secrets/writ-agent/kubelet-token')!.volume.projected.sources as any[];
    expect(sources.find((x) => x.serviceAccountToken.path === 'kubelet-token').serviceAccountToken.audience).toBeUndefined(); // the API server's, which the kubelet's webhook authenticates
    expect(r.one('ClusterRole').rules).toEqual([{ apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get'] }]);
    expect(r.one('ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: daemonSet(r).spec.template.spec.serviceAccountName, namespace: NAMESPACE }]);
    expect(render().all('ClusterRole')).toEqual([]);
    const refused = helm.template({ set: { ...BUNDLE, 'agent.kubelet.enabled': true } });
    expect(refused.stderr).toMatch(/agent\.kubelet\.caConfigMap: k8s: selectors ask the kubelet over TLS, verified/);
  });

  it('helm lint --strict passes with the agent enabled', () => {
    const r = helm.run(['lint', CHART, '--strict', '--namespace', NAMESPACE, '--set', 'agent.enabled=true', '--set', 'agent.trustBundle.configMap=writ-bundle']);
    expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
  });

  it('NOTES.txt says what the broker needs: the agent\'s entry, the cluster issuer, and how connectors reach the socket', () => {
    const notes = (extra: string[]) => {
      const r = helm.run(['install', 'writ', CHART, '--dry-run=client', '--namespace', NAMESPACE, ...extra]);
      expect(r.status).toBe(0);
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    expect(notes([])).not.toContain('Node agent');
    const text = notes(['--set', 'agent.enabled=true', '--set', 'agent.trustBundle.configMap=writ-bundle', '--set', 'agent.tokenAudience=writ-agent']);
    expect(text).toContain('--selector "oidc:iss:$ISSUER" --selector oidc:sub:system:serviceaccount:writ-test:writ-agent');
    expect(text).toContain('kubectl get --raw /.well-known/openid-configuration');
    expect(text).toMatch(/oidc_issuers[\s\S]*audience: writ-agent,/);
    expect(text).toContain(`hostPath: {path: ${SOCKET_DIR}, type: Directory}`);
    expect(text).toContain(`mountPath: ${SOCKET_DIR}, readOnly: true`);
    expect(text).toContain(`SPIFFE_ENDPOINT_SOCKET, value: unix://${SOCKET_DIR}/api.sock`);
  });
});
