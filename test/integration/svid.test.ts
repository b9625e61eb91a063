import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer } from 'node:tls';
import { randomUUID, X509Certificate } from 'node:crypto';
import { JoinTokens } from '../../src/attestation/join-token';
import { TaskStore } from '../../src/leases';
import { systemClock, systemRandom } from '../../src/core';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startBroker, type Broker } from '../../src/broker';
import type { Config } from '../../src/config';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest, type HttpsResponse } from '../support/https';
import { openssl } from '../support/openssl';

let store: TestStore;
let config: Config;
let broker: Broker;
let caPem: string;
let adminToken: string;
const work = mkdtempSync(join(tmpdir(), 'writ-svid-'));

/** A key and CSR made by openssl; the CSR asks for things the CA must ignore. */
function keyAndCsr(name: string): { key: string; csr: string } {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`,
    '-subj', '/CN=ignored', '-addext', 'subjectAltName=DNS:evil.example,URI:spiffe://td.test/admin', '-addext', 'basicConstraints=critical,CA:TRUE'], { cwd: work });
  return { key: readFileSync(join(work, `${name}.key`), 'utf8'), csr: readFileSync(join(work, `${name}.csr`), 'utf8') };
}

type Call = { method?: string; body?: unknown; bearer?: string; cert?: string; key?: string };
const call = (path: string, c: Call = {}): Promise<HttpsResponse & { json: any }> =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: caPem,
    method: c.method ?? (c.body === undefined ? 'GET' : 'POST'),
    headers: { ...(c.body !== undefined && { 'content-type': 'application/json' }), ...(c.bearer && { authorization: `Bearer ${c.bearer}` }) },
    body: c.body === undefined ? undefined : JSON.stringify(c.body),
    cert: c.cert,
    key: c.key,
  }).then((r) => ({ ...r, json: r.body ? JSON.parse(r.body) : undefined }));
const admin = (path: string, c: Call = {}) => call(path, { ...c, bearer: adminToken });

async function entryWithToken(spiffeId: string, extra: Record<string, unknown> = {}) {
  const entry = await admin('/v1/admin/entries', { body: { spiffe_id: spiffeId, ...extra } });
  expect(entry.status).toBe(201);
  const token = await admin('/v1/admin/join-tokens', { body: { entry_id: entry.json.id, ttl: 600 } });
  expect(token.status).toBe(201);
  return { entry: entry.json, token: token.json.token as string };
}

async function attest(spiffePath: string, extra: Record<string, unknown> = {}) {
  const { token, entry } = await entryWithToken(`spiffe://td.test${spiffePath}`, extra);
  const { key, csr } = keyAndCsr(spiffePath.replace(/\W/g, '_'));
  const res = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr } });
  expect(res.status).toBe(201);
  return { entry, key, svid: res.json.svid as string, res };
}

