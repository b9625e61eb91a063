import { createHash, X509Certificate } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet, request as httpsRequestRaw } from 'node:https';
import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as nodeTlsServer, type TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import { createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { Agent as UndiciAgent, request as undiciRequest } from 'undici';
import { startBroker, type Broker } from '../../src/broker';
import { caFingerprint } from '../../src/attestation';
import {
  AccessDeniedError,
  authorizeAny,
  authorizeId,
  authorizeMemberOf,
  authorizeOneOf,
  createHttpsServer,
  createTlsServer,
  InvalidGrantError,
  InvalidTargetError,
  JwtSource,
  mtlsAgent,
  mtlsConnector,
  PeerNotAuthorizedError,
  peerId,
  SourceClosedError,
  SvidExpiredError,
  TaskTokenClient,
  tlsClientOptions,
  tlsServerOptions,
  WritProblemError,
  WritUnavailableError,
  X509Source,
  type Authorizer,
  type BackgroundFailure,
  type Clock,
  type Timers,
  type X509SourceUpdate,
} from '../../src/sdk';
import { newKeyAndCsr } from '../../src/sdk/csr';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl, opensslCaChain } from '../support/openssl';

const TD = 'sdk.test';
const IDP = 'https://idp.sdk.test';
const K8S = 'https://k8s.sdk.test';
const GITHUB = 'https://mcp.sdk.test/github';
const JIRA = 'https://mcp.sdk.test/jira';
const AGENT = `spiffe://${TD}/agent/assistant`;
const MCP_GITHUB = `spiffe://${TD}/mcp/github`;
const POLICIES = `
@id("eng-read-low")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("github-may-call-jira")
permit (principal, action == Writ::Action::"delegate", resource in Writ::Server::"${JIRA}")
when { principal == Writ::Connector::"${MCP_GITHUB}" && context.chain_depth <= 2 };
`;

const work = mkdtempSync(join(tmpdir(), 'writ-sdk-'));
let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;
let idpKey: CryptoKey;
let k8sKey: CryptoKey;
let proxy: Proxy;
const sources: X509Source[] = [];
/** The broker's clock: real time, plus what a test moved it by (so an answer can be "slow" without sleeping). */
let brokerSkewMs = 0;
const brokerClock = { now: () => new Date(Date.now() + brokerSkewMs) };

// ---------------------------------------------------------------------------------------
// Test doubles: time the test moves itself, and a broker that can be made unreachable.

/** A clock and timers that move only when the test says; due timers fire in order. */
class FakeTime implements Clock, Timers {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();
  readonly #watchers: { at: number; resolve: () => void }[] = [];

