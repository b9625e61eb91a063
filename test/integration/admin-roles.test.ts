/**
 * Admins who are people (issue 19, part 1): a person signs in with a token of the company's
 * identity provider for Writ's own audience (WRIT_ADMIN_AUDIENCE) and holds a role by binding
 * (auditor ⊂ operator ⊂ admin). Every admin route declares its role; this test enumerates them
 * all from the operations the OpenAPI document is made of and checks that none is reachable
 * without the role it declares. Changes are audited with the person; the bootstrap token can be
 * disabled once someone else can administer Writ.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../../src/broker';
import { OPERATIONS } from '../../src/api/openapi/operations';
import { ConfigError } from '../../src/config';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { httpsRequest } from '../support/https';
import { testConfig } from '../support/config';
import { createTestStore } from '../support/database';
import { writ } from '../support/cli';

const IDP = 'https://idp.roles.test';
const CONSOLE = 'writ-console';
const ROLES = [
  { role: 'auditor', issuer: IDP, group: 'audit' },
  { role: 'operator', issuer: IDP, group: 'secops' },
  { role: 'admin', issuer: IDP, subject: 'root' },
];

let fx: BrokerFixture<'agent'>;
const signIn = (sub: string, groups: string[]) => fx.idp.idToken({ groups }, { subject: sub, audience: CONSOLE });
const call = async (method: string, path: string, bearer: string, body?: unknown) => {
  const res = await httpsRequest(`${fx.broker.apiUrl}${path}`, { ca: fx.caPem, method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return { status: res.status, json: parsed(res.body) };
};
/** JSON, or undefined (the audit export answers JSON Lines). */
const parsed = (body: string) => {
  try {
    return body ? JSON.parse(body) : undefined;
  } catch {
    return undefined;
  }
};

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-roles-',
    trustDomain: 'roles.test',
    idpIssuer: IDP,
    policies: '',
    env: { WRIT_ADMIN_AUDIENCE: CONSOLE, WRIT_ADMIN_ROLES: JSON.stringify(ROLES) },
    connectors: { agent: { spiffeId: 'spiffe://roles.test/agent/assistant' } },
  });
});
afterAll(async () => {
  await fx?.close();
});

/** A request path for an operation: parameters filled with values that name nothing. */
const pathOf = (path: string) => path.replace(':id', randomUUID()).replace(':uri', encodeURIComponent('https://nothing.roles.test/mcp')).replace(':spiffe_id', encodeURIComponent('spiffe://roles.test/nothing'));
/** A body no route accepts, so that a permitted call is refused for its input (400), and changes nothing. */
const BAD_BODY = { not_a_field: true };

describe('every admin route declares a role, and none is reachable without it', () => {
  const admin = OPERATIONS.filter((op) => op.caller === 'admin');

  it('declares a role for each admin operation', () => {
    expect(admin.length).toBeGreaterThan(20);
    expect(admin.filter((op) => op.role === undefined).map((op) => `${op.method} ${op.path}`)).toEqual([]);
  });

  it.each([
    ['nobody (a person with no binding)', 'nina', ['eng'], undefined],
    ['an auditor', 'alex', ['audit'], 'auditor'],
    ['an operator', 'olivia', ['secops'], 'operator'],
    ['an admin', 'root', [], 'admin'],
  ] as const)('%s reaches exactly the routes their role covers', async (_who, sub, groups, held) => {
    const token = await signIn(sub, [...groups]);
    const rank = (r: string | undefined) => (r === undefined ? -1 : ['auditor', 'operator', 'admin'].indexOf(r));
    const wrong: string[] = [];
    for (const op of admin) {
      const body = op.method === 'get' || op.method === 'delete' ? undefined : BAD_BODY;
      const { status, json } = await call(op.method.toUpperCase(), pathOf(op.path), token, body);
      const allowed = rank(held) >= rank(op.role);
      if (allowed ? status === 401 || status === 403 : status !== 403) wrong.push(`${op.method.toUpperCase()} ${op.path} (needs ${op.role}): ${status} ${json?.detail ?? ''}`);
      if (!allowed && status === 403) expect(json.detail).toBe(`this needs the ${op.role} role; user:${IDP}#${sub} holds ${held ?? 'none'}`);
    }
    expect(wrong).toEqual([]);
  });

  it('refuses a subject token (the audience connectors hold) and a forged sign-in token (401)', async () => {
    expect((await call('GET', '/v1/admin/leases', await fx.idp.idToken({ groups: ['audit'] }, { subject: 'alex' }))).status).toBe(401);
    const forged = (await signIn('root', [])).replace(/\.[^.]+$/, '.AAAA');
    expect((await call('GET', '/v1/admin/leases', forged)).status).toBe(401);
  });
});

