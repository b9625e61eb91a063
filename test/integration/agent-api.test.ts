/**
 * The broker's side of the node agent (`writ agent`), as SPIRE's server treats its agents:
 * workload entries name their agent in parent_id and carry workload selectors (unix:, k8s:);
 * only that agent, over mTLS with its own live X.509-SVID, learns them and obtains SVIDs for
 * them, for keys it generated on its node (a CSR). No other agent, no join token and no node
 * attestation reaches a workload entry; the kill switch on the agent stops it at once.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';

const TD = 'agents.test';
const NODE1 = `spiffe://${TD}/agent/node-1`;
const NODE2 = `spiffe://${TD}/agent/node-2`;
const WORKLOAD = `spiffe://${TD}/workload/python-connector`;

let fx: BrokerFixture<'node1' | 'node2'>;
let workloadEntry: string;

const asAgent = (as: ClientCert | undefined, method: string, path: string, body?: unknown) =>
  httpsRequest(`${fx.broker.apiUrl}${path}`, {
    ca: fx.caPem,
    method,
    headers: { 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    ...(as && { cert: as.cert, key: as.key }),
  }).then((r) => ({ ...r, json: r.body ? JSON.parse(r.body) : undefined }));

/** A key and CSR made as an agent makes them on its node (here with openssl). */
function workloadCsr(name: string): string {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: fx.work });
  return readFileSync(join(fx.work, `${name}.csr`), 'utf8');
}

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-agent-api-',
    trustDomain: TD,
    policies: '',
    connectors: { node1: { spiffeId: NODE1 }, node2: { spiffeId: NODE2 } },
  });
  const created = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: WORKLOAD, parent_id: NODE1, selectors: ['unix:uid:1000', 'unix:path:/usr/bin/python3'] });
  expect(created.status).toBe(201);
  expect(created.json).toMatchObject({ parent_id: NODE1, selectors: ['unix:path:/usr/bin/python3', 'unix:uid:1000'] });
  workloadEntry = created.json.id;
});

afterAll(async () => {
  await fx?.close();
});

describe('workload entries', () => {
  it.each([
    ['workload selectors without an agent', { spiffe_id: WORKLOAD, selectors: ['unix:uid:1000'] }, /parent_id: unix:uid:1000 is a workload selector/],
    ['an agent with node selectors', { spiffe_id: WORKLOAD, parent_id: NODE1, selectors: ['join_token:x'] }, /selectors: an entry under an agent .* needs workload selectors/],
    ['an agent and no selectors', { spiffe_id: WORKLOAD, parent_id: NODE1 }, /selectors: /],
    ['an admin under an agent', { spiffe_id: WORKLOAD, parent_id: NODE1, selectors: ['unix:uid:0'], admin: true }, /admin: an entry under an agent cannot be an admin/],
    ['its own agent', { spiffe_id: NODE1, parent_id: NODE1, selectors: ['unix:uid:0'] }, /parent_id: an entry cannot be its own agent/],
    ['an agent in another trust domain', { spiffe_id: WORKLOAD, parent_id: 'spiffe://elsewhere.test/agent', selectors: ['unix:uid:0'] }, /trust domain/],
    ['an unknown workload selector type', { spiffe_id: WORKLOAD, parent_id: NODE1, selectors: ['unix:shell:/bin/sh'] }, /unix:shell/],
  ])('refuses %s, naming what is wrong', async (_, body, message) => {
    const res = await fx.admin('/v1/admin/entries', 'POST', body);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.json)).toMatch(message);
  });

  it('refuses an update that would leave workload selectors without their agent', async () => {
    const res = await fx.admin(`/v1/admin/entries/${workloadEntry}`, 'PATCH', { selectors: ['join_token:abc'] });
    expect(res.status).toBe(400);
    expect(res.json.detail).toMatch(/^selectors: /);
  });

  it('is not reachable by a join token (only its agent serves it)', async () => {
    const res = await fx.admin('/v1/admin/join-tokens', 'POST', { entry_id: workloadEntry });
    expect(res.status).toBe(400);
    expect(res.json.detail).toContain(`served by its agent ${NODE1}`);
  });
});

