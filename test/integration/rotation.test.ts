import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import { ManualClock } from '../../src/core/clock';
import { RETIRED_GRACE_MARGIN, x509Record } from '../../src/ca';
import { activatePreparedSlot } from '../../src/ca/slots';
import type { Config } from '../../src/config';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';

const work = mkdtempSync(join(tmpdir(), 'writ-rotation-'));
const clock = new ManualClock(Date.now());
const logger = pino({ level: 'silent' });
let store: TestStore;
let config: Config;
let broker: Broker;
let adminToken: string;

// The broker's clock runs ahead of the test's TLS stack here, so requests skip certificate checks;
// the certificates are checked with openssl at the broker's time instead.
const request = (path: string, body?: unknown, headers: Record<string, string> = {}) =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: '',
    insecure: true,
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), authorization: `Bearer ${adminToken}`, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((r) => ({ ...r, json: r.body && r.headers['content-type']?.toString().includes('json') ? JSON.parse(r.body) : undefined }));

const bundle = async () => (await request('/v1/bundle')).json as { spiffe_sequence: number; keys: { use: string; kid?: string }[] };
const count = (b: Awaited<ReturnType<typeof bundle>>, use: string) => b.keys.filter((k) => k.use === use).length;

let n = 0;
async function attest(): Promise<X509Certificate> {
  const name = `w${++n}`;
  const entry = await request('/v1/admin/entries', { spiffe_id: `spiffe://rot.test/${name}` });
  const token = await request('/v1/admin/join-tokens', { entry_id: entry.json.id });
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: work });
  const res = await request('/v1/attest', { attestor: 'join_token', evidence: { token: token.json.token }, csr: readFileSync(join(work, `${name}.csr`), 'utf8') });
  expect(res.status).toBe(201);
  return new X509Certificate(res.json.svid);
}

/** openssl verify of a leaf against the bundle's PEM, at the broker's time. */
async function verifies(leaf: X509Certificate): Promise<boolean> {
  writeFileSync(join(work, 'bundle.pem'), (await request('/v1/bundle', undefined, { accept: 'application/x-pem-file' })).body);
  writeFileSync(join(work, 'leaf.pem'), leaf.toString());
  try {
    return openssl(['verify', '-attime', String(Math.floor(clock.now().getTime() / 1000)), '-CAfile', join(work, 'bundle.pem'), join(work, 'leaf.pem')]).includes('OK');
  } catch {
    return false;
  }
}

beforeAll(async () => {
  store = await createTestStore();
  config = testConfig(store, { WRIT_TRUST_DOMAIN: 'rot.test' });
  broker = await startBroker(config, { clock, logger, showAdminToken: (t) => void (adminToken = t) });
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

describe('join tokens and time', () => {
  it('refuses an expired join token exactly as an unknown one', async () => {
    const entry = await request('/v1/admin/entries', { spiffe_id: 'spiffe://rot.test/late' });
    const token = await request('/v1/admin/join-tokens', { entry_id: entry.json.id, ttl: 60 });
    clock.advance(61);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'late.key', '-out', 'late.csr', '-subj', '/CN=x'], { cwd: work });
    const res = await request('/v1/attest', { attestor: 'join_token', evidence: { token: token.json.token }, csr: readFileSync(join(work, 'late.csr'), 'utf8') });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ type: 'urn:writ:problem:token-unusable', detail: 'the join token is unknown, expired or already used' });
  });
});

