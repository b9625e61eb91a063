import { chmodSync, lstatSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock';
import { WorkloadCache } from './cache';
import { NodeIdentity } from './node-identity';
import { k8sSelectors, Kubelet } from './k8s';
import { peerCredentials, selectorsOf } from './peercred';
import { serveWorkloadApi } from './workload-api';

export { WorkloadCache, type AgentEntry } from './cache';
export { NodeIdentity } from './node-identity';
export { serveWorkloadApi, SECURITY_HEADER, type WorkloadIdentitySource, type X509Identity } from './workload-api';

/** The socket SPIRE's agent documents is /tmp/spire-agent/public/api.sock; Writ's agent keeps its own under /run. */
export const DEFAULT_SOCKET = '/run/writ-agent/public/api.sock';
export const DEFAULT_DATA_DIR = '/var/lib/writ-agent';

export interface AgentOptions {
  readonly server: string;
  /** PEM trust anchors for the broker's TLS certificate, until the agent has the trust bundle. */
  readonly caPem: string;
  readonly socketPath: string;
  readonly dataDir: string;
  readonly joinToken?: string;
  /** An OIDC token file (a projected service-account token) to attest with, at start and whenever the SVID lapsed. */
  readonly oidcTokenFile?: string;
  /** A node certificate and key (PEM files) of a PKI the broker trusts (the x509pop attestor). */
  readonly x509pop?: { readonly certFile: string; readonly keyFile: string };
  /** Kubernetes workload attestation: the node's kubelet, its CA, and the token it authorizes the agent by. */
  readonly kubelet?: { readonly url: string; readonly caPem: string; readonly tokenFile: string };
  /** How often the agent asks the broker for its entries, the bundle and due SVIDs (default 5 s). */
  readonly syncIntervalMs?: number;
  readonly logger: Logger;
  readonly clock?: Clock;
}

export interface RunningAgent {
  readonly spiffeId: string;
  readonly socketPath: string;
  readonly cache: WorkloadCache;
  /** One round with the broker now (renewal of the node SVID when due, then the cache). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `SPIFFE_ENDPOINT_SOCKET` (SPIFFE Workload Endpoint §4): `unix:///abs/path` (or `unix:/abs/path`);
 * a plain absolute path is accepted too. Anything else is refused with the reason.
 */
export function socketPathOf(value: string): string {
  const m = /^unix:(?:\/\/)?(\/.*)$/.exec(value);
  const path = m ? m[1]! : value;
  if (value.startsWith('tcp:')) throw new Error(`${value}: Writ's agent serves the Workload API on a Unix domain socket only`);
  if (!isAbsolute(path) || path.includes('\0')) throw new Error(`${value}: the socket must be unix:///an/absolute/path`);
  return path;
}

/**
 * The socket's directory must be the agent's and writable by nobody else, so that no other user
 * can replace the socket with their own; the socket itself is world-connectable, and the peer
 * credentials decide what each caller gets (as with SPIRE's agent). A stale socket is removed.
 */
export function secureSocketPath(socketPath: string): void {
  const dir = dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to the agent (uid ${uid}): another user could replace the socket`);
  if ((st.mode & 0o022) !== 0) throw new Error(`${dir} is writable by its group or by others (mode ${(st.mode & 0o777).toString(8)}): another user could replace the socket; chmod go-w it`);
  try {
    const existing = lstatSync(socketPath);
    if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
    unlinkSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The unix workload attestor (the caller's selectors from its socket's peer credentials), and the k8s one when a kubelet is configured. */
function callerAttestor(kubelet: Kubelet | undefined) {
  return async (socket: Socket): Promise<readonly string[]> => {
    const creds = peerCredentials(socket);
    const unix = selectorsOf(creds);
    return kubelet ? [...unix, ...(await k8sSelectors(kubelet, creds.pid))] : unix;
  };
}

/**
 * Runs the node agent: its node identity (attested with a join token once, then renewed), the
 * cache of its workloads' SVIDs, and the Workload API on a Unix socket. On a failed round with
 * the broker it backs off (1 s doubling to 30 s) and keeps serving what is cached until it expires.
 */
export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const clock = opts.clock ?? systemClock;
  const { logger } = opts;
  secureSocketPath(opts.socketPath);
  let cache: WorkloadCache | undefined;
  const node = new NodeIdentity({ server: opts.server, ca: () => cache?.bundlePem ?? opts.caPem, dataDir: opts.dataDir, ...(opts.joinToken && { joinToken: opts.joinToken }), ...(opts.oidcTokenFile && { oidcTokenFile: opts.oidcTokenFile }), ...(opts.x509pop && { x509pop: opts.x509pop }), clock, logger });
  const svid = await node.start();
  const trustDomain = new URL(svid.spiffeId).host;
  cache = new WorkloadCache({ broker: () => node.client(), trustDomain, clock, logger });
  const round = async () => {
    // An SVID that lapsed (a long outage) cannot be renewed; with an OIDC token the agent attests again.
    if (node.expired() && node.canReattest) await node.attest();
    else if (node.dueForRenewal()) await node.renew();
    await cache!.sync();
  };
  await round().catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, 'the first round with the broker failed; retrying'));
  const kubelet = opts.kubelet && new Kubelet(opts.kubelet);
  const api = await serveWorkloadApi({ socketPath: opts.socketPath, source: cache, attest: callerAttestor(kubelet), logger });
  chmodSync(opts.socketPath, 0o777); // any local process may ask; its peer credentials decide what it gets
  logger.info({ socket: opts.socketPath, spiffeId: svid.spiffeId }, 'Workload API listening');

  const every = opts.syncIntervalMs ?? 5000;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const delay = failures === 0 ? every : Math.min(1000 * 2 ** (failures - 1), 30_000);
    timer = setTimeout(() => {
      cache!.expire();
      round().then(
        () => (failures = 0),
        (err: unknown) => {
          failures++;
          logger.warn({ err: { message: (err as Error).message }, failures }, 'a round with the broker failed; serving cached SVIDs until they expire');
        },
      ).finally(schedule);
    }, delay);
    timer.unref?.();
  };
  schedule();
  return {
    spiffeId: svid.spiffeId,
    socketPath: opts.socketPath,
    cache,
    tick: round,
    close: async () => {
      stopped = true;
      clearTimeout(timer);
      await api.close();
      await kubelet?.close();
    },
  };
}

/** Reads the bootstrap trust anchors, naming the file when it cannot. */
export function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the trust bundle ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
