/**
 * `writ agent` against a real broker, called by a SPIFFE Workload API client Writ did not write
 * (test/interop/workload_api_client.py: Debian's grpcio, Python's cryptography, ssl and PyJWT):
 * the caller's identity comes from its socket's peer credentials, SVIDs and bundles verify with
 * those libraries, open streams follow CA rotation, renewal and entry removal, and an SVID
 * past its expiry is never served, with or without the broker.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { startAgent, type RunningAgent } from '../../src/agent';
import { caFingerprint } from '../../src/attestation';
import { WorkloadApiError, WorkloadApiSource } from '../../src/sdk';
import { ManualClock } from '../../src/core/clock';
import { CLI } from '../support/cli';
import { openssl, opensslCaChain } from '../support/openssl';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';

const PYTHON = '/usr/bin/python3';
const CLIENT = resolve(__dirname, '../interop/workload_api_client.py');
const TD = 'agent.test';
const AGENT_ID = `spiffe://${TD}/agent/node-1`;
const CONNECTOR = `spiffe://${TD}/connector/python`;

const python = spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools, cryptography, jwt'], { encoding: 'utf8' });
const haveClient = python.status === 0;
// CI installs Debian's python3-grpcio and python3-grpc-tools (.ci/run): there, their absence fails.
const describeInterop = haveClient ? describe : describe.skip;
if (!haveClient && process.env.CI) test('python3-grpcio and python3-grpc-tools are installed', () => expect(python.stderr).toBe(''));
if (!haveClient && !process.env.CI) test.todo(`the Workload API interop tests need ${PYTHON} with grpcio, grpc_tools, cryptography and PyJWT`);

let fx: BrokerFixture;
let link: Awaited<ReturnType<typeof brokerLink>>;

/** The network between the agent and the broker, as a TCP relay on a fixed port: stop() cuts it (every connection), start() restores it. */
async function brokerLink(target: URL) {
  const sockets = new Set<Socket>();
  const relay = createNetServer((down) => {
    const up = connect(Number(target.port), target.hostname);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const port = (relay.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        relay.close(() => r());
        if (!relay.listening) r();
      }),
    start: () => new Promise<void>((r) => relay.listen(port, '127.0.0.1', r)),
  };
}
const K8S_ISSUER = 'https://kubernetes.agent.test';
let k8sDir: string;
let k8sKey: CryptoKey;
/** A projected service-account token for the agent's DaemonSet, as the kubelet writes it. */
const serviceAccountToken = () =>
  new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k8s-1' }).setIssuer(K8S_ISSUER).setSubject('system:serviceaccount:writ:writ-agent').setAudience('writ').setIssuedAt().setExpirationTime('10m').sign(k8sKey);
let agent: RunningAgent;
let work: string;
let socket: string;
/** The client's copy that every user can read. */
let client_: string;
const clock = new ManualClock(Date.now());
const isRoot = process.getuid?.() === 0;

/** Runs the Python client once (as `uid` when given), asynchronously: the agent answers from this process. Its JSON lines. */
function client(args: string[], opts: { uid?: number; timeout?: number } = {}, at = socket): Promise<Record<string, any>[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolvePromise, reject) => {
    const child = spawn(PYTHON, [client_, at, ...args], {
      env: { ...process.env, CLIENT_TIMEOUT: String(opts.timeout ?? 10), HOME: '/tmp' },
      ...(opts.uid !== undefined && { uid: opts.uid, gid: opts.uid }),
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the Python client failed (${code}): ${err}`));
      resolvePromise(out.trim().split('\n').map((l) => JSON.parse(l)));
    });
  });
}

/** A streaming client: each message as it arrives. */
function streamingClient(args: string[]) {
  const child = spawn(PYTHON, [client_, socket, ...args], { env: { ...process.env, CLIENT_TIMEOUT: '60' } });
  const lines: Record<string, any>[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  let buffer = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, i)));
      buffer = buffer.slice(i + 1);
    }
  });
  return {
    lines,
    async next(count: number, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (lines.length < count) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for message ${count}; have ${JSON.stringify(lines)}`);
        await agent.tick().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
      return lines[count - 1]!;
    },
    /** The first message from now on that `pred` accepts (an SVID renewed meanwhile may come first). */
    async until(pred: (line: Record<string, any>) => boolean, ms = 20_000) { // eslint-disable-line @typescript-eslint/no-explicit-any
      const from = lines.length;
      const deadline = Date.now() + ms;
      for (;;) {
        const found = lines.slice(from).find(pred);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`timed out; have ${JSON.stringify(lines.slice(from))}`);
        await agent.tick().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: () => child.kill(),
  };
}

