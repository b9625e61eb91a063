import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';

let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;

const admin = (path: string, method = 'GET', body?: unknown) =>
  httpsRequest(`${broker.apiUrl}${path}`, {
    ca: caPem,
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((r) => ({ ...r, json: r.body ? JSON.parse(r.body) : undefined }));

beforeAll(async () => {
  store = await createTestStore();
  const config = testConfig(store, { WRIT_TRUST_DOMAIN: 'res.test', WRIT_POLICY_FILE: join(__dirname, '../../src/policy/testdata/writ.cedar') });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

const github = {
  uri: 'https://mcp.example/github',
  spiffe_id: 'spiffe://res.test/mcp/github',
  tools: [
    { name: 'create_issue', actions: ['write'], classification: 'internal' },
    { name: 'search_code', actions: ['read'], classification: 'confidential' },
  ],
};

describe('resource registry (RFC 8707 resources, for admins)', () => {
  it('creates, reads by percent-encoded URI, lists, updates and deletes', async () => {
    const created = await admin('/v1/admin/resources', 'POST', github);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ uri: github.uri, spiffe_id: github.spiffe_id, tools: github.tools });
    const path = `/v1/admin/resources/${encodeURIComponent(github.uri)}`;
    expect((await admin(path)).json.tools).toHaveLength(2);
    expect((await admin('/v1/admin/resources')).json.resources.map((r: { uri: string }) => r.uri)).toEqual([github.uri]);
    const updated = await admin(path, 'PATCH', { tools: [github.tools[0]] });
    expect(updated.json.tools).toEqual([github.tools[0]]);
    expect((await admin('/v1/admin/resources', 'POST', github)).status).toBe(409);
    expect((await admin(path, 'DELETE')).status).toBe(204);
    const gone = await admin(path);
    expect(gone.status).toBe(404);
    expect(gone.json.type).toBe('urn:writ:problem:resource-not-found');
  });

  it.each([
    [{ ...github, uri: '/relative' }, 'uri: must be an absolute http(s) URI'],
    [{ ...github, uri: 'https://mcp.example/x#frag' }, 'without a fragment'],
    [{ ...github, spiffe_id: 'spiffe://other.test/mcp' }, 'spiffe_id: SPIFFE ID must be in trust domain "res.test"'],
    [{ ...github, tools: [{ name: 'x', actions: ['fly'], classification: 'public' }] }, 'tools.0.actions.0'],
    [{ ...github, tools: [{ name: 'x', actions: ['read'], classification: 'secret' }] }, 'tools.0.classification'],
    [{ ...github, tools: [github.tools[0], github.tools[0]] }, 'tool names must be unique'],
  ])('refuses %j', async (body, message) => {
    const res = await admin('/v1/admin/resources', 'POST', body);
    expect(res.status).toBe(400);
    expect(res.json.detail).toContain(message);
  });

  it('is for admins only', async () => {
    const res = await httpsRequest(`${broker.apiUrl}/v1/admin/resources`, { ca: caPem });
    expect(res.status).toBe(401);
  });
});

describe('policies (Cedar, versioned)', () => {
  it('loads the policy file as version 1 at start-up', async () => {
    const res = await admin('/v1/admin/policies');
    expect(res.json).toMatchObject({ version: 1, created_by: 'policy_file' });
    expect(res.json.policies).toBe(readFileSync(join(__dirname, '../../src/policy/testdata/writ.cedar'), 'utf8'));
  });

  it('refuses a set that does not validate against the schema, with Cedar\'s errors', async () => {
    const res = await admin('/v1/admin/policies', 'PUT', { policies: 'permit(principal, action, resource) when { context.classification_level == "high" };' });
    expect(res.status).toBe(400);
    expect(res.json.type).toBe('urn:writ:problem:invalid-policy');
    expect(res.json.errors[0]).toMatch(/Long|String|compatible/);
    expect((await admin('/v1/admin/policies')).json.version).toBe(1);
  });

  it('versions a valid set and serves it', async () => {
    const text = '@id("allow-public-reads")\npermit(principal, action == Writ::Action::"read", resource) when { context.classification_level == 0 };\n';
    const res = await admin('/v1/admin/policies', 'PUT', { policies: text });
    expect(res.status).toBe(200);
    expect(res.json.version).toBe(2);
    expect((await admin('/v1/admin/policies')).json).toMatchObject({ version: 2, policies: text, created_by: 'admin' });
  });
});
