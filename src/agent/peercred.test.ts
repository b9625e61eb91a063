import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PeerCredentialsUnavailable,
  executableOf,
  loadPeerCredentials,
  peerCredentials,
  processIdentity,
  selectorsOf,
  supplementaryGroupsOf,
} from './peercred';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let dir: string;
let socketPath: string;
let server: net.Server;
/** Server-side sockets, in the order clients connected. */
let accepted: net.Socket[];
let waiting: Array<(s: net.Socket) => void>;

function nextConnection(): Promise<net.Socket> {
  const ready = accepted.shift();
  if (ready) return Promise.resolve(ready);
  return new Promise((resolve) => waiting.push(resolve));
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-peercred-'));
  // mkdtemp makes the dir 0700; a client running as another uid must reach the socket.
  chmodSync(dir, 0o755);
  socketPath = join(dir, 'agent.sock');
  accepted = [];
  waiting = [];
  server = net.createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  chmodSync(socketPath, 0o777);
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** A node child that connects to the socket and stays until the server closes it. */
function spawnClient(options: { uid?: number; gid?: number } = {}): ChildProcess {
  const script = `const s = require('node:net').connect(${JSON.stringify(socketPath)});
    s.on('close', () => process.exit(0)); s.on('error', (e) => { console.error(e.message); process.exit(2); });`;
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit'], ...options });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('SPIFFE Workload Endpoint §5: identifying the caller from kernel socket state (SO_PEERCRED)', () => {
  it('reports this process for a client in the same process', async () => {
    const client = net.connect(socketPath);
    const conn = await nextConnection();
    try {
      expect(peerCredentials(conn)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    } finally {
      client.destroy();
      conn.destroy();
    }
  });

  it("reports a child's pid and executable, not the server's", async () => {
    const child = spawnClient();
    const done = exited(child);
    const conn = await nextConnection();
    try {
      // Read while the child is alive: it waits for us to close the connection.
      const creds = peerCredentials(conn);
      expect(creds.pid).toBe(child.pid);
      expect(creds.pid).not.toBe(process.pid);
      expect(creds.uid).toBe(process.getuid!());
      expect(executableOf(creds.pid)).toBe(realpathSync(process.execPath));
      const selectors = selectorsOf(creds);
      expect(selectors.slice(0, 2)).toEqual([`unix:uid:${creds.uid}`, `unix:gid:${creds.gid}`]);
      expect(selectors).toContain(`unix:path:${realpathSync(process.execPath)}`);
      for (const gid of supplementaryGroupsOf(creds.pid)) expect(selectors).toContain(`unix:supplementary_gid:${gid}`);
    } finally {
      conn.destroy();
    }
    expect(await done).toBe(0);
  });

  (isRoot ? it : it.skip)('reports the uid/gid a child connected as (root only: spawns as nobody)', async () => {
    const child = spawnClient({ uid: NOBODY, gid: NOBODY });
    const done = exited(child);
    const conn = await nextConnection();
    try {
      const creds = peerCredentials(conn);
      expect(creds).toEqual({ pid: child.pid, uid: NOBODY, gid: NOBODY });
      expect(creds.uid).not.toBe(process.getuid!());
      // libuv drops supplementary groups (setgroups(0, NULL)) when spawning with uid/gid.
      expect(selectorsOf(creds)).toEqual([
        `unix:uid:${NOBODY}`,
        `unix:gid:${NOBODY}`,
        `unix:path:${realpathSync(process.execPath)}`,
      ]);
    } finally {
      conn.destroy();
    }
    expect(await done).toBe(0);
  });
});

describe('selectors of a caller', () => {
  it('are SPIRE\'s unix selectors for a live process', () => {
    const selectors = selectorsOf({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(selectors).toEqual(expect.arrayContaining([`unix:uid:${process.getuid!()}`, `unix:gid:${process.getgid!()}`, `unix:path:${realpathSync(process.execPath)}`]));
    expect(processIdentity(process.pid)).toEqual({ startTime: expect.stringMatching(/^\d+$/), euid: process.getuid!() });
  });

  it('refuse a pid that runs as another uid than the one the kernel recorded at connect (a reused pid)', () => {
    expect(() => selectorsOf({ pid: process.pid, uid: process.getuid!() + 4242, gid: 0 })).toThrow(/now runs as uid .* the caller exited and its pid was reused/);
  });

  it('refuse a caller that has exited', () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    expect(() => selectorsOf({ pid: Number(gone.stdout), uid: process.getuid!(), gid: 0 })).toThrow(/ENOENT/);
  });
});

describe('peerCredentials refuses what is not a connected Unix socket', () => {
  it('refuses a TCP socket', async () => {
    const tcp = net.createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as net.AddressInfo;
    const accept = new Promise<net.Socket>((resolve) => tcp.once('connection', resolve));
    const client = net.connect(port, '127.0.0.1');
    const conn = await accept;
    try {
      expect(() => peerCredentials(conn)).toThrow(/not a Unix domain socket \(handle is TCP\)/);
    } finally {
      client.destroy();
      conn.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });

  it('refuses a destroyed socket', async () => {
    const client = net.connect(socketPath);
    const conn = await nextConnection();
    conn.destroy();
    client.destroy();
    expect(() => peerCredentials(conn)).toThrow(/no handle/);
  });

  it('the addon reports errno text for a descriptor that is not a socket', () => {
    const native = loadPeerCredentials();
    expect(() => native(0x7fffffff)).toThrow(/SO_DOMAIN\) failed: Bad file descriptor \(errno 9\)/);
    const fd = openSync(__filename, 'r');
    try {
      expect(() => native(fd)).toThrow(/Socket operation on non-socket \(errno 88\)/);
    } finally {
      closeSync(fd);
    }
  });

  it('names the build command when the addon cannot be loaded', () => {
    const load = () => loadPeerCredentials(join(dir, 'missing.node'));
    expect(load).toThrow(PeerCredentialsUnavailable);
    expect(load).toThrow(/scripts\/build-native\.sh/);
  });
});