describe('CA rotation with overlap', () => {
  let oldCa: string;
  let oldLeaf: X509Certificate;
  let oldKid: string;

  it('prepares new X.509 and JWT authorities and publishes them at once (sequence increments)', async () => {
    oldCa = broker.ca.certificate.subject + broker.ca.certificate.serialNumber;
    oldKid = broker.jwtKey.kid;
    oldLeaf = await attest();
    expect((await bundle()).spiffe_sequence).toBe(1);
    const res = await request('/v1/admin/ca/rotate', { overlap: 1800 });
    expect(res.status).toBe(202);
    expect(new Date(res.json.activates_at).getTime()).toBe(clock.now().getTime() + 1800 * 1000);
    const b = await bundle();
    expect(b.spiffe_sequence).toBe(2);
    expect([count(b, 'x509-svid'), count(b, 'jwt-svid')]).toEqual([2, 2]);
    expect(existsSync(join(config.caDir, 'ca.next.crt'))).toBe(true);
  });

  it('keeps signing with the old CA during the overlap, and refuses a second rotation', async () => {
    const leaf = await attest();
    expect(leaf.issuer).toBe(oldLeaf.issuer);
    const again = await request('/v1/admin/ca/rotate', {});
    expect(again.status).toBe(409);
    expect(again.json.type).toBe('urn:writ:problem:rotation-refused');
  });

  it('activates after the overlap: new SVIDs chain to the new root, old ones still verify, the server SVID is reissued', async () => {
    clock.advance(1801);
    await broker.tick();
    expect(broker.ca.certificate.subject + broker.ca.certificate.serialNumber).not.toBe(oldCa);
    expect(broker.jwtKey.kid).not.toBe(oldKid);
    const leaf = await attest();
    expect(leaf.checkIssued(new X509Certificate(Buffer.from(broker.ca.certificate.rawData)))).toBe(true);
    expect(await verifies(leaf)).toBe(true);
    expect(await verifies(oldLeaf)).toBe(true);
    expect((await bundle()).spiffe_sequence).toBe(2); // activation changes who signs, not what is published
    expect(existsSync(join(config.caDir, 'ca.next.crt'))).toBe(false);
    const events = (await broker.db.prisma.auditEvent.findMany({ where: { type: { startsWith: 'ca.rotation' } }, orderBy: { seq: 'asc' } })).map((e) => e.type);
    expect(events).toEqual(['ca.rotation_prepared', 'ca.rotation_requested', 'ca.rotation_activated']);
  });

  it('removes the old authorities once everything they signed has expired', async () => {
    clock.advance(Math.max(config.x509SvidMaxTtl, config.jwtSvidMaxTtl) + RETIRED_GRACE_MARGIN - 10);
    expect(count(await bundle(), 'x509-svid')).toBe(2); // just before the grace period ends
    clock.advance(20);
    const b = await bundle();
    expect(b.spiffe_sequence).toBe(3);
    expect([count(b, 'x509-svid'), count(b, 'jwt-svid')]).toEqual([1, 1]);
    expect(b.keys.find((k) => k.use === 'jwt-svid')!.kid).toBe(broker.jwtKey.kid);
    expect(await verifies(oldLeaf)).toBe(false);
  });

  it('restarts on the rotated CA without bumping the sequence', async () => {
    const kid = broker.jwtKey.kid;
    await broker.shutdown();
    broker = await startBroker(config, { clock, logger });
    expect(broker.jwtKey.kid).toBe(kid);
    expect((await bundle()).spiffe_sequence).toBe(3);
  });

  it('prepares a rotation on schedule once two thirds of the CA\'s life have passed', async () => {
    const { ca } = broker;
    const life = ca.notAfter.getTime() - ca.certificate.notBefore.getTime();
    clock.set(ca.certificate.notBefore.getTime() + life * 0.67);
    await broker.tick();
    expect(count(await bundle(), 'x509-svid')).toBe(2);
    expect(existsSync(join(config.caDir, 'ca.next.crt'))).toBe(true);
  });

  it('a start after a crash between renaming the CA files and telling the database finishes the activation', async () => {
    const prepared = (await broker.db.prisma.authority.findMany({ where: { activatesAt: { gt: clock.now() } } })).map((a) => a.id);
    expect(prepared).toHaveLength(2);
    await broker.shutdown();
    clock.advance(config.caRotationOverlap + 1);
    const sequence = (await (async () => {
      broker = await startBroker(config, { clock, logger });
      return bundle();
    })()).spiffe_sequence;
    // That start activated normally; now crash the next activation halfway by hand.
    const res = await request('/v1/admin/ca/rotate', { overlap: 60 });
    expect(res.status).toBe(202);
    await broker.shutdown();
    clock.advance(61);
    activatePreparedSlot(config.caDir); // the files say the new CA is active; the database was never told
    broker = await startBroker(config, { clock, logger });
    expect(x509Record(broker.ca).id).toBe(res.json.x509_authority);
    expect(broker.jwtKey.kid).toBe(res.json.jwt_authority);
    expect((await bundle()).spiffe_sequence).toBe(sequence + 1); // the prepare published; the recovery did not change the document
    expect((await fetch(`${broker.opsUrl}/readyz`)).status).toBe(200);
  });

  (usingPostgres() ? it : it.skip)('a replica on the same database and CA files follows a rotation another replica made, within a second of its announcement', async () => {
    const replica = await startBroker(config, { clock, logger });
    try {
      const before = x509Record(replica.ca).id;
      const res = await request('/v1/admin/ca/rotate', { overlap: 0 });
      expect(res.status).toBe(202);
      await broker.tick(); // the first replica activates
      expect(x509Record(broker.ca).id).toBe(res.json.x509_authority);
      // The second one hears the activation announced (no tick needed) and loads the files.
      const deadline = Date.now() + 1000;
      while (x509Record(replica.ca).id === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(x509Record(replica.ca).id).toBe(res.json.x509_authority);
      expect(replica.jwtKey.kid).toBe(res.json.jwt_authority);
      expect(replica.rotator.inSync).toBe(true);
    } finally {
      await replica.shutdown();
    }
  });
});