  constructor(start = Date.now()) {
    this.#now = start;
  }
  now(): Date {
    return new Date(this.#now);
  }
  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = ++this.#seq;
    const at = this.#now + delayMs;
    this.#timers.set(id, { at, callback });
    for (const w of this.#watchers.filter((w) => w.at === at)) {
      this.#watchers.splice(this.#watchers.indexOf(w), 1);
      w.resolve();
    }
    return id;
  }
  /** Resolves once a timer is waiting for `at` (epoch ms): at once if one is. */
  scheduled(at: number): Promise<void> {
    if (this.pending().includes(at)) return Promise.resolve();
    return new Promise((resolve) => this.#watchers.push({ at, resolve }));
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** When the timers now waiting are due (epoch ms), soonest first. */
  pending(): number[] {
    return [...this.#timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }
  /** Moves to `to` (epoch ms), firing every timer due by then in order. */
  advanceTo(to: number): void {
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].callback();
    }
    this.#now = Math.max(this.#now, to);
  }
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }
}

/** A TCP proxy in front of the broker that can be taken down (connections refused) and brought back on the same port. */
class Proxy {
  #server: NetServer | undefined;
  readonly #sockets = new Set<Socket>();
  #held: (() => void)[] | undefined;
  #onHeld: (() => void)[] = [];
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const server = createNetServer((client) => {
      const forward = () => {
        const upstream = netConnect(this.target.port, this.target.host);
        for (const s of [client, upstream]) {
          this.#sockets.add(s);
          s.on('close', () => this.#sockets.delete(s));
          s.on('error', () => (s === client ? upstream : client).destroy());
        }
        client.pipe(upstream).pipe(client);
      };
      if (this.#held) {
        this.#held.push(forward);
        this.#onHeld.splice(0).forEach((resolve) => resolve());
      } else forward();
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** New connections wait, their calls unanswered, until release(). */
  hold(): void {
    this.#held ??= [];
  }

  /** Resolves once a connection waits for release() (at once if one does). */
  whenHeld(): Promise<void> {
    if (this.waiting > 0) return Promise.resolve();
    return new Promise((resolve) => this.#onHeld.push(resolve));
  }

  /** Connections waiting for release(). */
  get waiting(): number {
    return this.#held?.length ?? 0;
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    held.forEach((forward) => forward());
  }

  async down(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** The next `event` of `emitter` that satisfies `accept`. */
function next<T extends unknown[]>(emitter: EventEmitter, event: string, accept: (...args: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (...args: unknown[]) => {
      if (!accept(...(args as T))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as T);
    };
    emitter.on(event, listener);
  });
}

/** `p`, or a failure naming `what` after `ms` (a bound on waiting, not a measurement). */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const renewFailure = (_err: Error, f: BackgroundFailure) => f.operation === 'renew';
const svidUpdate = (u: X509SourceUpdate) => u.changed === 'svid';

// ---------------------------------------------------------------------------------------
// The broker's side: admin calls, entries, join tokens, identity provider tokens.

const admin = async (path: string, method: string, body?: unknown) => {
  const res = await httpsRequest(`${broker.apiUrl}${path}`, {
    ca: caPem,
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
};

async function joinToken(spiffeId: string, extra: Record<string, unknown> = {}): Promise<string> {
  const entry = await admin('/v1/admin/entries', 'POST', { spiffe_id: spiffeId, x509_svid_ttl: 3600, metadata: { owner: 'platform' }, ...extra });
  expect(entry.status).toBe(201);
  const token = await admin('/v1/admin/join-tokens', 'POST', { entry_id: entry.json.id, ttl: 600 });
  expect(token.status).toBe(201);
  return token.json.token;
}

async function source(spiffeId: string, opts: { time?: FakeTime; extra?: Record<string, unknown> } = {}): Promise<X509Source> {
  const time = opts.time ?? new FakeTime();
  const s = await X509Source.create({ server: proxy.url, bundle: caPem, attestation: { joinToken: await joinToken(spiffeId, opts.extra) }, clock: time, timers: time, random: () => 0 });
  sources.push(s);
  return s;
}

let mcpGithubSource: Promise<X509Source> | undefined;
const mcpTime = new FakeTime();
/** The one source of the MCP server registered for GITHUB. */
const mcpGithub = () => (mcpGithubSource ??= source(MCP_GITHUB, { time: mcpTime }));
const halfLifeOf = (s: X509Source) => {
  const { notBefore, notAfter } = s.getX509Svid();
  return notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2;
};
/** When `s` renews next: at half-life, or a backoff (1 s) after its SVID arrived when that had passed by `time` (which a test moved ahead). */
const renewalOf = (s: X509Source, time: FakeTime) => Math.max(halfLifeOf(s), time.now().getTime() + 1000);

const idToken = (claims: Record<string, unknown> = {}, key = idpKey) =>
  new SignJWT({ groups: ['eng'], sid: 'session-1', ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(key);

const auditCount = (type: string) => broker.db.prisma.auditEvent.count({ where: { type } });

beforeAll(async () => {
  const idp = await generateKeyPair('ES256');
  idpKey = idp.privateKey as CryptoKey;
  writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256' }] }));
  const k8s = await generateKeyPair('ES256');
  k8sKey = k8s.privateKey as CryptoKey;
  writeFileSync(join(work, 'k8s.json'), JSON.stringify({ keys: [{ ...(await exportJWK(k8s.publicKey)), kid: 'k8s-1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'writ.cedar'), POLICIES);
  // An enterprise PKI for x509pop: root → intermediate → a client certificate of host db-1.
  opensslCaChain(work);
  writeFileSync(join(work, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'db1.key', '-out', 'db1.csr', '-subj', '/CN=db-1'], { cwd: work });
  openssl(['x509', '-req', '-in', 'db1.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'db1.crt', '-days', '2', '-extfile', 'leaf.ext'], { cwd: work });

  store = await createTestStore();
  const config = testConfig(store, {
    WRIT_TRUST_DOMAIN: TD,
    WRIT_POLICY_FILE: join(work, 'writ.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
    WRIT_OIDC_ISSUERS: JSON.stringify([{ issuer: K8S, jwks_file: join(work, 'k8s.json'), audience: 'writ', algorithms: ['ES256'] }]),
    WRIT_X509POP: JSON.stringify({ ca_bundle_file: join(work, 'root.crt'), intermediates_file: join(work, 'int.crt') }),
  });
  broker = await startBroker(config, { clock: brokerClock, showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
  const api = new URL(broker.apiUrl);
  proxy = new Proxy({ host: api.hostname, port: Number(api.port) });
  await proxy.up();
  await admin('/v1/admin/resources', 'POST', {
    uri: GITHUB,
    spiffe_id: MCP_GITHUB,
    tools: [
      { name: 'search', actions: ['read'], classification: 'internal' },
      { name: 'list_prs', actions: ['read'], classification: 'internal' },
      { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
    ],
  });
  await admin('/v1/admin/resources', 'POST', { uri: JIRA, spiffe_id: `spiffe://${TD}/mcp/jira`, tools: [{ name: 'comment', actions: ['read', 'write'], classification: 'internal' }] });
});

afterAll(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await proxy?.down();
  await broker?.shutdown();
  await store?.drop();
});

// ---------------------------------------------------------------------------------------

describe('X509Source: attestation, renewal at half-life, backoff, expiry', () => {
  it('attests with a join token: an SVID for a key made in process, and the bundle with its sequence', async () => {
    const s = await source(`spiffe://${TD}/agent/attest`);
    const svid = s.getX509Svid();
    expect(svid.spiffeId).toBe(`spiffe://${TD}/agent/attest`);
    expect(svid.certificates[0]!.checkPrivateKey(svid.privateKey)).toBe(true);
    expect(svid.privateKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(svid.notAfter.getTime() - svid.notBefore.getTime()).toBe((3600 + 10) * 1000); // backdated 10 s for skew
    expect(s.isStale()).toBe(false);
    const bundle = s.getBundle();
    expect(bundle).toMatchObject({ trustDomain: TD, sequence: expect.any(Number), refreshHint: 300 });
    expect(bundle.x509Authorities.map((c) => c.fingerprint256)).toEqual([new X509Certificate(caPem).fingerprint256]);
    expect(bundle.jwtAuthorities.length).toBeGreaterThan(0);
    expect(svid.certificates[0]!.verify(bundle.x509Authorities[0]!.publicKey)).toBe(true);
  });

  it('refuses a used join token with a typed problem, and an unreachable broker with WritUnavailableError', async () => {
    const token = await joinToken(`spiffe://${TD}/agent/once`);
    const first = await X509Source.create({ server: proxy.url, bundle: caPem, attestation: { joinToken: token } });
    sources.push(first);
    const again = X509Source.create({ server: proxy.url, bundle: caPem, attestation: { joinToken: token } });
    await expect(again).rejects.toBeInstanceOf(WritProblemError);
    await expect(again).rejects.toMatchObject({ status: 400, type: 'urn:writ:problem:token-unusable', reason: 'token-unusable', detail: expect.stringContaining('already used') });
    await expect(X509Source.create({ server: 'https://127.0.0.1:1', bundle: caPem, attestation: { joinToken: 'x' }, requestTimeoutMs: 2000 })).rejects.toBeInstanceOf(WritUnavailableError);
  });

  it('renews at half the lifetime over mTLS with a new key, and emits update with the new serial', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'renewer'), { time });
    const first = s.getX509Svid();
    const halfLife = first.notBefore.getTime() + (first.notAfter.getTime() - first.notBefore.getTime()) / 2;
    expect(time.pending()).toContain(halfLife);
    const issued = await auditCount('svid.issued');
    time.advanceTo(halfLife - 1000);
    expect(time.pending()).toContain(halfLife); // not yet: the renewal's timer has not fired (it fires synchronously in advanceTo)
    expect(await auditCount('svid.issued')).toBe(issued);
    const updated = next<[X509SourceUpdate]>(s, 'update', svidUpdate);
    time.advanceTo(halfLife);
    const [update] = await updated;
    expect(update.svid.serialNumber).not.toBe(first.serialNumber);
    expect(update.svid.spiffeId).toBe(first.spiffeId);
    expect(update.svid.privateKey.export({ format: 'jwk' })).not.toEqual(first.privateKey.export({ format: 'jwk' }));
    expect(s.getX509Svid().serialNumber).toBe(update.svid.serialNumber);
    // It was a renewal (POST /v1/svid/renew with the old SVID), not a second attestation.
    const event = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'svid.issued' }, orderBy: { seq: 'desc' } });
    expect(event!.details).toMatchObject({ renewed: first.serialNumber, serial: update.svid.serialNumber });
  });

  it('retries a renewal the broker cannot answer with exponential backoff, and recovers when it is back', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'patient'), { time });
    const first = s.getX509Svid();
    const halfLife = first.notBefore.getTime() + (first.notAfter.getTime() - first.notBefore.getTime()) / 2;
    await proxy.down();
    try {
      const failures: [Error, BackgroundFailure][] = [];
      for (const at of [halfLife, halfLife + 1000, halfLife + 3000]) {
        const failed = next<[Error, BackgroundFailure]>(s, 'error', renewFailure);
        time.advanceTo(at);
        failures.push(await failed);
      }
      expect(failures.map(([e]) => e)).toEqual([expect.any(WritUnavailableError), expect.any(WritUnavailableError), expect.any(WritUnavailableError)]);
      expect(failures.map(([, f]) => [f.attempt, f.retryAt!.getTime()])).toEqual([
        [1, halfLife + 1000],
        [2, halfLife + 3000], // 2 s later
        [3, halfLife + 7000], // 4 s later
      ]);
      expect(s.getX509Svid().serialNumber).toBe(first.serialNumber); // still valid, still served
    } finally {
      await proxy.up();
    }
    const updated = next<[X509SourceUpdate]>(s, 'update', svidUpdate);
    time.advanceTo(halfLife + 7000);
    const [update] = await updated;
    expect(update.svid.serialNumber).not.toBe(first.serialNumber);
    // Recovered: the next renewal is at the new SVID's half-life; or, when that has passed on arrival (the broker
    // issued it on real time, which this source's clock ran 30 minutes ahead of), after the first backoff, not at once.
    const svid = s.getX509Svid();
    const now = time.now().getTime();
    expect(time.pending()).toContain(Math.max(now + 1000, svid.notBefore.getTime() + (svid.notAfter.getTime() - svid.notBefore.getTime()) / 2));
  });

  it('renews with backoff, never in a loop, when this host\'s clock runs ahead of the broker\'s past half-life', async () => {
    const time = new FakeTime(Date.now() + 40 * 60_000); // a new 1 h SVID is 10 minutes past half-life on arrival
    const s = await source(AGENT.replace('assistant', 'ahead'), { time });
    const first = s.getX509Svid();
    expect(s.isStale()).toBe(false);
    const issued = await auditCount('svid.issued');
    const due = () => time.pending().filter((at) => at <= time.now().getTime());
    expect(due()).toEqual([]); // no renewal at once
    expect(time.pending()).toContain(time.now().getTime() + 1000); // but after the first backoff
    const updated = next<[X509SourceUpdate]>(s, 'update', svidUpdate);
    time.advance(1000);
    const [update] = await updated;
    expect(update.svid.serialNumber).not.toBe(first.serialNumber);
    // Past half-life on arrival again: the backoff grows.
    expect(due()).toEqual([]);
    expect(time.pending()).toContain(time.now().getTime() + 2000);
    expect(await auditCount('svid.issued')).toBe(issued + 1);
  });

  it('a last renewal answered after expiry brings the source back, bundle polling included', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'late'), { time, extra: { x509_svid_ttl: 120 } }); // expires before the first poll
    const svid = s.getX509Svid();
    proxy.hold();
    try {
      const stale = next(s, 'stale');
      time.advanceTo(halfLifeOf(s)); // the renewal goes out, and waits
      await proxy.whenHeld();
      expect(proxy.waiting).toBe(1);
      time.advanceTo(svid.notAfter.getTime());
      await stale;
      expect(time.pending()).toEqual([]); // a join token attests once: nothing more is scheduled
      brokerSkewMs = 1100; // a slow answer: the new SVID's notAfter (whole seconds, broker's clock) is past the old one's
    } finally {
      proxy.release();
    }
    try {
      await next(s, 'update', svidUpdate);
    } finally {
      brokerSkewMs = 0;
    }
    expect(s.isStale()).toBe(false);
    // The bundle is fetched now and polled again at its refresh hint, beside the renewal and the expiry check.
    const poll = time.now().getTime() + s.getBundle().refreshHint! * 1000;
    await within(10_000, `a bundle poll at ${poll}`, time.scheduled(poll));
    expect(time.pending()).toContain(poll);
  });

  it('makes its key in process and a PKCS#10 CSR (RFC 2986) that openssl verifies', async () => {
    const { privateKeyPem, csrPem } = await newKeyAndCsr();
    const dir = mkdtempSync(join(work, 'csr-'));
    writeFileSync(join(dir, 'sdk.csr'), csrPem);
    expect(openssl(['req', '-in', 'sdk.csr', '-verify', '-noout'], { cwd: dir })).toBe('');
    const text = openssl(['req', '-in', 'sdk.csr', '-noout', '-text'], { cwd: dir });
    expect(text).toMatch(/Version: 1 \(0x0\)/);
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain('NIST CURVE: P-256');
    expect(openssl(['req', '-in', 'sdk.csr', '-noout', '-pubkey'], { cwd: dir })).toBe(openssl(['pkey', '-pubout'], { input: privateKeyPem }));
  });

  it('reports stale when the broker stays down until expiry: getX509Svid throws SvidExpiredError, nothing expired is served', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'stranded'), { time });
    const svid = s.getX509Svid();
    const failures: BackgroundFailure[] = [];
    s.on('error', (_e, f) => void (f.operation === 'renew' && failures.push(f)));
    await proxy.down();
    try {
      const stale = next<[SvidExpiredError]>(s, 'stale');
      const lastRenewal = next<[Error, BackgroundFailure]>(s, 'error', renewFailure);
      time.advanceTo(svid.notAfter.getTime() - 1);
      expect(s.isStale()).toBe(false);
      time.advanceTo(svid.notAfter.getTime());
      const [err] = await stale;
      expect(err).toBeInstanceOf(SvidExpiredError);
      expect(err).toMatchObject({ spiffeId: svid.spiffeId, expiredAt: svid.notAfter });
      expect(s.isStale()).toBe(true);
      expect(() => s.getX509Svid()).toThrow(SvidExpiredError);
      expect(() => tlsClientOptions(s, authorizeAny())).toThrow(SvidExpiredError);
      await expect(new JwtSource(s).fetch('https://a.test')).rejects.toBeInstanceOf(SvidExpiredError);
      // A join token attests once: after the last failed renewal nothing more is tried or scheduled.
      const [, last] = await lastRenewal;
      expect(last.retryAt).toBeUndefined();
      expect(failures.at(-1)?.retryAt).toBeUndefined();
      expect(time.pending()).toEqual([]);
    } finally {
      await proxy.up();
    }
  });

  it('attests again after expiry when it can (an OIDC token file), and is fresh again', async () => {
    // A short first SVID: the broker runs on real time, this source's clock jumps past its expiry.
    const entry = await admin('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/k8s/worker`, x509_svid_ttl: 60, selectors: [`oidc:iss:${K8S}`, 'oidc:sub:system:serviceaccount:mcp:worker'] });
    const tokenFile = join(work, 'k8s-token');
    const k8sToken = () => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k8s-1' }).setIssuer(K8S).setAudience('writ').setSubject('system:serviceaccount:mcp:worker').setIssuedAt().setExpirationTime('10m').sign(k8sKey);
    writeFileSync(tokenFile, await k8sToken());
    const time = new FakeTime();
    const s = await X509Source.create({ server: proxy.url, bundle: caPem, attestation: { oidcTokenFile: tokenFile }, clock: time, timers: time, random: () => 0 });
    sources.push(s);
    const first = s.getX509Svid();
    expect(first.spiffeId).toBe(`spiffe://${TD}/k8s/worker`);
    await proxy.down();
    const stale = next(s, 'stale');
    time.advanceTo(first.notAfter.getTime());
    await stale;
    expect(s.isStale()).toBe(true);
    writeFileSync(tokenFile, await k8sToken()); // the kubelet rotated the projected token meanwhile
    await admin(`/v1/admin/entries/${entry.json.id}`, 'PATCH', { x509_svid_ttl: 3600 });
    await proxy.up();
    const updated = next<[X509SourceUpdate]>(s, 'update', svidUpdate);
    time.advance(60_000); // past the pending retry
    const [update] = await updated;
    expect(s.isStale()).toBe(false);
    expect(update.svid.serialNumber).not.toBe(first.serialNumber);
    const event = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'svid.issued' }, orderBy: { seq: 'desc' } });
    expect(event!.details).toMatchObject({ attestor: 'oidc', serial: update.svid.serialNumber });
  });

  it('attests with x509pop: the enterprise certificate is the TLS client certificate, the evidence is empty', async () => {
    await admin('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/db/db-1`, selectors: ['x509pop:subject_cn:db-1', `x509pop:ca:${caFingerprint(readFileSync(join(work, 'root.crt'), 'utf8'))}`] });
    const s = await X509Source.create({ server: proxy.url, bundle: caPem, attestation: { x509pop: { cert: readFileSync(join(work, 'db1.crt')), key: readFileSync(join(work, 'db1.key')) } } });
    sources.push(s);
    expect(s.getX509Svid().spiffeId).toBe(`spiffe://${TD}/db/db-1`);
  });

  it('close() stops every timer and further use fails with SourceClosedError', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'closer'), { time });
    expect(time.pending().length).toBeGreaterThan(0);
    await s.close();
    expect(time.pending()).toEqual([]);
    expect(() => s.getX509Svid()).toThrow(SourceClosedError);
    expect(() => new TaskTokenClient(s)).toThrow(SourceClosedError);
  });
});

describe('X509Source follows the trust bundle', () => {
  it('picks up a CA rotation: the new authority is published, spiffe_sequence changes, update fires', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'rotation-watcher'), { time });
    const before = s.getBundle();
    const rotated = await admin('/v1/admin/ca/rotate', 'POST', {});
    expect(rotated.status).toBe(202);
    const updated = next<[X509SourceUpdate]>(s, 'update', (u) => u.changed === 'bundle');
    time.advance(before.refreshHint! * 1000); // the next poll, at the refresh hint
    const [update] = await updated;
    expect(update.bundle.sequence).toBeGreaterThan(before.sequence!);
    expect(update.bundle.x509Authorities).toHaveLength(before.x509Authorities.length + 1);
    expect(update.bundle.jwtAuthorities.length).toBeGreaterThan(before.jwtAuthorities.length);
    expect(s.getBundle().sequence).toBe(update.bundle.sequence);
    // TLS helpers trust the new authority from now on.
    expect(tlsClientOptions(s, authorizeAny()).ca).toContain(update.bundle.x509Authorities.at(-1)!.toString().trim());
  });
});

