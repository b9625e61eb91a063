import { InvalidClient, type OAuthCaller } from '../tokens';
import { oauthErrorHandler, oauthRouter } from './oauth';
import { serveApi, type ServedApi } from '../../test/support/api';

// The OAuth routes over fake services: the handlers only parse, call and answer, and the
// error handler maps what the services throw to RFC 6749 §5.2 bodies, recording the refusal.

const ADMIN_TOKEN = 'writ_admin_oauth_test';
const calls: { endpoint: string; caller: OAuthCaller; form: Record<string, unknown> }[] = [];
const refusals: { endpoint: string; error: string }[] = [];
let next: () => Promise<unknown> = async () => ({ active: false });
let api: ServedApi;
let base: string;

beforeAll(async () => {
  api = await serveApi({
    routers: [
      oauthRouter({
        issuer: 'https://writ.test',
        exchange: { exchange: async () => Promise.reject(new Error('not in this test')) },
        introspection: { introspect: async (caller, form) => (calls.push({ endpoint: 'introspect', caller, form }), next() as never) },
        revocation: { revoke: async (caller, form) => void (calls.push({ endpoint: 'revoke', caller, form }), await next()) },
        admin: { verify: (t: string) => t === ADMIN_TOKEN },
        trustDomain: 'writ.test',
      }),
    ],
    errorHandlers: [oauthErrorHandler({ refused: async (endpoint, error) => void refusals.push({ endpoint, error }) })],
  });
  base = api.base;
});
afterAll(() => api.close());
beforeEach(() => {
  calls.length = 0;
  refusals.length = 0;
  next = async () => ({ active: false });
});

const form = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });

describe('POST /oauth2/introspect (RFC 7662)', () => {
  it('hands the service the admin caller and the form, and answers its answer, never cached', async () => {
    next = async () => ({ active: true, token_type: 'Bearer', sub: 'alice' });
    const res = await form('/oauth2/introspect', 'token=abc', { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ active: true, token_type: 'Bearer', sub: 'alice' });
    expect(calls).toEqual([{ endpoint: 'introspect', caller: { admin: true }, form: { token: 'abc' } }]);
  });

  it('hands a caller without the admin credential over as an SVID caller (none over plain HTTP)', async () => {
    await form('/oauth2/introspect', 'token=abc', { authorization: 'Bearer wrong' });
    expect(calls[0]!.caller).toEqual({ admin: false, svid: undefined });
  });

  it('RFC 6749 §5.2: maps the service\'s invalid_client to 401 {error, error_description}, with WWW-Authenticate, and records it', async () => {
    next = async () => Promise.reject(new InvalidClient('introspection needs the resource\'s X.509-SVID or the admin token'));
    const res = await form('/oauth2/introspect', 'token=abc', { authorization: 'Bearer wrong' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(await res.json()).toEqual({ error: 'invalid_client', error_description: 'introspection needs the resource\'s X.509-SVID or the admin token' });
    expect(refusals).toEqual([{ endpoint: '/oauth2/introspect', error: 'invalid_client' }]);
  });
});

describe('POST /oauth2/revoke (RFC 7009)', () => {
  it('§2.2: answers 200 with no body once the service resolves', async () => {
    const res = await form('/oauth2/revoke', 'token=abc&token_type_hint=access_token', { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    expect(calls).toEqual([{ endpoint: 'revoke', caller: { admin: true }, form: { token: 'abc', token_type_hint: 'access_token' } }]);
  });

  it('answers 503 temporarily_unavailable when the service cannot answer (never a false 200), and records it', async () => {
    next = async () => Promise.reject(new Error('keys unavailable'));
    const res = await form('/oauth2/revoke', 'token=abc', { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(refusals).toEqual([{ endpoint: '/oauth2/revoke', error: 'temporarily_unavailable' }]);
  });
});

it('RFC 6749 §3.2: refuses a body that is not form-encoded before any service sees it', async () => {
  const res = await fetch(`${base}/oauth2/introspect`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"abc"}' });
  expect(res.status).toBe(400);
  expect(await res.json()).toMatchObject({ error: 'invalid_request' });
  expect(calls).toEqual([]);
  expect(refusals).toEqual([{ endpoint: '/oauth2/introspect', error: 'invalid_request' }]);
});
