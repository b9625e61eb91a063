import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl, opensslCaChain } from '../support/openssl';

/** An operator's PKI: Writ signs with an intermediate; peers trust the operator's root. */
const pki = mkdtempSync(join(tmpdir(), 'writ-upstream-'));
let store: TestStore;
let broker: Broker;
let root: string;
let adminToken: string;

beforeAll(async () => {
  opensslCaChain(pki, { intSan: 'URI:spiffe://upstream.test' });
  root = readFileSync(join(pki, 'root.crt'), 'utf8');
  store = await createTestStore();
  const caDir = join(store.dir, 'certs');
  mkdirSync(caDir, { recursive: true });
  writeFileSync(join(caDir, 'ca.crt'), readFileSync(join(pki, 'int.crt'), 'utf8') + root);
  copyFileSync(join(pki, 'int.key'), join(caDir, 'ca.key'));
  broker = await startBroker(testConfig(store, { WRIT_TRUST_DOMAIN: 'upstream.test', WRIT_CA_DIR: caDir }), { showAdminToken: (t) => void (adminToken = t) });
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

const post = (path: string, body: unknown, bearer?: string) =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: root,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer && { authorization: `Bearer ${bearer}` }) },
    body: JSON.stringify(body),
  }).then((r) => ({ ...r, json: JSON.parse(r.body) }));

describe('operator-provided intermediate (upstream authority)', () => {
  it('publishes the operator root, and issues SVIDs whose chain (leaf, intermediate) verifies against it alone', async () => {
    const bundle = await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: root, headers: { accept: 'application/x-pem-file' } });
    expect(new X509Certificate(bundle.body).raw).toEqual(new X509Certificate(root).raw);

    const entry = await post('/v1/admin/entries', { spiffe_id: 'spiffe://upstream.test/svc' }, adminToken);
    const token = await post('/v1/admin/join-tokens', { entry_id: entry.json.id }, adminToken);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'svc.key', '-out', 'svc.csr', '-subj', '/CN=svc'], { cwd: pki });
    const res = await post('/v1/attest', { attestor: 'join_token', evidence: { token: token.json.token }, csr: readFileSync(join(pki, 'svc.csr'), 'utf8') });
    expect(res.status).toBe(201);
    const chain = res.json.svid.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) as string[];
    expect(chain).toHaveLength(2);
    expect(new X509Certificate(chain[1]!).subject).toBe('CN=Operator Intermediate');
    writeFileSync(join(pki, 'svc.pem'), chain[0]!);
    writeFileSync(join(pki, 'untrusted.pem'), chain[1]!);
    writeFileSync(join(pki, 'bundle.pem'), res.json.bundle);
    expect(openssl(['verify', '-CAfile', join(pki, 'bundle.pem'), '-untrusted', join(pki, 'untrusted.pem'), join(pki, 'svc.pem')])).toContain('svc.pem: OK');
  });
});