describe('mutual TLS between workloads, peers authorized by SPIFFE ID', () => {
  let agent: X509Source;
  let mcp: X509Source;
  const servers: { close(): unknown }[] = [];
  const listen = async <S extends NetServer>(server: S): Promise<number> => {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as { port: number }).port;
  };
  /** Connects with tlsClientOptions; resolves with what the server wrote, rejects with the TLS or authorization error. */
  const talk = (port: number, authorizer: ReturnType<typeof authorizeId>, servername?: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ...(servername && { servername }), ...tlsClientOptions(agent, authorizer) });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (d) => (data += d));
      socket.on('error', reject);
      socket.on('close', () => resolve(data));
    });

  const agentTime = new FakeTime();
  beforeAll(async () => {
    agent = await source(AGENT, { time: agentTime });
    mcp = await mcpGithub();
  });
  afterAll(() => servers.forEach((s) => s.close()));

  it('accepts when each side authorizes the other (authorizeId, authorizeOneOf, authorizeMemberOf)', async () => {
    const port = await listen(createTlsServer(tlsServerOptions(mcp, authorizeId(AGENT)), (socket) => socket.end(`hello ${peerId(socket).uri}`)));
    await expect(talk(port, authorizeId(MCP_GITHUB))).resolves.toBe(`hello ${AGENT}`);
    await expect(talk(port, authorizeOneOf(`spiffe://${TD}/mcp/jira`, MCP_GITHUB))).resolves.toBe(`hello ${AGENT}`);
    await expect(talk(port, authorizeMemberOf(TD))).resolves.toBe(`hello ${AGENT}`);
    // With SNI the server's SNICallback serves the context; host names play no part either way.
    await expect(talk(port, authorizeId(MCP_GITHUB), 'anything.example')).resolves.toBe(`hello ${AGENT}`);
  });

  it('the client refuses a server with the wrong SPIFFE ID or of another trust domain, after its chain verified', async () => {
    const port = await listen(createTlsServer(tlsServerOptions(mcp, authorizeAny()), (socket) => socket.end('secret')));
    const wrong = talk(port, authorizeId(`spiffe://${TD}/mcp/jira`));
    await expect(wrong).rejects.toBeInstanceOf(PeerNotAuthorizedError);
    await expect(wrong).rejects.toMatchObject({ peerId: MCP_GITHUB });
    await expect(talk(port, authorizeMemberOf('other.test'))).rejects.toBeInstanceOf(PeerNotAuthorizedError);
  });

  it('the server refuses a client its authorizer does not accept: no listener sees it, tlsClientError says why', async () => {
    let served = 0;
    const server = createTlsServer(tlsServerOptions(mcp, authorizeId(`spiffe://${TD}/agent/someone-else`)), (socket) => {
      served++;
      socket.end('secret');
    });
    const refused = next<[Error]>(server, 'tlsClientError');
    const port = await listen(server);
    const got = await talk(port, authorizeId(MCP_GITHUB)).catch(() => '');
    expect(got).toBe('');
    const [err] = await refused;
    expect(err).toBeInstanceOf(PeerNotAuthorizedError);
    expect((err as PeerNotAuthorizedError).peerId).toBe(AGENT);
    expect(served).toBe(0);
  });

  it('the server refuses a client without a certificate of the bundle', async () => {
    const port = await listen(createTlsServer(tlsServerOptions(mcp, authorizeAny()), (socket) => socket.end('secret')));
    const anonymous = new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: mcp.getBundle().x509AuthoritiesPem, checkServerIdentity: () => undefined });
      let data = '';
      socket.on('data', (d) => (data += d)).on('error', reject).on('close', () => resolve(data));
    });
    await expect(anonymous.catch(() => '')).resolves.toBe('');
  });

  it('fails closed when the options are given to Node\'s own createServer, which cannot authorize clients', async () => {
    const port = await listen(nodeTlsServer(tlsServerOptions(mcp, authorizeAny()), (socket) => socket.end('secret')));
    await expect(talk(port, authorizeId(MCP_GITHUB)).catch(() => 'refused')).resolves.toBe('refused');
    await expect(talk(port, authorizeId(MCP_GITHUB), 'mcp.internal').catch(() => 'refused')).resolves.toBe('refused');
  });

  it('after renewals, servers present the new SVID and clients connect with theirs', async () => {
    const port = await listen(createTlsServer(tlsServerOptions(mcp, authorizeId(AGENT)), (socket) => socket.end(socket.getPeerX509Certificate()!.serialNumber.toLowerCase())));
    const handshake = (servername?: string) =>
      new Promise<{ server: string; client: string }>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, ...(servername && { servername }), ...tlsClientOptions(agent, authorizeId(MCP_GITHUB)) });
        let client = '';
        let server = '';
        socket.on('secureConnect', () => (server = socket.getPeerX509Certificate()!.serialNumber.toLowerCase()));
        socket.setEncoding('utf8').on('data', (d) => (client += d)).on('error', reject);
        socket.on('close', () => resolve({ server, client }));
      });
    const before = { server: mcp.getX509Svid().serialNumber, client: agent.getX509Svid().serialNumber };
    expect(await handshake()).toEqual(before);
    const renewed = Promise.all([next(mcp, 'update', svidUpdate), next(agent, 'update', svidUpdate)]);
    mcpTime.advanceTo(renewalOf(mcp, mcpTime));
    agentTime.advanceTo(renewalOf(agent, agentTime));
    await renewed;
    const after = { server: mcp.getX509Svid().serialNumber, client: agent.getX509Svid().serialNumber };
    expect(after.server).not.toBe(before.server);
    expect(after.client).not.toBe(before.client);
    expect(await handshake()).toEqual(after); // the default context (no SNI)
    expect(await handshake('mcp.internal')).toEqual(after); // SNICallback's context
  });

  it('serves HTTPS to https.request, an mtlsAgent (which follows renewals) and undici with mtlsConnector', async () => {
    const serial = (socket: Socket) => (socket as TLSSocket).getPeerX509Certificate()!.serialNumber.toLowerCase();
    const port = await listen(createHttpsServer(tlsServerOptions(mcp, authorizeMemberOf(TD)), (req, res) => res.end(`${peerId(req.socket).uri} ${serial(req.socket)}`)));
    const url = `https://127.0.0.1:${port}/`;
    const body = (res: IncomingMessage) => new Promise<string>((resolve) => {
      let text = '';
      res.on('data', (d) => (text += d)).on('end', () => resolve(text));
    });
    const viaGet = await new Promise<string>((resolve, reject) => {
      httpsGet(url, tlsClientOptions(agent, authorizeId(MCP_GITHUB)), (res) => resolve(body(res))).on('error', reject);
    });
    expect(viaGet).toBe(`${AGENT} ${agent.getX509Svid().serialNumber}`);
    const pooled = mtlsAgent(agent, authorizeId(MCP_GITHUB), { keepAlive: true });
    const viaAgent = () => new Promise<string>((resolve, reject) => httpsRequestRaw(url, { agent: pooled }, (res) => resolve(body(res))).on('error', reject).end());
    try {
      expect(await viaAgent()).toBe(`${AGENT} ${agent.getX509Svid().serialNumber}`);
      expect(await viaAgent()).toBe(`${AGENT} ${agent.getX509Svid().serialNumber}`);
      const renewed = next(agent, 'update', svidUpdate);
      agentTime.advanceTo(renewalOf(agent, agentTime));
      await renewed;
      expect(await viaAgent()).toBe(`${AGENT} ${agent.getX509Svid().serialNumber}`); // a new connection, with the new SVID
      const refusing = mtlsAgent(agent, authorizeId(`spiffe://${TD}/mcp/jira`));
      await expect(
        new Promise((resolve, reject) => httpsRequestRaw(url, { agent: refusing }, resolve).on('error', reject).end()),
      ).rejects.toBeInstanceOf(PeerNotAuthorizedError);
    } finally {
      pooled.destroy();
    }
    const dispatcher = new UndiciAgent({ connect: mtlsConnector(agent, authorizeId(MCP_GITHUB)) });
    try {
      const res = await undiciRequest(url, { dispatcher });
      expect(await res.body.text()).toBe(`${AGENT} ${agent.getX509Svid().serialNumber}`);
    } finally {
      await dispatcher.close();
    }
  });
  it('an mtlsAgent authorizes every new connection: no TLS session is resumed past the authorizer', async () => {
    const port = await listen(createHttpsServer(tlsServerOptions(mcp, authorizeAny()), (_req, res) => res.end('ok')));
    let trusted = true;
    const authorizer: Authorizer = (id) => (trusted ? undefined : new PeerNotAuthorizedError(`${id.uri} is no longer trusted`, id.uri));
    const pooled = mtlsAgent(agent, authorizer); // no keep-alive: a new connection per request
    const get = () =>
      new Promise<string>((resolve, reject) => {
        httpsRequestRaw(`https://127.0.0.1:${port}/`, { agent: pooled }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d)).on('end', () => resolve(text));
        }).on('error', reject).end();
      });
    try {
      await expect(get()).resolves.toBe('ok');
      trusted = false;
      await expect(get()).rejects.toBeInstanceOf(PeerNotAuthorizedError);
    } finally {
      pooled.destroy();
    }
  });

  it('the server refuses renegotiation: a client it authorized cannot present another certificate afterwards', async () => {
    const port = await listen(createTlsServer(tlsServerOptions(mcp, authorizeId(AGENT)), () => undefined));
    const socket = tlsConnect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ...tlsClientOptions(agent, authorizeId(MCP_GITHUB)) });
    try {
      const outcome = await new Promise<string>((resolve) => {
        socket.on('error', () => resolve('refused'));
        socket.once('secureConnect', () => socket.renegotiate({}, (err) => resolve(err ? 'refused' : 'renegotiated')));
      });
      expect(outcome).toBe('refused');
    } finally {
      socket.destroy();
    }
  });

  it('verifies the peer\'s chain against the bundle before any authorizer: the right SPIFFE ID from another CA is refused both ways', async () => {
    // Certificates of the x509pop enterprise PKI (not in the bundle) that name the SPIFFE IDs the authorizers want.
    const forge = (name: string, id: string) => {
      writeFileSync(join(work, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:${id}\n`);
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], { cwd: work });
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`], { cwd: work });
      return { cert: readFileSync(join(work, `${name}.crt`), 'utf8') + readFileSync(join(work, 'int.crt'), 'utf8'), key: readFileSync(join(work, `${name}.key`), 'utf8') };
    };
    let authorized = 0;
    const counting = (id: string): Authorizer => {
      const inner = authorizeId(id);
      return (peer, chain) => {
        authorized++;
        return inner(peer, chain);
      };
    };
    // A server with a forged SVID of MCP_GITHUB: the client's handshake fails on the chain.
    const forgedServer = forge('forged-mcp', MCP_GITHUB);
    const serverPort = await listen(nodeTlsServer(forgedServer, (socket) => socket.end('secret')));
    const toForged = talk(serverPort, counting(MCP_GITHUB));
    await expect(toForged).rejects.toThrow(/certificate/i);
    await expect(toForged).rejects.not.toBeInstanceOf(PeerNotAuthorizedError);
    // A client with a forged SVID of AGENT: the server closes it before any listener.
    let served = 0;
    const port = await listen(createTlsServer(tlsServerOptions(mcp, counting(AGENT)), (socket) => {
      served++;
      socket.end('secret');
    }));
    const forgedClient = forge('forged-agent', AGENT);
    const fromForged = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ...forgedClient, ca: mcp.getBundle().x509AuthoritiesPem, checkServerIdentity: () => undefined });
      let data = '';
      socket.on('data', (d) => (data += d)).on('error', () => resolve(data)).on('close', () => resolve(data));
    });
    expect(fromForged).toBe('');
    expect(served).toBe(0);
    expect(authorized).toBe(0);
  });
});