beforeAll(async () => {
  store = await createTestStore();
  config = testConfig(store, { WRIT_TRUST_DOMAIN: 'td.test' });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

describe('admin API authentication', () => {
  it('401 without credentials, 401 with a wrong bearer, 200 with the admin token', async () => {
    const none = await call('/v1/admin/entries');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.json).toMatchObject({ type: 'urn:writ:problem:unauthenticated', status: 401 });
    const wrong = await call('/v1/admin/entries', { bearer: 'writ_admin_wrong' });
    expect(wrong.status).toBe(401);
    expect((await admin('/v1/admin/entries')).status).toBe(200);
  });

  it('403 for a verified SVID whose entry is not admin; 200 once it is', async () => {
    const { key, svid, entry } = await attest('/ops/console');
    const asSvid = (c: Call = {}) => call('/v1/admin/entries', { ...c, cert: svid, key });
    expect((await asSvid()).status).toBe(403);
    expect((await admin(`/v1/admin/entries/${entry.id}`, { method: 'PATCH', body: { admin: true } })).status).toBe(200);
    expect((await asSvid()).status).toBe(200);
  });
});

describe('registration entries', () => {
  it('creates with defaults, reads, lists by filter, updates and deletes', async () => {
    const created = await admin('/v1/admin/entries', {
      body: { spiffe_id: 'spiffe://td.test/mcp/github', selectors: ['oidc:sub:repo:acme/app', 'oidc:iss:https://token.actions.githubusercontent.com'], metadata: { owner: 'platform', mcp_server_uri: 'https://mcp.acme.test/github', tools: ['issues.read'] } },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ spiffe_id: 'spiffe://td.test/mcp/github', x509_svid_ttl: 3600, jwt_svid_ttl: 300, admin: false, enabled: true, dns_names: [] });
    const id = created.json.id;
    expect((await admin(`/v1/admin/entries/${id}`)).json.metadata.tools).toEqual(['issues.read']);
    expect((await admin('/v1/admin/entries?spiffe_id_prefix=spiffe://td.test/mcp/')).json.entries.map((e: any) => e.id)).toContain(id);
    expect((await admin('/v1/admin/entries?selector=oidc:sub:repo:acme/app')).json.entries.map((e: any) => e.id)).toEqual([id]);
    const updated = await admin(`/v1/admin/entries/${id}`, { method: 'PATCH', body: { enabled: false } });
    expect(updated.json).toMatchObject({ enabled: false, x509_svid_ttl: 3600 });
    expect((await admin('/v1/admin/entries?enabled=false')).json.entries.map((e: any) => e.id)).toContain(id);
    expect((await admin(`/v1/admin/entries/${id}`, { method: 'DELETE' })).status).toBe(204);
    const gone = await admin(`/v1/admin/entries/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.json.type).toBe('urn:writ:problem:entry-not-found');
  });

  it.each([
    ['spiffe://other.test/a', 'spiffe_id: SPIFFE ID must be in trust domain "td.test"'],
    ['spiffe://td.test', 'spiffe_id: SPIFFE ID of a workload needs a path'],
    ['spiffe://td.test/a/', 'trailing'],
    ['spiffe://td.test/a/../b', '".."'],
    ['spiffe://TD.test/a', 'lowercase'],
    ['spiffe://td.test/a%2Fb', 'percent'],
    ['spiffe://td.test:443/a', 'port'],
    ['https://td.test/a', 'must start with "spiffe://"'],
  ])('refuses SPIFFE ID %s with 400 naming the rule', async (spiffeId, rule) => {
    const res = await admin('/v1/admin/entries', { body: { spiffe_id: spiffeId } });
    expect(res.status).toBe(400);
    expect(res.json.type).toBe('urn:writ:problem:invalid-request');
    expect(res.json.detail).toContain(rule);
  });

  it.each([
    [{ selectors: ['kube:ns:default'] }, 'names no known attestor'],
    [{ selectors: ['k8s:ns:default'] }, 'parent_id: k8s:ns:default is a workload selector'],
    [{ selectors: ['oidc:subject:x'] }, 'is not one of'],
    [{ selectors: ['oidc:sub:system:serviceaccount:a:b'] }, 'oidc selectors need an oidc:iss:<issuer> selector beside them'],
    [{ selectors: ['x509pop:subject_cn:db-1'] }, 'x509pop selectors need an x509pop:ca:<fingerprint> selector beside them'],
    [{ x509_svid_ttl: 10 ** 9 }, 'x509_svid_ttl: must be at most 86400 seconds'],
    [{ dns_names: ['bad name'] }, 'dns_names.0: is not a valid DNS name'],
    [{ unknown_field: 1 }, 'unknown_field'],
  ])('refuses %j', async (extra, message) => {
    const res = await admin('/v1/admin/entries', { body: { spiffe_id: 'spiffe://td.test/x', ...extra } });
    expect(res.status).toBe(400);
    expect(res.body).toContain(message);
  });
});

describe('join_token attestation', () => {
  it('issues an X.509-SVID for the entry, ignoring all the CSR asks for, that openssl verifies against the bundle', async () => {
    const { res, entry } = await attest('/connector/mail', { dns_names: ['mail.td.test'] });
    expect(res.json.spiffe_id).toBe('spiffe://td.test/connector/mail');
    const leaf = new X509Certificate(res.json.svid);
    expect(leaf.subjectAltName).toBe('URI:spiffe://td.test/connector/mail, DNS:mail.td.test');
    expect(leaf.ca).toBe(false);
    expect(new Date(res.json.expires_at).getTime()).toBe(new Date(leaf.validTo).getTime());
    writeFileSync(join(work, 'leaf.pem'), res.json.svid);
    writeFileSync(join(work, 'bundle.pem'), res.json.bundle);
    expect(openssl(['verify', '-CAfile', join(work, 'bundle.pem'), '-purpose', 'sslclient', join(work, 'leaf.pem')])).toContain('OK');
    const leases = await broker.db.prisma.lease.findMany({ where: { spiffeId: entry.spiffe_id } });
    expect(leases.map((l) => l.serial)).toEqual([leaf.serialNumber.toLowerCase()]);
    expect(leases[0]!.fingerprint).toBe(leaf.fingerprint256.replace(/:/g, '').toLowerCase());
    const [event] = await broker.db.prisma.auditEvent.findMany({ where: { type: 'svid.issued', actor: entry.spiffe_id } });
    expect(event!.details).toMatchObject({ attestor: 'join_token', selectors: [expect.stringMatching(/^join_token:[0-9a-f]{16}$/)], serial: leaf.serialNumber.toLowerCase(), entryId: entry.id });
  });

  it('refuses a used, an unknown and an expired token alike', async () => {
    const { token } = await entryWithToken('spiffe://td.test/once');
    const { csr } = keyAndCsr('once');
    const first = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr } });
    expect(first.status).toBe(201);
    const again = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr } });
    const unknown = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token: 'writ_jt_nope' }, csr } });
    for (const r of [again, unknown]) {
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ type: 'urn:writ:problem:token-unusable', detail: 'the join token is unknown, expired or already used' });
    }
  });

  it('of 20 concurrent attempts with one token, exactly one gets an SVID', async () => {
    const { token, entry } = await entryWithToken('spiffe://td.test/race');
    const { csr } = keyAndCsr('race');
    const results = await Promise.all(Array.from({ length: 20 }, () => call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr } })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 400)).toHaveLength(19);
    expect(await broker.db.prisma.lease.count({ where: { spiffeId: entry.spiffe_id } })).toBe(1);
  });

  it('redemptions arriving together share one statement, yet a token named twice in it goes to one caller only', async () => {
    const tokens = new JoinTokens(broker.db.prisma, { clock: systemClock, random: systemRandom, audit: broker.audit.appendIn });
    const a = await entryWithToken('spiffe://td.test/batch-a');
    const b = await entryWithToken('spiffe://td.test/batch-b');
    const outcomes = await Promise.allSettled([a.token, b.token, a.token, 'writ_jt_unknown', a.token].map((t) => tokens.redeem(t)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected']);
    expect((outcomes[0] as PromiseFulfilledResult<{ entryId: string }>).value.entryId).toBe(a.entry.id);
    expect((outcomes[1] as PromiseFulfilledResult<{ entryId: string }>).value.entryId).toBe(b.entry.id);
    await expect(tokens.redeem(b.token)).rejects.toMatchObject({ message: 'the join token is unknown, expired or already used' });
  });

  it('refuses an unknown attestor, bad evidence and a bad CSR without using up the token', async () => {
    const { token } = await entryWithToken('spiffe://td.test/careful');
    const { csr } = keyAndCsr('careful');
    expect((await call('/v1/attest', { body: { attestor: 'tpm', evidence: { token }, csr } })).json.type).toBe('urn:writ:problem:unknown-attestor');
    expect((await call('/v1/attest', { body: { attestor: 'join_token', evidence: { jwt: token }, csr } })).json.type).toBe('urn:writ:problem:invalid-evidence');
    const badCsr = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr: 'not a csr' } });
    expect(badCsr.status).toBe(400);
    expect((await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr } })).status).toBe(201);
    const refusals = await broker.db.prisma.auditEvent.findMany({ where: { type: 'svid.refused' } });
    expect(refusals.length).toBeGreaterThanOrEqual(3);
  });

  it('refuses a token whose entry was disabled', async () => {
    const { token, entry } = await entryWithToken('spiffe://td.test/disabled');
    await admin(`/v1/admin/entries/${entry.id}`, { method: 'PATCH', body: { enabled: false } });
    const res = await call('/v1/attest', { body: { attestor: 'join_token', evidence: { token }, csr: keyAndCsr('disabled').csr } });
    expect(res.status).toBe(403);
    expect(res.json.type).toBe('urn:writ:problem:entry-disabled');
  });
});

describe('renewal and JWT-SVIDs over mTLS', () => {
  it('renews an SVID for the same SPIFFE ID; 401 without a client certificate', async () => {
    const { key, svid } = await attest('/renewer');
    const next = keyAndCsr('renewer-next');
    const res = await call('/v1/svid/renew', { body: { csr: next.csr }, cert: svid, key });
    expect(res.status).toBe(201);
    expect(res.json.spiffe_id).toBe('spiffe://td.test/renewer');
    expect(new X509Certificate(res.json.svid).serialNumber).not.toBe(new X509Certificate(svid).serialNumber);
    const anonymous = await call('/v1/svid/renew', { body: { csr: next.csr } });
    expect(anonymous.status).toBe(401);
  });

  it('refuses to renew, or to mint a JWT-SVID, once the entry is disabled', async () => {
    const { key, svid, entry } = await attest('/to-disable');
    await admin(`/v1/admin/entries/${entry.id}`, { method: 'PATCH', body: { enabled: false } });
    const renew = await call('/v1/svid/renew', { body: { csr: keyAndCsr('to-disable-next').csr }, cert: svid, key });
    expect(renew.status).toBe(403);
    expect(renew.json.type).toBe('urn:writ:problem:entry-disabled');
    const jwt = await call('/v1/jwt-svid', { body: { audience: ['x'] }, cert: svid, key });
    expect(jwt.status).toBe(403);
  });

  it('refuses a revoked SVID on mTLS routes with 401', async () => {
    const { key, svid } = await attest('/revoked');
    await broker.db.prisma.lease.updateMany({ where: { serial: new X509Certificate(svid).serialNumber.toLowerCase() }, data: { revokedAt: new Date(), revocationReason: 'test' } });
    const renew = await call('/v1/svid/renew', { body: { csr: keyAndCsr('revoked-next').csr }, cert: svid, key });
    expect(renew.status).toBe(401);
    expect((await call('/v1/jwt-svid', { body: { audience: ['x'] }, cert: svid, key })).status).toBe(401);
  });

  it('issues a JWT-SVID that verifies with the bundle\'s keys alone', async () => {
    const { key, svid } = await attest('/jwt-user', { jwt_svid_ttl: 120 });
    const res = await call('/v1/jwt-svid', { body: { audience: ['https://mcp.td.test'] }, cert: svid, key });
    expect(res.status).toBe(201);
    const bundle = (await call('/v1/bundle')).json;
    // A SPIFFE bundle marks JWT authorities use "jwt-svid"; JOSE verifiers expect "sig" or none, so drop it.
    const keys = bundle.keys.filter((k: any) => k.use === 'jwt-svid').map(({ use: _use, ...k }: any) => k);
    const { payload, protectedHeader } = await jwtVerify(res.json.token, createLocalJWKSet({ keys }), { audience: 'https://mcp.td.test', algorithms: ['ES256'] });
    expect(protectedHeader.kid).toBe(broker.jwtKey.kid);
    expect(payload.sub).toBe('spiffe://td.test/jwt-user');
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(payload.jti).toEqual(expect.any(String));
  });

  it('two connectors complete a mutual-TLS handshake with only the bundle as trust (Node tls)', async () => {
    const a = await attest('/peer/a');
    const b = await attest('/peer/b');
    const bundlePem = (await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, headers: { accept: 'application/x-pem-file' } })).body;
    const server = createTlsServer({ cert: a.svid, key: a.key, ca: bundlePem, requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(s.getPeerCertificate().subjectaltname ?? '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const seen = await new Promise<{ clientSaw: string | undefined; serverSaid: string }>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, cert: b.svid, key: b.key, ca: bundlePem, checkServerIdentity: () => undefined }, () => {
        const clientSaw = s.getPeerCertificate().subjectaltname;
        let data = '';
        s.on('data', (d) => (data += d)).on('end', () => resolve({ clientSaw, serverSaid: data }));
      });
      s.on('error', reject);
    });
    server.close();
    expect(seen.clientSaw).toBe('URI:spiffe://td.test/peer/a');
    expect(seen.serverSaid).toBe('URI:spiffe://td.test/peer/b');
  });
});

describe('tasks', () => {
  it('the task\'s connector ends it and every lease of the task is revoked; others may not', async () => {
    const owner = await attest('/tasks/owner');
    const other = await attest('/tasks/other');
    const tasks = new TaskStore(broker.db.prisma, { clock: systemClock, random: systemRandom, audit: broker.audit.appendIn });
    const task = await tasks.create('alice', 'https://idp.test', 'spiffe://td.test/tasks/owner');
    for (const id of [randomUUID(), randomUUID()]) {
      await broker.db.prisma.lease.create({ data: { id, kind: 'access-token', spiffeId: 'spiffe://td.test/tasks/owner', subject: 'alice', taskId: task.id, audience: ['https://mcp.test'], issuedAt: new Date(), expiresAt: new Date(Date.now() + 300_000) } });
    }
    const path = `/v1/tasks/${task.id}/end`;
    expect((await call(path, { body: {} })).status).toBe(401);
    const forbidden = await call(path, { body: {}, cert: other.svid, key: other.key });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.type).toBe('urn:writ:problem:task-forbidden');
    const ended = await call(path, { body: {}, cert: owner.svid, key: owner.key });
    expect(ended.status).toBe(200);
    expect(ended.json).toEqual({ task_id: task.id, revoked: 2 });
    expect(await broker.db.prisma.lease.count({ where: { taskId: task.id, revokedAt: null } })).toBe(0);
    expect((await call(`/v1/tasks/${randomUUID()}/end`, { body: {}, cert: owner.svid, key: owner.key })).status).toBe(404);
  });
});

describe('GET /oauth2/jwks', () => {
  it('serves the JWT keys as a plain JWK Set that verifies JWT-SVIDs', async () => {
    const { key, svid } = await attest('/jwks-user');
    const jwt = (await call('/v1/jwt-svid', { body: { audience: ['a'] }, cert: svid, key })).json.token;
    const jwks = await call('/oauth2/jwks');
    expect(jwks.headers['content-type']).toMatch(/^application\/jwk-set\+json/);
    expect(jwks.json.keys[0]).toMatchObject({ use: 'sig', alg: 'ES256', kid: broker.jwtKey.kid });
    const { payload } = await jwtVerify(jwt, createLocalJWKSet(jwks.json), { audience: 'a' });
    expect(payload.sub).toBe('spiffe://td.test/jwks-user');
  });
});
