/**
 * The Kubernetes workload attestor of `writ agent`, as SPIRE's `k8s` workload attestor works: the
 * caller's pod and container come from its cgroup (written by the kernel and the container
 * runtime, not by the caller), and what they are (namespace, service account, labels, image)
 * from the kubelet of this node. What is trusted: the kernel's cgroup file, the kubelet's TLS
 * certificate (--kubelet-ca) and its answer; the caller supplies nothing.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

/** A pod and container as the caller's cgroup names them. */
export interface CgroupContainer {
  readonly podUid: string;
  readonly containerId: string;
}

// cgroup v1 (`/kubepods/burstable/pod<uid>/<id>`) and the systemd driver
// (`kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope`, docker-…, crio-…), v1 or v2.
const POD = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;
const CONTAINER = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$/;

/** The pod UID and container ID in a /proc/<pid>/cgroup text, or undefined when the process is in no pod. */
export function containerOfCgroup(text: string): CgroupContainer | undefined {
  for (const line of text.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    if (!path.includes('kubepods')) continue;
    const pod = POD.exec(path);
    const container = CONTAINER.exec(path);
    if (pod && container) return { podUid: pod[1]!.replace(/_/g, '-'), containerId: container[1]! };
  }
  return undefined;
}

/** The parts of a kubelet PodList (GET /pods) the attestor reads. */
interface Pod {
  metadata?: { uid?: string; name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { serviceAccountName?: string; nodeName?: string };
  status?: { containerStatuses?: { name?: string; image?: string; containerID?: string }[]; initContainerStatuses?: { name?: string; image?: string; containerID?: string }[] };
}

/** A label value as a selector part: a pod's labels are written by whoever creates the pod, so they are kept as given but bounded. */
const bounded = (v: string) => v.slice(0, 256);

/** The k8s: selectors of a container of a pod (SPIRE's names). */
export function selectorsOfPod(pod: Pod, containerId: string): string[] | undefined {
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  // containerID is `<runtime>://<id>`.
  const container = statuses.find((c) => c.containerID?.replace(/^[a-z]+:\/\//, '') === containerId);
  if (!container || !pod.metadata?.namespace || !pod.metadata.uid) return undefined;
  const selectors = [`k8s:ns:${pod.metadata.namespace}`, `k8s:pod-uid:${pod.metadata.uid}`];
  if (pod.spec?.serviceAccountName) selectors.push(`k8s:sa:${pod.spec.serviceAccountName}`);
  if (pod.metadata.name) selectors.push(`k8s:pod-name:${pod.metadata.name}`);
  if (pod.spec?.nodeName) selectors.push(`k8s:node-name:${pod.spec.nodeName}`);
  if (container.name) selectors.push(`k8s:container-name:${container.name}`);
  for (const [k, v] of Object.entries(pod.metadata.labels ?? {})) selectors.push(`k8s:pod-label:${bounded(k)}:${bounded(v)}`);
  return selectors;
}

export interface KubeletOptions {
  /** The kubelet's base URL, e.g. https://127.0.0.1:10250 (or the node's IP from the downward API). */
  readonly url: string;
  /** PEM CA the kubelet's serving certificate chains to. */
  readonly caPem: string;
  /** A file holding the token the kubelet authorizes the agent by (a projected service-account token). */
  readonly tokenFile: string;
  /** How long a pod list is reused (ms); a pod not found refreshes it at once. Default 5000. */
  readonly cacheMs?: number;
  readonly now?: () => number;
}

/**
 * The kubelet's pod list (GET /pods, authorized by the agent's service-account token), cached
 * briefly. A container that has just started may be missing from a cached list, so a miss asks again.
 */
export class Kubelet {
  #pods: { at: number; items: Pod[] } | undefined;
  readonly #agent: Agent;

  constructor(private readonly opts: KubeletOptions) {
    this.#agent = new Agent({ ca: opts.caPem, keepAlive: true });
  }

  #list(): Promise<Pod[]> {
    const token = readFileSync(this.opts.tokenFile, 'utf8').trim();
    return new Promise((resolve, reject) => {
      const req = request(new URL('/pods', this.opts.url), { agent: this.#agent, headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeout: 5000 }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 64 * 1024 * 1024) req.destroy(new Error('the kubelet\'s pod list is too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`the kubelet answered ${res.statusCode} to GET /pods`));
          try {
            resolve(((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { items?: Pod[] }).items ?? []));
          } catch (err) {
            reject(new Error(`the kubelet's pod list is not JSON: ${(err as Error).message}`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('the kubelet did not answer in time')));
      req.on('error', reject);
      req.end();
    });
  }

  /** The k8s: selectors of the container `containerId` of pod `podUid`; undefined when the kubelet knows no such container. */
  async selectors(container: CgroupContainer): Promise<string[] | undefined> {
    const now = (this.opts.now ?? Date.now)();
    const find = (items: Pod[]) => {
      const pod = items.find((p) => p.metadata?.uid === container.podUid);
      return pod && selectorsOfPod(pod, container.containerId);
    };
    if (this.#pods && now - this.#pods.at < (this.opts.cacheMs ?? 5000)) {
      const cached = find(this.#pods.items);
      if (cached) return cached;
    }
    this.#pods = { at: now, items: await this.#list() };
    return find(this.#pods.items);
  }

  close(): Promise<void> {
    this.#agent.destroy();
    return Promise.resolve();
  }
}

/** The caller's k8s: selectors: none for a process in no pod; a pod the kubelet does not know is refused (fail closed). */
export async function k8sSelectors(kubelet: Kubelet, pid: number, readCgroup: (pid: number) => string = (p) => readFileSync(`/proc/${p}/cgroup`, 'utf8')): Promise<string[]> {
  if (pid <= 0) return [];
  const container = containerOfCgroup(readCgroup(pid));
  if (!container) return [];
  const selectors = await kubelet.selectors(container);
  if (!selectors) throw new Error(`the kubelet knows no container ${container.containerId.slice(0, 12)} of pod ${container.podUid}`);
  return selectors;
}
