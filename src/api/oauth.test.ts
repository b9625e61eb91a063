import { InvalidClient, InvalidDpopProof, UseDpopNonce, type ExchangeRequestHeaders, type OAuthCaller } from '../tokens';
import { oauthErrorHandler, oauthRouter } from './oauth';
import { serveApi, type ServedApi } from '../../test/support/api';

// The OAuth routes over fake services: the handlers only parse, call and answer, and the
// error handler maps what the services throw to RFC 6749 §5.2 bodies, recording the refusal.

const ADMIN_TOKEN = 'writ_admin_oauth_test';
const calls: { endpoint: string; caller: OAuthCaller; form: Record<string, unknown> }[] = [];
const refusals: { endpoint: string; error: string }[] = [];
let next: () => Promise<unknown> = async () => ({ active: false });
const exchanges: ExchangeRequestHeaders[] = [];
let nextExchange: () => Promise<unknown> = async () => Promise.reject(new Error('not in this test'));
let api: ServedApi;
let base: string;

beforeAll(async () => {
  api = await serveApi({
    routers: [
      oauthRouter({
        issuer: 'https://writ.test',
        exchange: { exchange: async (_client, _form, headers) => (exchanges.push(headers ?? {}), nextExchange() as never) },
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
  exchanges.length = 0;
  nextExchange = async () => Promise.reject(new Error('not in this test'));
});

describe('POST /oauth2/token with DPoP (RFC 9449)', () => {
  it('hands the DPoP header to the exchange unparsed, and answers its response', async () => {
    nextExchange = async () => ({ access_token: 'at', token_type: 'DPoP' });
    const res = await form('/oauth2/token', 'grant_type=x', { dpop: 'a.b.c' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ access_token: 'at', token_type: 'DPoP' });
    expect(exchanges).toEqual([{ dpop: 'a.b.c' }]);
  });

  it('§8: answers use_dpop_nonce 400 with the nonce in DPoP-Nonce', async () => {
    nextExchange = async () => Promise.reject(new UseDpopNonce('n-123', 'the server requires a nonce in the DPoP proof (RFC 9449 §8)'));
    const res = await form('/oauth2/token', 'grant_type=x', { dpop: 'a.b.c' });
    expect(res.status).toBe(400);
    expect(res.headers.get('dpop-nonce')).toBe('n-123');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toMatchObject({ error: 'use_dpop_nonce' });
  });

  it('§5: answers invalid_dpop_proof 400, with no DPoP-Nonce', async () => {
    nextExchange = async () => Promise.reject(new InvalidDpopProof('the DPoP proof has been used before ("jti", RFC 9449 §11.1)'));
    const res = await form('/oauth2/token', 'grant_type=x');
    expect(res.status).toBe(400);
    expect(res.headers.get('dpop-nonce')).toBeNull();
    expect(await res.json()).toMatchObject({ error: 'invalid_dpop_proof' });
  });
});

describe('GET /.well-known/oauth-authorization-server (RFC 8414)', () => {
  it('announces DPoP (RFC 9449 §5.1) and JWT-SVID client authentication beside mTLS', async () => {
    const doc = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json();
    expect(doc.token_endpoint_auth_methods_supported).toEqual(['tls_client_auth', 'spiffe_jwt']);
    expect(doc.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'PS256']));
    expect(doc.dpop_signing_alg_values_supported).not.toContain('none');
    expect(doc.tls_client_certificate_bound_access_tokens).toBe(true);
  });
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
    expect(calls).toEqual([{ endpoint: 'introspect', caller: { admin: true, principal: 'admin' }, form: { token: 'abc' } }]);
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
    expect(calls).toEqual([{ endpoint: 'revoke', caller: { admin: true, principal: 'admin' }, form: { token: 'abc', token_type_hint: 'access_token' } }]);
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