const python3Path = realpathSync(PYTHON);

beforeAll(async () => {
  if (!haveClient) return;
  // A Kubernetes-like OIDC issuer whose projected service-account tokens the broker trusts (the oidc attestor).
  k8sDir = mkdtempSync(join(tmpdir(), 'writ-agent-k8s-'));
  const pair = await generateKeyPair('ES256');
  k8sKey = pair.privateKey as CryptoKey;
  // An enterprise PKI the broker trusts (x509pop), and a node certificate from it.
  opensslCaChain(k8sDir);
  writeFileSync(join(k8sDir, 'node.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:node-3.agent.test\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=node-3'], { cwd: k8sDir });
  openssl(['x509', '-req', '-in', 'node.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'node.crt', '-days', '2', '-extfile', 'node.ext'], { cwd: k8sDir });
  writeFileSync(join(k8sDir, 'node-chain.crt'), readFileSync(join(k8sDir, 'node.crt'), 'utf8') + readFileSync(join(k8sDir, 'int.crt'), 'utf8'));
  writeFileSync(join(k8sDir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k8s-1', alg: 'ES256' }] }));
  fx = await startBrokerFixture({
    prefix: 'writ-agent-',
    trustDomain: TD,
    policies: '',
    env: {
      WRIT_OIDC_ISSUERS: JSON.stringify([{ issuer: K8S_ISSUER, jwks_file: join(k8sDir, 'jwks.json'), audience: 'writ', algorithms: ['ES256'] }]),
      WRIT_X509POP: JSON.stringify({ ca_bundle_file: join(k8sDir, 'root.crt'), intermediates_file: join(k8sDir, 'int.crt') }),
    },
  });
  // The agent's own entry and join token, as an operator makes them.
  const node = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: AGENT_ID });
  const token = await fx.admin('/v1/admin/join-tokens', 'POST', { entry_id: node.json.id });
  const mine = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: CONNECTOR, parent_id: AGENT_ID, selectors: [`unix:uid:${process.getuid!()}`, `unix:path:${python3Path}`] });
  expect(mine.status).toBe(201);
  work = mkdtempSync(join(tmpdir(), 'writ-agent-'));
  chmodSync(work, 0o755); // other users' processes reach the socket through it
  // The client and the proto, where another user can read them (a checkout may sit in a 0700 directory).
  cpSync(CLIENT, join(work, 'interop', 'test', 'interop', 'workload_api_client.py'));
  cpSync(resolve(__dirname, '../../proto'), join(work, 'interop', 'proto'), { recursive: true });
  for (const dir of ['interop', 'interop/test', 'interop/test/interop', 'interop/proto', 'interop/proto/spiffe', 'interop/proto/spiffe/workload']) chmodSync(join(work, dir), 0o755);
  client_ = join(work, 'interop', 'test', 'interop', 'workload_api_client.py');
  socket = join(work, 'public', 'api.sock');
  link = await brokerLink(new URL(fx.broker.apiUrl));
  agent = await startAgent({ server: link.url, caPem: fx.bundlePem, socketPath: socket, dataDir: join(work, 'data'), joinToken: token.json.token, syncIntervalMs: 60_000, logger: pino({ level: 'silent' }), clock });
});

afterAll(async () => {
  await agent?.close();
  await link?.stop();
  await fx?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  if (k8sDir) rmSync(k8sDir, { recursive: true, force: true });
});

