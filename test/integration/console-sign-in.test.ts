/**
 * The console's sign-in (issue 19, part 2's foundation): Writ as a relying party of a real
 * OpenID Provider (writ dev's oidc-provider) with the authorization code flow and PKCE; the
 * session is a `__Host-` cookie (HttpOnly, Secure, SameSite=Strict) that the admin API takes,
 * with the role the person's bindings give and, for every change, the session's CSRF token.
 * Driven over HTTP as a browser would be (the pages and their browser tests come next).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID } from '../../src/dev/op';
import { CookieJar } from '../../src/dev/id-token';
import { testConfig } from '../support/config';
import { startDevOpProcess, type DevOpProcess } from '../support/dev-op-process';
import { freePort } from '../support/oidc-op';
import { createTestStore, type TestStore } from '../support/database';
import { httpsRequest } from '../support/https';


let op: DevOpProcess;
let store: TestStore;
let broker: Broker;
let issuer: string;
let ca: string;
/** How far the broker's clock runs ahead of the machine's. */
let ahead = 0;
const MIN = 60_000;

beforeAll(async () => {
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  op = await startDevOpProcess({ users: { sam: ['secops'], nina: ['eng'] }, consoleRedirectUris: [`${issuer}/console/callback`] });
  store = await createTestStore();
  broker = await startBroker(
    testConfig(store, {
      WRIT_TRUST_DOMAIN: 'console.test',
      WRIT_PORT: String(port),
      WRIT_ISSUER: issuer,
      WRIT_ADMIN_TOKEN: 'a-bootstrap-token-of-some-length',
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
      WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
      WRIT_ADMIN_ROLES: JSON.stringify([{ role: 'operator', issuer: op.issuer, group: 'secops' }]),
      WRIT_CONSOLE_IDLE_TIMEOUT: '10m',
    }),
    { clock: { now: () => new Date(Date.now() + ahead) } },
  );
  ca = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await broker?.shutdown();
  await op?.close();
  await store?.drop();
});

const atWrit = (path: string, init: { method?: string; cookie?: string; headers?: Record<string, string>; body?: string } = {}) =>
  httpsRequest(`${broker.apiUrl}${path}`, { ca, method: init.method ?? 'GET', headers: { ...(init.cookie && { cookie: init.cookie }), ...init.headers }, ...(init.body !== undefined && { body: init.body }) });

/** A browser signing `username` in: /console/login, the provider's pages, back to the callback; the callback's answer. */
async function signIn(username: string) {
  const start = await atWrit('/console/login');
  expect(start.status).toBe(302);
  const jar = new CookieJar();
  let url = String(start.headers.location);
  const authorize = new URL(url);
  expect(Object.fromEntries(authorize.searchParams)).toMatchObject({ client_id: DEV_CONSOLE_CLIENT_ID, response_type: 'code', redirect_uri: `${issuer}/console/callback`, code_challenge_method: 'S256' });
  const visit = async (target: string, form?: Record<string, string>) => {
    const res = await fetch(target, { redirect: 'manual', headers: { cookie: jar.header(), ...(form && { 'content-type': 'application/x-www-form-urlencoded' }) }, ...(form && { method: 'POST', body: new URLSearchParams(form).toString() }) });
    jar.store(res.headers.getSetCookie());
    return res;
  };
  for (let hops = 0; hops < 12 && !url.startsWith(`${issuer}/console/callback`); hops++) {
    let res = await visit(url);
    // The provider's login page: the person types their name.
    if (res.status === 200 && /\/interaction\/[A-Za-z0-9_-]+$/.test(new URL(url).pathname)) res = await visit(`${url}/login`, { username });
    const next = res.headers.get('location');
    if (!next) throw new Error(`${url} answered ${res.status} without a redirect: ${(await res.text()).slice(0, 300)}`);
    url = new URL(next, url).href;
  }
  const callback = new URL(url);
  return { callback, answer: await atWrit(`${callback.pathname}${callback.search}`) };
}

