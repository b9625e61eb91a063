/**
 * Peer credentials of a Workload API caller, read from the kernel.
 *
 * The SPIFFE Workload Endpoint "MUST NOT require any direct authentication of
 * its clients"; implementers instead identify the caller out of band, e.g. "by
 * examining kernel socket state" (SPIFFE Workload Endpoint §5 Authentication).
 * On Linux that state is SO_PEERCRED (unix(7)): the pid, uid and gid the kernel
 * recorded when the client called connect(2). Node.js has no API for it, so a
 * small N-API addon (native/peercred) makes the getsockopt(2) call.
 *
 * @example
 *   server.on('connection', (socket) => {
 *     const creds = peerCredentials(socket);
 *     const selectors = selectorsOf(creds); // ['unix:uid:1000', 'unix:gid:1000', …]
 *   });
 */
import { readFileSync, readlinkSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';

export interface PeerCredentials {
  /** Peer pid at connect time; 0 when the peer is in a pid namespace we cannot see. */
  pid: number;
  /** Effective uid of the peer at connect time. */
  uid: number;
  /** Effective gid of the peer at connect time. */
  gid: number;
}

type NativePeerCredentials = (fd: number) => PeerCredentials;

/** The built addon, relative to both src/agent (jest) and dist/agent (tsc). */
const ADDON_PATH = join(__dirname, '..', '..', 'native', 'peercred', 'build', 'Release', 'peercred.node');

export class PeerCredentialsUnavailable extends Error {
  readonly code = 'ERR_PEERCRED_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PeerCredentialsUnavailable';
  }
}

let loaded: NativePeerCredentials | undefined;

/**
 * Loads the native addon once. Throws PeerCredentialsUnavailable naming the
 * build command when the platform has no SO_PEERCRED or the addon is missing.
 */
export function loadPeerCredentials(addonPath: string = ADDON_PATH): NativePeerCredentials {
  if (loaded && addonPath === ADDON_PATH) return loaded;
  if (process.platform !== 'linux') {
    throw new PeerCredentialsUnavailable(
      `peer credentials need SO_PEERCRED, which is Linux-only (this is ${process.platform})`,
    );
  }
  const mod: { exports: { peerCredentials?: unknown } } = { exports: {} };
  try {
    // process.dlopen, not require: no bundler or jest module registry in between.
    process.dlopen(mod, addonPath);
  } catch (cause) {
    throw new PeerCredentialsUnavailable(
      `cannot load the peercred addon at ${addonPath} (${(cause as Error).message}); ` +
        'build it with `bash scripts/build-native.sh` (needs python3, make and a C compiler)',
      { cause },
    );
  }
  const fn = mod.exports.peerCredentials;
  if (typeof fn !== 'function') {
    throw new PeerCredentialsUnavailable(`${addonPath} does not export peerCredentials(fd)`);
  }
  const native = fn as NativePeerCredentials;
  if (addonPath === ADDON_PATH) loaded = native;
  return native;
}

/** Node's internal stream handle; `fd` exists on Unix for Pipe and TCP handles. */
interface StreamHandle {
  fd?: number;
  constructor: { name: string };
}

/**
 * The SO_PEERCRED credentials of a connected Unix domain socket (either end).
 * Throws when the socket is not a Unix socket or has no file descriptor yet
 * (not connected, or already destroyed).
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!handle) {
    throw new TypeError('peerCredentials: socket has no handle (not connected, or destroyed)');
  }
  // libuv wraps AF_UNIX sockets in Pipe handles and TCP sockets in TCP handles.
  if (handle.constructor.name !== 'Pipe') {
    throw new TypeError(`peerCredentials: not a Unix domain socket (handle is ${handle.constructor.name})`);
  }
  const fd = handle.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new TypeError('peerCredentials: socket has no file descriptor');
  }
  return loadPeerCredentials()(fd);
}

/**
 * The executable of a process, as /proc/<pid>/exe links to it. The kernel
 * appends " (deleted)" when the file was unlinked after exec, so such a
 * process matches no ordinary `unix:path` selector. Throws (ENOENT, EACCES)
 * when the process is gone or we may not inspect it.
 */
export function executableOf(pid: number): string {
  assertPid(pid);
  return readlinkSync(`/proc/${pid}/exe`);
}

/** Supplementary group ids of a process, from the `Groups:` line of /proc/<pid>/status. */
export function supplementaryGroupsOf(pid: number): number[] {
  assertPid(pid);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('Groups:'));
  if (!line) return [];
  return line
    .slice('Groups:'.length)
    .trim()
    .split(/\s+/)
    .filter((g) => g !== '')
    .map(Number);
}

/**
 * Selectors for a caller, named as SPIRE's unix workload attestor names them
 * (spiffe/spire pkg/agent/plugin/workloadattestor/unix/unix_posix.go, Attest):
 * selector type `unix`, values `uid:N`, `gid:N`, `supplementary_gid:N`,
 * `path:/abs/exe`.
 *
 * Emitted: unix:uid, unix:gid (from SO_PEERCRED), unix:supplementary_gid and
 * unix:path (from /proc/<pid>, so they need pid > 0, i.e. a caller in our pid
 * namespace or a child of it).
 * Not emitted (yet):
 * - unix:user, unix:group, unix:supplementary_group — name lookups go through
 *   NSS (getpwuid_r), which Node cannot call for an arbitrary uid;
 * - unix:sha256 — hashing the executable is I/O to do asynchronously and, as in
 *   SPIRE (`discover_workload_path`, `workload_size_limit`), opt-in.
 *
 * Differences from SPIRE worth knowing: SPIRE reads uid/gid from /proc at
 * attestation time; we take them from SO_PEERCRED, fixed at connect(2), which a
 * caller cannot change later. The /proc reads (groups, path) race with pid
 * reuse exactly as SPIRE's do; the agent should confirm that the pid still
 * names the caller after attesting (SPIRE does this in pkg/common/peertracker).
 */
export function selectorsOf(creds: PeerCredentials): string[] {
  const selectors = [`unix:uid:${creds.uid}`, `unix:gid:${creds.gid}`];
  if (creds.pid > 0) {
    // The pid must still name the process that connected, before and after /proc is read (SPIRE's
    // peertracker): the same start time both times, and the effective uid the kernel recorded.
    const before = processIdentity(creds.pid);
    if (before.euid !== creds.uid) throw new Error(`pid ${creds.pid} now runs as uid ${before.euid}, not the caller's ${creds.uid}: the caller exited and its pid was reused`);
    for (const gid of supplementaryGroupsOf(creds.pid)) selectors.push(`unix:supplementary_gid:${gid}`);
    selectors.push(`unix:path:${executableOf(creds.pid)}`);
    if (processIdentity(creds.pid).startTime !== before.startTime) throw new Error(`pid ${creds.pid} was reused while the caller was attested`);
  }
  return selectors;
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22) and effective uid: together they tell a reused pid apart. */
export function processIdentity(pid: number): { startTime: string; euid: number } {
  assertPid(pid);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces or parentheses: fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTime = fields[22 - 3];
  if (startTime === undefined) throw new Error(`/proc/${pid}/stat has no start time`);
  const uid = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  const euid = Number(uid?.split(/\s+/)[2]);
  if (!Number.isSafeInteger(euid)) throw new Error(`/proc/${pid}/status has no effective uid`);
  return { startTime, euid };
}

function assertPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`not a process id: ${pid}`);
}
