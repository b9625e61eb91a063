/**
 * `writ dev`: its OpenID Provider (oidc-provider) serves discovery and an ES256 JWKS, the
 * authorization code flow with PKCE of `writ dev id-token` yields an ID token that Writ's
 * subject-token verification accepts with the user's groups and sid, the broker started beside
 * it trusts that provider, its SaaS is the token vault's provider "notes" end to end (the link
 * opened by `linkAccount`, the person's browser), and NODE_ENV=production is refused.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { systemClock } from '../../src/core/clock';
import { fetchIdToken, IdTokenFlowError } from '../../src/dev/id-token';
import { DevBrowserError, linkAccount } from '../../src/dev/link';
import type { OidcProviderClass } from '../../src/dev/op';
import { attestWithJoinToken } from '../support/attest';
import { httpsRequest } from '../support/https';
import { DevRefused, refuseProduction, startDev, type Dev } from '../../src/dev/start';
import { IdentityProviders, identityProvidersSchema } from '../../src/tokens/subject-token';

// oidc-provider is ESM-only: jest loads it with a native import (dist uses require(esm)).
// Its Node 20 notice is dropped as loadOidcProvider drops it.
const importProvider = async (): Promise<OidcProviderClass> => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    return ((await (0, eval)('import("oidc-provider")')) as { Provider: OidcProviderClass }).Provider;
  } finally {
    warn.mockRestore();
  }
};

let dir: string;
let dev: Dev;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-dev-'));
  dev = await startDev({ dir: join(dir, 'dev'), port: 0, opsPort: 0, opPort: 0, saasPort: 0, env: {}, logger: pino({ level: 'silent' }), Provider: await importProvider() });
});
afterAll(async () => {
  await dev?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the provider serves discovery naming itself and an ES256 JWKS of public keys only', async () => {
  const meta = (await (await fetch(`${dev.op.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  expect(meta.issuer).toBe(dev.op.issuer);
  expect(meta.id_token_signing_alg_values_supported).toEqual(['ES256']);
  expect(meta.code_challenge_methods_supported).toEqual(['S256']);
  expect(meta.claims_supported).toEqual(expect.arrayContaining(['groups', 'sid']));
  const jwks = (await (await fetch(meta.jwks_uri as string)).json()) as { keys: Record<string, unknown>[] };
  expect(jwks.keys.length).toBeGreaterThan(0);
  for (const key of jwks.keys) {
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(key).not.toHaveProperty('d');
    expect(typeof key.kid).toBe('string');
  }
});

test("id-token's code flow yields an ID token Writ's subject-token verification accepts, with groups and sid", async () => {
  const token = await fetchIdToken({ issuer: dev.op.issuer, username: 'bob' });
  const meta = (await (await fetch(`${dev.op.issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
  const idps = new IdentityProviders(identityProvidersSchema.parse([{ issuer: dev.op.issuer, jwks_uri: meta.jwks_uri, audience: 'writ-dev', algorithms: ['ES256'] }]), { clock: systemClock });
  const user = await idps.verify(token);
  expect(user).toMatchObject({ sub: 'bob', iss: dev.op.issuer, groups: ['eng', 'maintainers'] });
  expect(typeof user.sid).toBe('string');
  const carol = await idps.verify(await fetchIdToken({ issuer: dev.op.issuer, username: 'carol' }));
  expect(carol.groups).toEqual([]);
});

test('a user not in the users file gets no token', async () => {
  await expect(fetchIdToken({ issuer: dev.op.issuer, username: 'mallory' })).rejects.toThrow(new IdTokenFlowError('login failed: no user "mallory" in the users file'));
});

test('the broker beside it is ready, with its policy, CA and admin token in the dev directory', async () => {
  const ready = await fetch(`${dev.broker.opsUrl}/readyz`);
  expect(ready.status).toBe(200);
  expect(readFileSync(dev.files.policy, 'utf8')).toContain('maintainers-write-internal');
  expect(dev.exports.WRIT_CA).toBe(join(dir, 'dev', 'certs', 'ca.crt'));
  expect(dev.exports.WRIT_ADMIN_TOKEN).toBe(readFileSync(dev.files.adminToken, 'utf8').trim());
});

test('its SaaS is the vault\'s provider "notes": a task of alice links her account through the link and gets the SaaS\'s token, which its API takes as hers', async () => {
  const ca = readFileSync(dev.exports.WRIT_CA, 'utf8');
  const admin = async (path: string, method = 'GET', body?: unknown) => {
    const res = await httpsRequest(`${dev.exports.WRIT_SERVER}${path}`, { ca, method, headers: { authorization: `Bearer ${dev.exports.WRIT_ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
    return { status: res.status, json: res.body ? JSON.parse(res.body) : undefined };
  };
  expect((await admin('/v1/admin/providers/notes')).json).toMatchObject({ id: 'notes', issuer: dev.saas.issuer, scopes: ['notes:read', 'notes:write'], resource: dev.saas.api });
  expect(statSync(dev.files.saasClientSecret).mode & 0o777).toBe(0o600);
  const resource = 'https://mcp.example.com/dev-vault';
  expect((await admin('/v1/admin/resources', 'POST', { uri: resource, spiffe_id: 'spiffe://writ.local/mcp/dev-vault', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] })).status).toBe(201);
  const work = mkdtempSync(join(dir, 'agent-'));
  const agent = await attestWithJoinToken({ apiUrl: dev.exports.WRIT_SERVER, ca, admin: (p, m, b) => admin(p, m, b), spiffeId: 'spiffe://writ.local/agent/dev-vault', dir: work });
  const exchange = async (params: Record<string, string>) => {
    const res = await httpsRequest(`${dev.exports.WRIT_SERVER}/oauth2/token`, { ca, method: 'POST', cert: agent.cert, key: agent.key, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', ...params }).toString() });
    return { status: res.status, json: JSON.parse(res.body) };
  };
  const task = await exchange({ subject_token: await fetchIdToken({ issuer: dev.op.issuer, username: 'alice' }), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', resource, authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]) });
  expect(task.status).toBe(200);
  const release = () => exchange({ subject_token: task.json.access_token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'notes', scope: 'notes:write' });
  const first = await release();
  expect([first.status, first.json.error]).toEqual([400, 'interaction_required']);
  // bob cannot finish alice's link; alice can.
  await expect(linkAccount({ link: first.json.link_uri, username: 'bob', ca })).rejects.toThrow(new DevBrowserError('linking stopped at ' + new URL(first.json.link_uri).pathname + ' (HTTP 403): this link was made for another user'));
  await linkAccount({ link: first.json.link_uri, username: 'alice', ca });
  const released = await release();
  expect(released.status).toBe(200);
  const posted = await fetch(`${dev.saas.api}/notes`, { method: 'POST', headers: { authorization: `Bearer ${released.json.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hello from writ dev' }) });
  expect(posted.status).toBe(201);
  expect(dev.saas.notes.at(-1)).toMatchObject({ author: 'alice', text: 'hello from writ dev' });
  // The sample policy gives notes:write, not notes:read.
  expect((await exchange({ subject_token: task.json.access_token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'notes', scope: 'notes:read' })).json.error).toBe('access_denied');
});

test('NODE_ENV=production is refused before anything starts', async () => {
  expect(() => refuseProduction({ NODE_ENV: 'production' })).toThrow(DevRefused);
  expect(() => refuseProduction({ NODE_ENV: 'development' })).not.toThrow();
  await expect(startDev({ dir: join(dir, 'refused'), port: 0, opsPort: 0, opPort: 0, saasPort: 0, env: { NODE_ENV: 'Production' } })).rejects.toThrow(/NODE_ENV=production/);
  expect(() => readFileSync(join(dir, 'refused', 'users.yaml'))).toThrow();
});