describe('JwtSource', () => {
  it('serves no cached JWT-SVID once the X.509-SVID expired unrenewed', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'jwt-stale'), { time, extra: { x509_svid_ttl: 60, jwt_svid_ttl: 600 } });
    const jwts = new JwtSource(s);
    const jwt = await jwts.fetch('https://a.test');
    await proxy.down();
    try {
      const stale = next(s, 'stale');
      time.advanceTo(s.getX509Svid().notAfter.getTime());
      await stale;
      expect(jwt.expiresAt.getTime() - time.now().getTime()).toBeGreaterThan(300_000); // the JWT-SVID itself is still fresh
      await expect(jwts.fetch('https://a.test')).rejects.toBeInstanceOf(SvidExpiredError);
    } finally {
      await proxy.up();
    }
  });

  it('fetches JWT-SVIDs over mTLS, cached per audience set, one request for concurrent calls', async () => {
    const time = new FakeTime();
    const s = await source(AGENT.replace('assistant', 'jwt'), { time });
    const jwts = new JwtSource(s);
    const issued = await auditCount('jwt_svid.issued');
    const [a, b] = await Promise.all([jwts.fetch(['https://x.test', 'https://y.test']), jwts.fetch(['https://y.test', 'https://x.test'])]);
    expect(a.token).toBe(b.token);
    expect(await auditCount('jwt_svid.issued')).toBe(issued + 1);
    expect((await jwts.fetch(['https://x.test', 'https://y.test'])).token).toBe(a.token);
    expect(a).toMatchObject({ spiffeId: s.spiffeId, audience: ['https://x.test', 'https://y.test'] });
    const jwks = createLocalJWKSet({ keys: s.getBundle().jwtAuthorities.map((k) => ({ ...k.jwk, kid: k.kid })) });
    const { payload } = await jwtVerify(a.token, jwks, { audience: 'https://x.test' });
    expect(payload.sub).toBe(s.spiffeId);
    const other = await jwts.fetch('https://z.test');
    expect(other.token).not.toBe(a.token);
    // Past half its life: fetched again.
    time.advanceTo(a.issuedAt.getTime() + (a.expiresAt.getTime() - a.issuedAt.getTime()) / 2 + 1000);
    expect((await jwts.fetch(['https://x.test', 'https://y.test'])).token).not.toBe(a.token);
  });
});