describe('signing in to the console', () => {
  it('signs a person in with the code flow and PKCE, sets a __Host- cookie the admin API takes with their role', async () => {
    const { answer } = await signIn('sam');
    expect(answer.status).toBe(302);
    const setCookie = String(answer.headers['set-cookie']);
    expect(setCookie).toMatch(/^__Host-writ-console=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+/);
    const cookie = setCookie.split(';')[0]!;
    const session = JSON.parse((await atWrit('/console/api/session', { cookie })).body);
    expect(session).toMatchObject({ user: 'sam', issuer: op.issuer, role: 'operator', csrf: expect.any(String) });

    expect((await atWrit('/v1/admin/leases', { cookie })).status).toBe(200);
    const revoke = { method: 'POST', cookie, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: { issuer: op.issuer, subject: 'mallory' }, reason: 'from the console' }) };
    const noCsrf = await atWrit('/v1/admin/revocations', revoke);
    expect([noCsrf.status, JSON.parse(noCsrf.body).detail]).toEqual([403, 'a change from the console carries its x-writ-csrf header']);
    expect((await atWrit('/v1/admin/revocations', { ...revoke, headers: { ...revoke.headers, 'x-writ-csrf': session.csrf } })).status).toBe(200);
    const audit = JSON.parse((await atWrit('/v1/admin/audit?type=revocation&limit=1', { cookie })).body).events[0];
    expect(audit.actor).toBe(`user:${op.issuer}#sam`);
    // An operator's session may not rotate the CA.
    expect((await atWrit('/v1/admin/ca/rotate', { method: 'POST', cookie, headers: { 'content-type': 'application/json', 'x-writ-csrf': session.csrf }, body: '{}' })).status).toBe(403);

    const out = await atWrit('/console/logout', { method: 'POST', cookie, headers: { 'x-writ-csrf': session.csrf } });
    expect(out.status).toBe(204);
    expect((await atWrit('/console/api/session', { cookie })).status).toBe(401);
    expect((await atWrit('/v1/admin/leases', { cookie })).status).toBe(401);
  });

  it('uses a login once, and a person without a role sees nothing', async () => {
    const { callback, answer } = await signIn('nina');
    expect(answer.status).toBe(302);
    const replay = await atWrit(`${callback.pathname}${callback.search}`);
    expect([replay.status, JSON.parse(replay.body).detail]).toEqual([400, 'state: no sign-in under way with this state (it expired, or was used)']);
    const cookie = String(answer.headers['set-cookie']).split(';')[0]!;
    expect(JSON.parse((await atWrit('/console/api/session', { cookie })).body)).not.toHaveProperty('role');
    expect((await atWrit('/v1/admin/leases', { cookie })).status).toBe(403);
  });

  it('keeps a session in use, and ends one left idle for WRIT_CONSOLE_IDLE_TIMEOUT', async () => {
    const { answer } = await signIn('sam');
    const cookie = String(answer.headers['set-cookie']).split(';')[0]!;
    const alive = async () => (await atWrit('/v1/admin/leases?task_id=00000000-0000-4000-8000-000000000000', { cookie })).status;
    try {
      // Used every 6 minutes, for half an hour: still signed in (each use moves the idle deadline).
      for (let i = 1; i <= 5; i++) {
        ahead = i * 6 * MIN;
        expect(await alive()).toBe(200);
      }
      // Then 10 minutes without a use: over, everywhere the cookie is taken.
      ahead += 10 * MIN;
      expect(await alive()).toBe(401);
      ahead -= 5 * MIN; // and it does not come back
      expect((await atWrit('/console/api/session', { cookie })).status).toBe(401);
    } finally {
      ahead = 0;
    }
  });

  it('serves its pages with a strict CSP: its own script and style only, no framing', async () => {
    const page = await atWrit('/console/');
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    expect(page.body).toContain('<script type="module" src="/console/app.js"></script>');
    expect(page.body).not.toMatch(/<script>|\son[a-z]+=/); // no inline script or handler
    expect((await atWrit('/console/app.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
  });
});