describeInterop('writ agent serves the SPIFFE Workload API', () => {
  it('attests itself with the join token once, and a restart on its data directory needs none', async () => {
    expect(agent.spiffeId).toBe(AGENT_ID);
    const attested = () => fx.broker.db.prisma.auditEvent.count({ where: { type: 'svid.issued', actor: AGENT_ID } });
    const before = await attested();
    const again = await startAgent({ server: fx.broker.apiUrl, caPem: fx.bundlePem, socketPath: join(work, 'second', 'api.sock'), dataDir: join(work, 'data'), syncIntervalMs: 60_000, logger: pino({ level: 'silent' }), clock });
    try {
      expect(again.spiffeId).toBe(AGENT_ID);
      expect(await attested()).toBe(before); // the kept SVID, not a new attestation (the join token is spent)
    } finally {
      await again.close();
    }
    await expect(startAgent({ server: fx.broker.apiUrl, caPem: fx.bundlePem, socketPath: join(work, 'third', 'api.sock'), dataDir: join(work, 'empty'), logger: pino({ level: 'silent' }), clock })).rejects.toThrow(/no live node SVID and nothing to attest with: give --join-token/);
  });

  it('attests with a projected service-account token file (oidc), and attests again once its SVID lapsed', async () => {
    const id = `spiffe://${TD}/agent/daemonset`;
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: id, selectors: [`oidc:iss:${K8S_ISSUER}`, 'oidc:sub:system:serviceaccount:writ:writ-agent'] })).status).toBe(201);
    const tokenFile = join(work, 'sa-token');
    writeFileSync(tokenFile, await serviceAccountToken());
    const own = new ManualClock(Date.now());
    const attested = () => fx.broker.db.prisma.auditEvent.count({ where: { type: 'svid.issued', actor: id } });
    const k8s = await startAgent({ server: fx.broker.apiUrl, caPem: fx.bundlePem, socketPath: join(work, 'k8s', 'api.sock'), dataDir: join(work, 'k8s-data'), oidcTokenFile: tokenFile, syncIntervalMs: 60_000, logger: pino({ level: 'silent' }), clock: own });
    try {
      expect(k8s.spiffeId).toBe(id);
      expect(await attested()).toBe(1);
      own.advance(2 * 3600); // the node SVID lapsed (a long outage): renewal is impossible, the token file is not
      writeFileSync(tokenFile, await serviceAccountToken()); // the kubelet rotated it meanwhile
      await k8s.tick();
      expect(await attested()).toBe(2);
    } finally {
      await k8s.close();
    }
  });

  it('attests with a node certificate of a PKI the broker trusts (x509pop)', async () => {
    const id = `spiffe://${TD}/agent/node-3`;
    const ca = caFingerprint(readFileSync(join(k8sDir, 'root.crt'), 'utf8'));
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: id, selectors: ['x509pop:subject_cn:node-3', `x509pop:ca:${ca}`] })).status).toBe(201);
    const pop = await startAgent({ server: fx.broker.apiUrl, caPem: fx.bundlePem, socketPath: join(work, 'pop', 'api.sock'), dataDir: join(work, 'pop-data'), x509pop: { certFile: join(k8sDir, 'node-chain.crt'), keyFile: join(k8sDir, 'node.key') }, syncIntervalMs: 60_000, logger: pino({ level: 'silent' }), clock });
    try {
      expect(pop.spiffeId).toBe(id);
    } finally {
      await pop.close();
    }
  });

  it('refuses a socket directory others can write to (they could replace the socket)', async () => {
    const open = join(work, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    await expect(startAgent({ server: fx.broker.apiUrl, caPem: fx.bundlePem, socketPath: join(open, 'api.sock'), dataDir: join(work, 'data'), logger: pino({ level: 'silent' }), clock })).rejects.toThrow(/writable by its group or by others \(mode 777\)/);
  });

  it('gives the caller its X.509-SVID: the key matches, and a TLS handshake trusting only the bundle succeeds (Python ssl)', async () => {
    const [resp] = await client(['x509']);
    expect(resp!.svids).toEqual([{ spiffe_id: CONNECTOR, uri_sans: [CONNECTOR], serial: expect.any(String), key_matches: true, tls_verified: true, bundle_size: 1 }]);
    expect(await client(['bundles'])).toEqual([{ bundles: { [`spiffe://${TD}`]: 1 } }]);
  });

  it('gives a JWT-SVID that ValidateJWTSVID and PyJWT (with the JWT bundle) both accept, for its audience only', async () => {
    const [resp, other] = await client(['jwt', 'https://mcp.agent.test']);
    expect(resp).toEqual({ spiffe_id: CONNECTOR, validated: CONNECTOR, claims_sub: CONNECTOR, pyjwt_sub: CONNECTOR, trust_domains: [`spiffe://${TD}`] });
    expect(other).toEqual({ other_audience: 'INVALID_ARGUMENT' });
  });

  it('refuses a call without the security header (InvalidArgument)', async () => {
    expect(await client(['no-header'])).toEqual([{ error: 'INVALID_ARGUMENT', details: 'security header missing from request' }]);
  });

  it('@writ/sdk\'s WorkloadApiSource gets the same from the socket: the X.509-SVID and bundle, updates, JWT-SVIDs and their validation', async () => {
    const NODE_CONNECTOR = `spiffe://${TD}/connector/node`;
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: NODE_CONNECTOR, parent_id: AGENT_ID, selectors: [`unix:uid:${process.getuid!()}`, `unix:path:${realpathSync(process.execPath)}`] })).status).toBe(201);
    await agent.tick();
    await expect(WorkloadApiSource.create({ socket: 'unix:///nonexistent/api.sock', timeoutMs: 2000 })).rejects.toThrow(WorkloadApiError);
    const source = await WorkloadApiSource.create({ socket: `unix://${socket}` });
    try {
      expect(source.svids.map((x) => x.spiffeId)).toEqual([NODE_CONNECTOR]); // this process is node, not python
      const leaf = source.svid.certificates[0]!;
      expect(source.bundle.x509Authorities.some((ca) => leaf.verify(ca.publicKey))).toBe(true);
      const jwt = await source.fetchJwtSvid('https://mcp.agent.test');
      expect(jwt.spiffeId).toBe(NODE_CONNECTOR);
      expect(await source.validateJwtSvid(jwt.token, 'https://mcp.agent.test')).toMatchObject({ spiffeId: NODE_CONNECTOR, claims: { sub: NODE_CONNECTOR, aud: ['https://mcp.agent.test'] } });
      await expect(source.validateJwtSvid(jwt.token, 'https://other.test')).rejects.toThrow(/INVALID_ARGUMENT/);
      const keys = (await source.jwtBundles()).get(`spiffe://${TD}`)!;
      const { payload } = await jwtVerify(jwt.token, createLocalJWKSet({ keys: keys.map((k) => ({ ...k.jwk, kid: k.kid })) as never }), { audience: 'https://mcp.agent.test' });
      expect(payload.sub).toBe(NODE_CONNECTOR);
      // A revocation replaces the SVID; the open stream brings the successor.
      const updated = new Promise<string>((r) => source.once('update', (u) => r(u.svids[0]!.serialNumber)));
      expect((await fx.admin('/v1/admin/revocations', 'POST', { connector: NODE_CONNECTOR, reason: 'rotate' })).status).toBe(200);
      await agent.tick();
      expect(await updated).not.toBe(leaf.serialNumber.toLowerCase());
    } finally {
      source.close();
    }
  });

  (isRoot ? it : it.skip)('tells callers apart by uid: another user gets its own identity, or PermissionDenied without an entry', async () => {
    expect(await client(['x509'], { uid: 65534 })).toEqual([{ error: 'PERMISSION_DENIED', details: 'no identity issued' }]);
    const theirs = `spiffe://${TD}/connector/nobody`;
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: theirs, parent_id: AGENT_ID, selectors: ['unix:uid:65534'] })).status).toBe(201);
    await agent.tick();
    expect((await client(['x509'], { uid: 65534 }))[0]!.svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([theirs]);
    expect((await client(['x509']))[0]!.svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([CONNECTOR]);
  });

  it('pushes on an open stream: a CA rotation (the new authority in the bundle), then a renewal at half-life', async () => {
    const stream = streamingClient(['x509-stream']);
    try {
      const first = await stream.next(1);
      expect(first.svids[0].bundle_size).toBe(1);
      expect((await fx.admin('/v1/admin/ca/rotate', 'POST', { overlap: 3600 })).status).toBe(202);
      const rotated = await stream.next(2);
      expect(rotated.svids[0].bundle_size).toBe(2); // both authorities: the next one is trusted before it signs
      expect(rotated.svids[0].tls_verified).toBe(true);
      clock.advance(31 * 60); // past half of the SVID's hour
      const renewed = await stream.next(3);
      expect(renewed.svids[0].serial).not.toBe(first.svids[0].serial);
      expect(renewed.svids[0].tls_verified).toBe(true);
    } finally {
      stream.stop();
    }
  });

  it('stops serving a revoked SVID at the next sync, and serves its successor', async () => {
    const before = (await client(['x509']))[0]!.svids[0].serial as string;
    const revoked = await fx.admin('/v1/admin/revocations', 'POST', { connector: CONNECTOR, reason: 'key exposure' });
    expect(revoked.status).toBe(200);
    expect(revoked.json.revoked).toBeGreaterThanOrEqual(1); // the one served, and any earlier one not yet expired
    await agent.tick();
    const after = (await client(['x509']))[0]!.svids[0];
    expect(after.serial).not.toBe(before);
    expect(after.tls_verified).toBe(true);
    const leases = await fx.broker.db.prisma.lease.findMany({ where: { kind: 'x509-svid', spiffeId: CONNECTOR, revokedAt: { not: null } } });
    expect(leases.map((l) => BigInt(`0x${l.serial}`))).toContain(BigInt(`0x${before}`)); // the one no longer served was revoked
    expect(leases.map((l) => BigInt(`0x${l.serial}`))).not.toContain(BigInt(`0x${after.serial}`));
  });

  it('ends an open stream with PermissionDenied once the entry is deleted at the broker', async () => {
    const theirs = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/connector/short-lived`, parent_id: AGENT_ID, selectors: [`unix:uid:${process.getuid!()}`, 'unix:gid:424242'] });
    expect(theirs.status).toBe(201);
    const stream = streamingClient(['x509-stream']);
    try {
      const first = await stream.next(1);
      expect(first.svids.map((x: { spiffe_id: string }) => x.spiffe_id)).toEqual([CONNECTOR]); // gid 424242 is not the caller's
      expect((await fx.admin(`/v1/admin/entries/${(await fx.admin('/v1/admin/entries?spiffe_id_prefix=' + encodeURIComponent(CONNECTOR), 'GET')).json.entries[0].id}`, 'DELETE')).status).toBe(204);
      expect(await stream.until((l) => 'error' in l)).toEqual({ error: 'PERMISSION_DENIED', details: 'no identity issued' });
    } finally {
      stream.stop();
    }
    expect(await client(['x509'])).toEqual([{ error: 'PERMISSION_DENIED', details: 'no identity issued' }]);
    // Back for the next test.
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: CONNECTOR, parent_id: AGENT_ID, selectors: [`unix:uid:${process.getuid!()}`, `unix:path:${python3Path}`] })).status).toBe(201);
    await agent.tick();
  });

  it('runs as `writ agent`, its own process: a Python connector gets its SVID with no Writ code', async () => {
    const node = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/agent/node-2` });
    const token = await fx.admin('/v1/admin/join-tokens', 'POST', { entry_id: node.json.id });
    expect((await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/connector/via-cli`, parent_id: `spiffe://${TD}/agent/node-2`, selectors: [`unix:uid:${process.getuid!()}`] })).status).toBe(201);
    const dir = join(work, 'cli');
    mkdirSync(dir, { mode: 0o755 });
    writeFileSync(join(dir, 'bundle.pem'), fx.bundlePem);
    const sock = join(dir, 'public', 'api.sock');
    const child = spawn(process.execPath, [CLI, 'agent', '--server', fx.broker.apiUrl, '--ca', join(dir, 'bundle.pem'), '--socket', `unix://${sock}`, '--data-dir', join(dir, 'data')], {
      env: { ...process.env, WRIT_AGENT_JOIN_TOKEN: token.json.token },
    });
    let logs = '';
    child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!logs.includes('Workload API listening')) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`writ agent did not start: ${logs}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const [resp] = await client(['x509'], {}, sock);
      expect(resp!.svids.map((x: { spiffe_id: string; tls_verified: boolean }) => [x.spiffe_id, x.tls_verified])).toEqual([[`spiffe://${TD}/connector/via-cli`, true]]);
      expect(logs).not.toContain(token.json.token); // the join token is never logged
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('stops serving a connector at once when its kill switch is thrown', async () => {
    const served = await client(['x509']);
    expect(served[0]!.svids.map((x: { spiffe_id: string }) => x.spiffe_id)).toEqual([CONNECTOR]);
    expect((await fx.admin(`/v1/admin/connectors/${encodeURIComponent(CONNECTOR)}/disable`, 'POST', { reason: 'compromised' })).status).toBe(200);
    await agent.tick();
    expect(await client(['x509'])).toEqual([{ error: 'PERMISSION_DENIED', details: 'no identity issued' }]);
    expect((await fx.admin(`/v1/admin/connectors/${encodeURIComponent(CONNECTOR)}/enable`, 'POST', { reason: 'cleaned up' })).status).toBe(200);
    await agent.tick();
    expect((await client(['x509']))[0]!.svids.map((x: { spiffe_id: string }) => x.spiffe_id)).toEqual([CONNECTOR]);
  });

  it('cut off from the broker, serves what it has until it expires and never after; reconnected, it recovers', async () => {
    const live = (await client(['x509']))[0]!.svids[0].serial;
    await link.stop();
    await expect(agent.tick()).rejects.toThrow();
    expect((await client(['x509']))[0]!.svids[0].serial).toBe(live);
    clock.advance(3600); // past the SVID's expiry
    await expect(agent.tick()).rejects.toThrow();
    agent.cache.expire();
    expect((await client(['x509'], { timeout: 2 })).map((r) => r.error)).toEqual(['DEADLINE_EXCEEDED']); // nothing to serve: the stream sends no SVID
    // The network returns, and the test's jumps in the agent's time end (its clock and the broker's agree again): a new SVID is served.
    await link.start();
    clock.set(Date.now());
    await agent.tick();
    const back = (await client(['x509']))[0]!.svids[0];
    expect(back.serial).not.toBe(live);
    expect(back.tls_verified).toBe(true);
  });
});