describe('TaskTokenClient: RFC 8693 token exchange', () => {
  let time: FakeTime;
  let agent: X509Source;
  let tokens: TaskTokenClient;

  beforeAll(async () => {
    time = new FakeTime();
    agent = await source(`spiffe://${TD}/agent/exchanger`, { time });
    tokens = new TaskTokenClient(agent);
  });

  it('exchanges the user\'s ID token for a task token bound to the SVID; the same request in that task is served from the cache, without a task id it begins another', async () => {
    const subjectToken = await idToken();
    const issued = await auditCount('token.issued');
    const t = await tokens.exchange({ subjectToken, resource: GITHUB, tools: [{ name: 'search', actions: ['read'] }] });
    expect(t).toMatchObject({ tokenType: 'Bearer', resource: GITHUB, taskId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(t.granted).toEqual([{ type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' }]);
    expect(t.expiresAt.getTime() - t.issuedAt.getTime()).toBe(300_000);
    const claims = decodeJwt(t.accessToken);
    expect(claims).toMatchObject({ sub: 'alice', aud: GITHUB, client_id: agent.spiffeId, task_id: t.taskId });
    expect(claims.cnf).toEqual({ 'x5t#S256': createHash('sha256').update(agent.getX509Svid().certificates[0]!.raw).digest('base64url') });
    const again = await tokens.exchange({ subjectToken, resource: GITHUB, taskId: t.taskId, tools: [{ name: 'search', actions: ['read'] }] });
    expect(again.accessToken).toBe(t.accessToken);
    expect(await auditCount('token.issued')).toBe(issued + 1);
    // Without a task id, the same request begins another task: never the cached token of the first.
    const other = await tokens.exchange({ subjectToken, resource: GITHUB, tools: [{ name: 'search', actions: ['read'] }] });
    expect(other.taskId).not.toBe(t.taskId);
    expect(await auditCount('token.issued')).toBe(issued + 2);
    // Other tools: a new exchange, in the task named.
    const more = await tokens.exchange({ subjectToken, resource: GITHUB, taskId: t.taskId, tools: [{ name: 'search', actions: ['read'] }, { name: 'list_prs', actions: ['read'] }] });
    expect(more.accessToken).not.toBe(t.accessToken);
    expect(more.taskId).toBe(t.taskId);
    expect(more.granted.flatMap((g) => g.tools).sort()).toEqual(['list_prs', 'search']);
    expect(await auditCount('token.issued')).toBe(issued + 3);
  });

  it('exchanges again past half the token\'s life, and after the SVID renews (the token is bound to the certificate)', async () => {
    const subjectToken = await idToken();
    const request = { subjectToken, resource: GITHUB, tools: [{ name: 'list_prs', actions: ['read'] as const }] };
    const first = await tokens.exchange(request);
    const inTask = { ...request, taskId: first.taskId };
    const t = await tokens.exchange(inTask);
    expect(t.accessToken).toBe(first.accessToken);
    time.advance(151_000);
    const later = await tokens.exchange(inTask);
    expect(later.accessToken).not.toBe(t.accessToken);
    expect(later.taskId).toBe(t.taskId);
    const svid = agent.getX509Svid();
    const renewed = next<[X509SourceUpdate]>(agent, 'update', svidUpdate);
    time.advanceTo(svid.notBefore.getTime() + (svid.notAfter.getTime() - svid.notBefore.getTime()) / 2);
    await renewed;
    const rebound = await tokens.exchange(inTask);
    expect(rebound.accessToken).not.toBe(later.accessToken);
    expect(decodeJwt(rebound.accessToken).cnf).toEqual({ 'x5t#S256': createHash('sha256').update(agent.getX509Svid().certificates[0]!.raw).digest('base64url') });
  });

  it('turns OAuth refusals into typed errors carrying error and error_description', async () => {
    const subjectToken = await idToken();
    const denied = tokens.exchange({ subjectToken, resource: GITHUB, tools: [{ name: 'delete_repo', actions: ['delete'] }] });
    await expect(denied).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(denied).rejects.toMatchObject({ error: 'access_denied', status: 400, error_description: expect.stringContaining('policy allows none') });
    const forged = await idToken({}, (await generateKeyPair('ES256')).privateKey as CryptoKey);
    const bad = tokens.exchange({ subjectToken: forged, resource: GITHUB, tools: [{ name: 'search', actions: ['read'] }] });
    await expect(bad).rejects.toBeInstanceOf(InvalidGrantError);
    await expect(bad).rejects.toMatchObject({ error: 'invalid_grant', error_description: expect.any(String) });
    await expect(tokens.exchange({ subjectToken, resource: 'https://nowhere.test/mcp', tools: [{ name: 'search', actions: ['read'] }] })).rejects.toBeInstanceOf(InvalidTargetError);
  });

  it('chains a received token to a downstream resource where a delegate policy allows the hop', async () => {
    // The MCP server registered for GITHUB, with its own SVID, exchanges the token it received.
    const mcp = await mcpGithub();
    const t = await tokens.exchange({ subjectToken: await idToken(), resource: GITHUB, tools: [{ name: 'search', actions: ['read'] }] });
    const downstream = await new TaskTokenClient(mcp).chain({ token: t.accessToken, resource: JIRA, tools: [{ name: 'comment', actions: ['read'] }] });
    expect(downstream.taskId).toBe(t.taskId);
    expect(downstream.granted).toEqual([{ type: 'mcp_tool', tools: ['comment'], actions: ['read'], data_classification: 'internal' }]);
    expect(decodeJwt(downstream.accessToken).act).toEqual({ sub: MCP_GITHUB, act: { sub: agent.spiffeId } });
  });

  it('endTask revokes the task\'s tokens: introspection says inactive, the cache forgets them, the task cannot be reused', async () => {
    const subjectToken = await idToken();
    const request = { subjectToken, resource: GITHUB, tools: [{ name: 'search', actions: ['read'] as const }] };
    const t = await tokens.exchange(request);
    const introspect = async (token: string) =>
      JSON.parse(
        (
          await httpsRequest(`${broker.apiUrl}/oauth2/introspect`, {
            ca: caPem,
            method: 'POST',
            headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ token }).toString(),
          })
        ).body,
      );
    expect(await introspect(t.accessToken)).toMatchObject({ active: true, task_id: t.taskId });
    await expect(tokens.endTask(t.taskId)).resolves.toEqual({ taskId: t.taskId, revoked: expect.any(Number) });
    expect(await introspect(t.accessToken)).toEqual({ active: false });
    await expect(tokens.exchange({ ...request, taskId: t.taskId })).rejects.toMatchObject({ error: 'invalid_grant', error_description: expect.stringContaining('ended') });
    // Other endpoints refuse with problem details (RFC 9457).
    const unknown = tokens.endTask('00000000-0000-4000-8000-000000000000');
    await expect(unknown).rejects.toBeInstanceOf(WritProblemError);
    await expect(unknown).rejects.toMatchObject({ status: 404, type: 'urn:writ:problem:task-not-found' });
    const fresh = await tokens.exchange(request); // the cached token of the ended task is not served
    expect(fresh.accessToken).not.toBe(t.accessToken);
    expect(fresh.taskId).not.toBe(t.taskId);
  });
});