describe('what people do is audited as them', () => {
  it('names the operator who revoked, and the admin who bound a role', async () => {
    const olivia = await signIn('olivia', ['secops']);
    const revoked = await call('POST', '/v1/admin/revocations', olivia, { user: { issuer: IDP, subject: 'mallory' }, reason: 'left the company' });
    expect(revoked.status).toBe(200);
    const [event] = (await call('GET', '/v1/admin/audit?type=revocation&limit=1', olivia)).json.events;
    expect(event).toMatchObject({ type: 'revocation', actor: `user:${IDP}#olivia` });

    const root = await signIn('root', []);
    const bound = await call('POST', '/v1/admin/role-bindings', root, { role: 'auditor', issuer: IDP, group: 'helpdesk' });
    expect(bound.status).toBe(201);
    expect((await call('GET', '/v1/admin/leases', await signIn('hana', ['helpdesk']))).status).toBe(200);
    expect((await call('POST', '/v1/admin/role-bindings', olivia, { role: 'admin', issuer: IDP, subject: 'olivia' })).status).toBe(403);
    const listed = (await call('GET', '/v1/admin/role-bindings', root)).json.role_bindings;
    expect(listed.map((b: { created_by: string }) => b.created_by)).toEqual(['config', 'config', 'config', `user:${IDP}#root`]);
    expect((await call('DELETE', `/v1/admin/role-bindings/${bound.json.id}`, root)).status).toBe(204);
    expect((await call('GET', '/v1/admin/leases', await signIn('hana', ['helpdesk']))).status).toBe(403);
    expect((await call('DELETE', '/v1/admin/role-bindings/config-0', root)).status).toBe(409);
    const events = (await call('GET', '/v1/admin/audit?type=role_binding.*&limit=10', root)).json.events;
    expect(events.map((e: { type: string; actor: string }) => [e.type, e.actor])).toEqual([
      ['role_binding.deleted', `user:${IDP}#root`],
      ['role_binding.created', `user:${IDP}#root`],
    ]);
  });
});

describe('writ login', () => {
  it('keeps the sign-in token 0600 for this broker until it expires, admin commands use it, writ logout forgets it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-login-'));
    const env = { WRIT_SERVER: fx.broker.apiUrl, WRIT_CA: join(fx.config.caDir, 'ca.crt'), WRIT_SESSION_FILE: join(dir, 'writ', 'session.json'), WRIT_ADMIN_TOKEN: '' };
    try {
      writeFileSync(join(dir, 'alex.jwt'), await signIn('alex', ['audit']));
      const login = await writ(['login', '--id-token', join(dir, 'alex.jwt'), '-o', 'json'], env);
      expect([login.code, login.json()]).toEqual([0, expect.objectContaining({ user: 'alex', issuer: IDP })]);
      expect(statSync(env.WRIT_SESSION_FILE).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'writ')).mode & 0o777).toBe(0o700);
      expect((await writ(['leases', '-o', 'json'], env)).code).toBe(0); // an auditor reads
      const refused = await writ(['revoke', '--jti', randomUUID(), '--reason', 'x'], env);
      expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('this needs the operator role')]);
      expect((await writ(['logout'], env)).code).toBe(0);
      expect(existsSync(env.WRIT_SESSION_FILE)).toBe(false);
      expect((await writ(['leases'], env)).code).toBe(2); // no credential left
      // A token that is no sign-in token for this broker is not kept.
      writeFileSync(join(dir, 'subject.jwt'), await fx.idp.idToken());
      expect((await writ(['login', '--id-token', join(dir, 'subject.jwt')], env)).code).toBe(1);
      expect(existsSync(env.WRIT_SESSION_FILE)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the bootstrap admin token can be disabled', () => {
  it('refuses to start disabled when nobody else could administer Writ', async () => {
    const store = await createTestStore();
    try {
      await expect(startBroker(testConfig(store, { WRIT_TRUST_DOMAIN: 'roles.test', WRIT_ADMIN_TOKEN: 'a-bootstrap-token-of-some-length', WRIT_ADMIN_BOOTSTRAP_TOKEN: 'disabled' }))).rejects.toThrow(ConfigError);
    } finally {
      await store.drop();
    }
  });

  it('refuses the token once disabled, while people with the admin role administer', async () => {
    const store = await createTestStore();
    const providers = JSON.stringify([fx.idp.trusted]);
    const broker = await startBroker(testConfig(store, { WRIT_TRUST_DOMAIN: 'roles.test', WRIT_ADMIN_TOKEN: 'a-bootstrap-token-of-some-length', WRIT_ADMIN_BOOTSTRAP_TOKEN: 'disabled', WRIT_IDENTITY_PROVIDERS: providers, WRIT_ADMIN_AUDIENCE: CONSOLE, WRIT_ADMIN_ROLES: JSON.stringify(ROLES) }));
    try {
      const ca = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
      const at = (bearer: string) => httpsRequest(`${broker.apiUrl}/v1/admin/leases`, { ca, headers: { authorization: `Bearer ${bearer}` } });
      const refused = await at('a-bootstrap-token-of-some-length');
      expect([refused.status, JSON.parse(refused.body).detail]).toEqual([401, 'the bootstrap admin token is disabled (WRIT_ADMIN_BOOTSTRAP_TOKEN); sign in as yourself']);
      expect((await at(await signIn('root', []))).status).toBe(200);
    } finally {
      await broker.shutdown();
      await store.drop();
    }
  });
});