describe('the agent API', () => {
  it('lists the entries under the calling agent, and none of another agent\'s', async () => {
    const mine = await asAgent(fx.connectors.node1, 'GET', '/v1/agent/entries');
    expect(mine.status).toBe(200);
    expect(mine.json.entries).toEqual([expect.objectContaining({ id: workloadEntry, spiffe_id: WORKLOAD, selectors: ['unix:path:/usr/bin/python3', 'unix:uid:1000'] })]);
    expect((await asAgent(fx.connectors.node2, 'GET', '/v1/agent/entries')).json.entries).toEqual([]);
    expect((await asAgent(undefined, 'GET', '/v1/agent/entries')).status).toBe(401);
  });

  it('signs an X.509-SVID for its workload\'s CSR, chained to the bundle, audited with the agent', async () => {
    const res = await asAgent(fx.connectors.node1, 'POST', '/v1/agent/x509-svid', { entry_id: workloadEntry, csr: workloadCsr('w1') });
    expect(res.status).toBe(201);
    const leaf = new X509Certificate(res.json.svid);
    expect(leaf.subjectAltName).toBe(`URI:${WORKLOAD}`);
    expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(join(fx.work, 'w1.key'))))).toBe(true); // the key made on the node
    // openssl, which Writ did not write, verifies the chain against the trust bundle.
    writeFileSync(join(fx.work, 'bundle.pem'), fx.bundlePem);
    writeFileSync(join(fx.work, 'w1.crt'), res.json.svid);
    expect(openssl(['verify', '-CAfile', join(fx.work, 'bundle.pem'), join(fx.work, 'w1.crt')])).toContain('OK');
    const event = await fx.broker.db.prisma.auditEvent.findFirst({ where: { type: 'svid.issued', actor: WORKLOAD }, orderBy: { seq: 'desc' } });
    expect(event!.details).toMatchObject({ attestor: 'agent', agent: NODE1, entryId: workloadEntry });
  });

  it('signs a JWT-SVID for its workload, verifiable with the broker\'s JWKS', async () => {
    const res = await asAgent(fx.connectors.node1, 'POST', '/v1/agent/jwt-svid', { entry_id: workloadEntry, audience: ['https://mcp.agents.test'] });
    expect(res.status).toBe(201);
    const jwks = createLocalJWKSet(JSON.parse((await httpsRequest(`${fx.broker.apiUrl}/oauth2/jwks`, { ca: fx.caPem })).body));
    const { payload } = await jwtVerify(res.json.token, jwks, { audience: 'https://mcp.agents.test' });
    expect(payload.sub).toBe(WORKLOAD);
  });

  it('refuses another agent\'s entry as if it did not exist, and a caller without an SVID', async () => {
    const other = await asAgent(fx.connectors.node2, 'POST', '/v1/agent/x509-svid', { entry_id: workloadEntry, csr: workloadCsr('w2') });
    expect([other.status, other.json.type]).toEqual([403, 'urn:writ:problem:no-matching-entry']);
    const jwt = await asAgent(fx.connectors.node2, 'POST', '/v1/agent/jwt-svid', { entry_id: workloadEntry, audience: ['x'] });
    expect(jwt.status).toBe(403);
    expect((await asAgent(undefined, 'POST', '/v1/agent/x509-svid', { entry_id: workloadEntry, csr: workloadCsr('w3') })).status).toBe(401);
    const refused = await fx.broker.db.prisma.auditEvent.findFirst({ where: { type: 'svid.refused', actor: NODE2 }, orderBy: { seq: 'desc' } });
    expect(refused!.details).toMatchObject({ attestor: 'agent', agent: NODE2, reason: 'no-matching-entry' });
  });

  it('node attestation never yields a workload entry, even with its selectors as evidence', async () => {
    const entries = await fx.broker.db.prisma.registrationEntry.findMany({ where: { parentId: { not: null } } });
    expect(entries.map((e) => e.id)).toEqual([workloadEntry]);
    const res = await httpsRequest(`${fx.broker.apiUrl}/v1/attest`, {
      ca: fx.caPem,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ attestor: 'unix', evidence: { uid: 1000 }, csr: workloadCsr('w4') }),
    });
    expect([res.status, JSON.parse(res.body).type]).toEqual([400, 'urn:writ:problem:unknown-attestor']);
  });

  it('stops serving an agent once its kill switch is thrown', async () => {
    const killed = await fx.admin(`/v1/admin/connectors/${encodeURIComponent(NODE1)}/disable`, 'POST', { reason: 'node compromised' });
    expect(killed.status).toBe(200);
    expect((await asAgent(fx.connectors.node1, 'GET', '/v1/agent/entries')).status).toBe(401);
    expect((await asAgent(fx.connectors.node1, 'POST', '/v1/agent/x509-svid', { entry_id: workloadEntry, csr: workloadCsr('w5') })).status).toBe(401);
  });
});
