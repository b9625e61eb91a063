import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import pino from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import { RETIRED_GRACE_MARGIN } from '../../src/ca';
import { ManualClock } from '../../src/core/clock';
import type { Config } from '../../src/config';
import { generateP256, exportPkcs8Pem } from '../../src/ca/keys';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';

let store: TestStore;
let config: Config;
let broker: Broker;
let caPem: string;
const clock = new ManualClock(Date.now());
const logs: string[] = [];
const shownTokens: string[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });

const start = () => startBroker(config, { clock, logger, showAdminToken: (t) => void shownTokens.push(t) });
const get = (path: string, headers: Record<string, string> = {}) => httpsRequest(`${broker.apiUrl}${path}`, { ca: caPem, headers });
const ops = (path: string) => fetch(`${broker.opsUrl}${path}`);

/** The certificate the API presents, over a TLS handshake verified against `ca`. */
const peerCertificate = (opts: { servername?: string; ca?: string; cert?: string; key?: string } = {}) =>
  new Promise<PeerCertificate>((resolve, reject) => {
    const url = new URL(broker.apiUrl);
    const socket = connect({ host: url.hostname, port: Number(url.port), ca: opts.ca ?? caPem, servername: opts.servername, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.ca !== '' }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });

beforeAll(async () => {
  store = await createTestStore();
  config = testConfig(store, { WRIT_TRUST_DOMAIN: 'acme.test', WRIT_SERVER_DNS_NAMES: 'localhost,writ.acme.test' });
  broker = await start();
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
});

afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

describe(`broker on ${process.env.TEST_DATABASE_URL ? 'PostgreSQL' : 'the embedded database'}`, () => {
  it('answers /healthz and /readyz on the ops port', async () => {
    expect((await ops('/healthz')).status).toBe(200);
    const ready = await ops('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('serves the SPIFFE bundle over TLS that verifies with the bundle itself', async () => {
    const res = await get('/v1/bundle');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = JSON.parse(res.body);
    expect(doc.spiffe_sequence).toBe(1);
    expect(doc.spiffe_refresh_hint).toBe(300);
    const x509 = doc.keys.filter((k: { use: string }) => k.use === 'x509-svid');
    const jwt = doc.keys.filter((k: { use: string }) => k.use === 'jwt-svid');
    expect(x509).toHaveLength(1);
    expect(x509[0].kid).toBeUndefined();
    expect(new X509Certificate(Buffer.from(x509[0].x5c[0], 'base64')).raw).toEqual(new X509Certificate(caPem).raw);
    expect(jwt).toEqual([expect.objectContaining({ kid: broker.jwtKey.kid, kty: 'EC', crv: 'P-256' })]);
  });

  it('serves the X.509 authorities as PEM for Accept: application/x-pem-file', async () => {
    const res = await get('/v1/bundle', { accept: 'application/x-pem-file' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-pem-file/);
    expect(new X509Certificate(res.body).raw).toEqual(new X509Certificate(caPem).raw);
  });

  it('refuses other media types with 406 problem+json', async () => {
    const res = await get('/v1/bundle', { accept: 'text/html' });
    expect(res.status).toBe(406);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.body)).toMatchObject({ status: 406, type: 'urn:writ:problem:not-acceptable' });
  });

  it('answers unknown routes with 404 problem+json and refuses bodies over 64 KiB with 413', async () => {
    const missing = await get('/v1/nothing');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ type: 'urn:writ:problem:not-found', title: 'Not Found', status: 404 });
    const big = await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: 'x'.repeat(70_000) }) });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toMatchObject({ type: 'urn:writ:problem:body-too-large', status: 413 });
    expect(big.body).not.toMatch(/at .*\.(js|ts):\d+/);
  });

  it('presents its own X.509-SVID, spiffe://<td>/writ/server, valid for its DNS names and 127.0.0.1', async () => {
    for (const servername of ['localhost', 'writ.acme.test']) {
      const cert = await peerCertificate({ servername });
      expect(cert.subjectaltname).toContain('URI:spiffe://acme.test/writ/server');
    }
    const viaIp = await peerCertificate();
    expect(viaIp.subjectaltname).toContain('IP Address:127.0.0.1');
    await expect(peerCertificate({ servername: 'evil.example' })).rejects.toThrow(/Hostname\/IP does not match/);
  });

  it('committed a lease for its server SVID', async () => {
    const cert = await peerCertificate();
    const leases = await broker.db.prisma.lease.findMany({ where: { spiffeId: 'spiffe://acme.test/writ/server' } });
    expect(leases).toHaveLength(1);
    expect(leases[0]!.kind).toBe('x509-svid');
    expect(leases[0]!.expiresAt.toISOString()).toBe(new Date(cert.valid_to).toISOString());
  });

  it('requests a client certificate but does not require one', async () => {
    const keys = await generateP256();
    const svid = await broker.ca.signX509Svid({ spiffeId: 'spiffe://acme.test/connector/a', publicKey: keys.publicKey, ttl: 600 });
    const cert = svid.certificate.toString('pem');
    const key = await exportPkcs8Pem(keys.privateKey);
    const withCert = await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, cert, key });
    const without = await get('/v1/bundle');
    expect([withCert.status, without.status]).toEqual([200, 200]);
    const mtls = logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request').map((l) => l.req.mtls);
    expect(mtls.slice(-2)).toEqual([true, false]);
  });

  it('counts API requests by route and status in /metrics', async () => {
    const text = await (await ops('/metrics')).text();
    expect(text).toMatch(/writ_http_requests_total\{method="GET",route="\/v1\/bundle",status="200"\} \d+/);
    expect(text).toMatch(/writ_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    expect(text).toMatch(/writ_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/v1\/bundle",status="200"\}/);
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('generated the admin token, showed it once, and keeps only its hash', async () => {
    expect(shownTokens).toHaveLength(1);
    const [token] = shownTokens as [string];
    expect(token).toMatch(/^writ_admin_[A-Za-z0-9_-]{43}$/);
    expect(broker.admin.verify(token)).toBe(true);
    expect(broker.admin.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBe(false);
    const rows = await broker.db.prisma.adminCredential.findMany();
    expect(rows).toEqual([expect.objectContaining({ hash: `sha256:${createHash('sha256').update(token).digest('hex')}` })]);
    expect(logs.join('\n')).not.toContain(token);
  });

  it('writes a verifiable, hash-chained audit trail of what it did', async () => {
    const events = await broker.db.prisma.auditEvent.findMany({ orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.type)).toEqual([
      'ca.created',
      'jwt_key.created',
      'bundle.authority_added',
      'bundle.authority_added',
      'admin_credential.generated',
      'svid.issued',
    ]);
    expect(await broker.audit.verify()).toBeUndefined();
  });

  it('never logs key material', () => {
    const all = logs.join('\n');
    expect(all).not.toMatch(/PRIVATE KEY/);
    expect(all).not.toContain(readFileSync(join(config.caDir, 'ca.key'), 'utf8').split('\n')[1]);
  });

});

describe('restart', () => {
  it('keeps the same CA, JWT key and admin credential, and does not bump the bundle sequence', async () => {
    const bundleBefore = (await get('/v1/bundle')).body;
    const { kid } = broker.jwtKey;
    await broker.shutdown();
    broker = await start();
    expect((await ops('/readyz')).status).toBe(200);
    const bundleAfter = JSON.parse((await get('/v1/bundle')).body);
    expect(bundleAfter).toEqual(JSON.parse(bundleBefore));
    expect(bundleAfter.spiffe_sequence).toBe(1);
    expect(broker.jwtKey.kid).toBe(kid);
    expect(shownTokens).toHaveLength(1);
    expect(broker.admin.verify(shownTokens[0]!)).toBe(true);
  });

  it('bumps the sequence when the refresh hint changes', async () => {
    await broker.shutdown();
    broker = await startBroker({ ...config, bundleRefreshHint: 120 }, { clock, logger });
    expect(JSON.parse((await get('/v1/bundle')).body)).toMatchObject({ spiffe_sequence: 2, spiffe_refresh_hint: 120 });
    await broker.shutdown();
    broker = await start();
    expect(JSON.parse((await get('/v1/bundle')).body)).toMatchObject({ spiffe_sequence: 3, spiffe_refresh_hint: 300 });
  });

  it('refuses a CA that differs from the bundle\'s (replicas must share one) unless told to replace it', async () => {
    await broker.shutdown();
    rmSync(join(config.caDir, 'ca.crt'));
    rmSync(join(config.caDir, 'ca.key'));
    await expect(start()).rejects.toMatchObject({ setting: 'WRIT_CA_DIR', message: expect.stringMatching(/^the trust bundle's active CA \([0-9a-f]{16}…\) is not the one in WRIT_CA_DIR/) });
    const rejected = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
    broker = await startBroker({ ...config, caReplace: true }, { clock, logger });
    expect(readFileSync(join(config.caDir, 'ca.crt'), 'utf8')).toBe(rejected);
  });

  it('bumps the sequence when the CA is replaced, and keeps the old authority published for the grace period', async () => {
    caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
    const doc = JSON.parse((await get('/v1/bundle')).body);
    expect(doc.spiffe_sequence).toBe(4);
    expect(doc.keys.filter((k: { use: string }) => k.use === 'x509-svid')).toHaveLength(2);
    clock.advance(Math.max(config.x509SvidMaxTtl, config.jwtSvidMaxTtl) + RETIRED_GRACE_MARGIN + 1);
    await broker.shutdown();
    broker = await start();
    // The broker now lives a day ahead of the TLS client's clock: skip certificate checks for this read.
    const later = JSON.parse((await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, insecure: true })).body);
    expect(later.spiffe_sequence).toBe(5);
    expect(later.keys.filter((k: { use: string }) => k.use === 'x509-svid')).toHaveLength(1);
  });

  it('refuses to start on a database that holds another trust domain', async () => {
    await broker.shutdown();
    const other = testConfig(store, { WRIT_TRUST_DOMAIN: 'other.test', WRIT_CA_DIR: join(store.dir, 'other-certs') });
    await expect(startBroker(other, { clock, logger })).rejects.toMatchObject({
      setting: 'WRIT_TRUST_DOMAIN',
      message: 'the database holds the bundle of trust domain "acme.test", not "other.test"',
    });
    broker = await start();
  });

  (usingPostgres() ? it.skip : it)('refuses a second broker on the same embedded database in one process', async () => {
    await expect(start()).rejects.toMatchObject({ setting: 'WRIT_DATA_DIR', message: expect.stringContaining('already open in this process') });
  });

  it('renews its server SVID once two thirds of its life have passed', async () => {
    // The broker's clock is ahead of the TLS client's here: compare certificates without checking them.
    const before = await peerCertificate({ ca: '' });
    const leases = () => broker.db.prisma.lease.count({ where: { spiffeId: 'spiffe://acme.test/writ/server' } });
    const leasesBefore = await leases();
    expect(await broker.renewServerSvidIfDue()).toBe(false);
    clock.advance(17 * 3600);
    expect(await broker.renewServerSvidIfDue()).toBe(true);
    const after = await peerCertificate({ ca: '' });
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(after.subjectaltname).toContain('URI:spiffe://acme.test/writ/server');
    expect(await leases()).toBe(leasesBefore + 1);
  });
  it('reports not ready when its server SVID nears expiry unrenewed', async () => {
    clock.advance(21 * 3600); // past five sixths of 24 h, without the renewal timer having run
    const res = await ops('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', reason: 'server SVID is near expiry and was not renewed' });
    expect(await broker.renewServerSvidIfDue()).toBe(true);
    expect((await ops('/readyz')).status).toBe(200);
  });

  it('reports not ready, and answers the bundle with 503 once its cache is stale, when the database is gone', async () => {
    await broker.db.close();
    const res = await ops('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'not ready', reason: expect.stringMatching(/database/) });
    clock.advance(10); // past the 5 s cache, within the refresh hint: the last bundle read is served
    expect((await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, insecure: true })).status).toBe(200);
    clock.advance(300); // past the refresh hint
    const stale = await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, insecure: true });
    expect(stale.status).toBe(503);
    expect(JSON.parse(stale.body)).toMatchObject({ type: 'urn:writ:problem:bundle-unavailable', status: 503 });
  });
});
