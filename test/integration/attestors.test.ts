import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startBroker, type Broker } from '../../src/broker';
import { caFingerprint } from '../../src/attestation';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl, opensslCaChain } from '../support/openssl';

const work = mkdtempSync(join(tmpdir(), 'writ-attestors-'));
let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;
let jwks: Server;
let fileKey: CryptoKey;
let uriKey: CryptoKey;
let uriIssuer: string;

const FILE_ISSUER = 'https://issuer.corp.test';

function csr(name: string): string {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: work });
  return readFileSync(join(work, `${name}.csr`), 'utf8');
}

const post = (path: string, body: unknown, opts: { bearer?: string; cert?: string; key?: string } = {}) =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: caPem,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(opts.bearer && { authorization: `Bearer ${opts.bearer}` }) },
    body: JSON.stringify(body),
    cert: opts.cert,
    key: opts.key,
  }).then((r) => ({ ...r, json: JSON.parse(r.body) }));

const token = (key: CryptoKey, claims: Record<string, unknown>, iss = FILE_ISSUER, aud = 'writ') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(iss).setAudience(aud).setIssuedAt().setExpirationTime('5m').sign(key);

beforeAll(async () => {
  const a = await generateKeyPair('ES256');
  const b = await generateKeyPair('ES256');
  fileKey = a.privateKey as CryptoKey;
  uriKey = b.privateKey as CryptoKey;
  writeFileSync(join(work, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(a.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  const served = JSON.stringify({ keys: [{ ...(await exportJWK(b.publicKey)), kid: 'k1', alg: 'ES256' }] });
  jwks = createServer((_, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(served));
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  uriIssuer = `http://127.0.0.1:${(jwks.address() as { port: number }).port}`;

  opensslCaChain(work);
  writeFileSync(join(work, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:db-1.corp.test\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'db1.key', '-out', 'db1.csr', '-subj', '/CN=db-1'], { cwd: work });
  openssl(['x509', '-req', '-in', 'db1.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'db1.crt', '-days', '2', '-extfile', 'leaf.ext'], { cwd: work });

  store = await createTestStore();
  const config = testConfig(store, {
    WRIT_TRUST_DOMAIN: 'corp.test',
    WRIT_OIDC_ISSUERS: JSON.stringify([
      { issuer: FILE_ISSUER, jwks_file: join(work, 'jwks.json'), audience: 'writ', algorithms: ['ES256'], claims: ['kubernetes.io.namespace'] },
      { issuer: uriIssuer, jwks_uri: `${uriIssuer}/keys`, audience: 'writ', algorithms: ['ES256'] },
    ]),
    WRIT_X509POP: JSON.stringify({ ca_bundle_file: join(work, 'root.crt'), intermediates_file: join(work, 'int.crt') }),
  });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
});

afterAll(async () => {
  await broker?.shutdown();
  jwks?.close();
  await store?.drop();
});

describe('oidc attestation end to end', () => {
  it('issues the SVID of the entry whose selectors the token proves (jwks_file issuer)', async () => {
    const entry = await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/k8s/mcp/github', selectors: [`oidc:iss:${FILE_ISSUER}`, 'oidc:sub:system:serviceaccount:mcp:github', 'oidc:claim:kubernetes.io.namespace:mcp'] }, { bearer: adminToken });
    expect(entry.status).toBe(201);
    const jwt = await token(fileKey, { sub: 'system:serviceaccount:mcp:github', 'kubernetes.io': { namespace: 'mcp' } });
    const res = await post('/v1/attest', { attestor: 'oidc', evidence: { token: jwt }, csr: csr('gh') });
    expect(res.status).toBe(201);
    expect(res.json.spiffe_id).toBe('spiffe://corp.test/k8s/mcp/github');
  });

  it('fetches keys from a jwks_uri issuer', async () => {
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/ci/deploy', selectors: [`oidc:iss:${uriIssuer}`, 'oidc:sub:repo:corp/app:ref:refs/heads/main'] }, { bearer: adminToken });
    const res = await post('/v1/attest', { attestor: 'oidc', evidence: { token: await token(uriKey, { sub: 'repo:corp/app:ref:refs/heads/main' }, uriIssuer) }, csr: csr('ci') });
    expect(res.status).toBe(201);
    expect(res.json.spiffe_id).toBe('spiffe://corp.test/ci/deploy');
  });

  it('refuses a token for another audience, and one that matches no entry', async () => {
    const wrongAud = await post('/v1/attest', { attestor: 'oidc', evidence: { token: await token(fileKey, { sub: 'system:serviceaccount:mcp:github' }, FILE_ISSUER, 'someone-else') }, csr: csr('aud') });
    expect(wrongAud.status).toBe(400);
    expect(wrongAud.json.type).toBe('urn:writ:problem:invalid-evidence');
    const noEntry = await post('/v1/attest', { attestor: 'oidc', evidence: { token: await token(fileKey, { sub: 'system:serviceaccount:other:sa' }) }, csr: csr('none') });
    expect(noEntry.status).toBe(403);
    expect(noEntry.json.type).toBe('urn:writ:problem:no-matching-entry');
  });
});

describe('entry matching', () => {
  const sub = 'system:serviceaccount:team:agent';
  const iss = `oidc:iss:${FILE_ISSUER}`;
  it('picks the most specific entry, refuses a tie between SPIFFE IDs, and never matches an entry without selectors', async () => {
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/no-selectors' }, { bearer: adminToken });
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/team/any', selectors: [iss] }, { bearer: adminToken });
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/team/agent', selectors: [iss, `oidc:sub:${sub}`] }, { bearer: adminToken });
    const jwt = await token(fileKey, { sub });
    const first = await post('/v1/attest', { attestor: 'oidc', evidence: { token: jwt }, csr: csr('m1') });
    expect(first.json.spiffe_id).toBe('spiffe://corp.test/team/agent');
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/team/impostor', selectors: [iss, `oidc:sub:${sub}`] }, { bearer: adminToken });
    const tie = await post('/v1/attest', { attestor: 'oidc', evidence: { token: jwt }, csr: csr('m2') });
    expect(tie.status).toBe(403);
    expect(tie.json.detail).toMatch(/match equally/);
  });
});

describe('x509pop attestation end to end', () => {
  it('issues the SVID for a client certificate from the enterprise CA', async () => {
    const ca = caFingerprint(readFileSync(join(work, 'root.crt'), 'utf8'));
    await post('/v1/admin/entries', { spiffe_id: 'spiffe://corp.test/db/db-1', selectors: ['x509pop:subject_cn:db-1', `x509pop:ca:${ca}`] }, { bearer: adminToken });
    const cert = readFileSync(join(work, 'db1.crt'), 'utf8');
    const key = readFileSync(join(work, 'db1.key'), 'utf8');
    const res = await post('/v1/attest', { attestor: 'x509pop', evidence: {}, csr: csr('db1-svid') }, { cert, key });
    expect(res.status).toBe(201);
    expect(res.json.spiffe_id).toBe('spiffe://corp.test/db/db-1');
  });

  it('answers 401 without a client certificate', async () => {
    const res = await post('/v1/attest', { attestor: 'x509pop', evidence: {}, csr: csr('anon') });
    expect(res.status).toBe(401);
    expect(res.json.type).toBe('urn:writ:problem:client-certificate-required');
  });
});
