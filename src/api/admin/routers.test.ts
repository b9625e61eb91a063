import type { AdminCredentials } from '../../admin';
import { EntryError, type EntryStore, type RegistrationEntry } from '../../attestation/entries';
import type { JoinTokens } from '../../attestation/join-token';
import type { AuditReader } from '../../audit';
import { ManualClock } from '../../core/clock';
import type { LeaseStore, Revocations } from '../../leases';
import type { PolicyStore } from '../../policy';
import type { ResourceStore } from '../../resources';
import { adminRouter } from '.';
import { serveApi, type ServedApi } from '../../../test/support/api';

// The admin routers over fake domain services: what each route hands its service (only what
// the caller sent, and who the caller is), and how a domain error becomes problem+json (RFC 9457).

const TOKEN = 'writ_admin_router_test';
const ID = '8d3c1f0a-6b2e-4c7d-9e1f-0a2b3c4d5e6f';
const calls: unknown[][] = [];
const record = (name: string) => async (...args: unknown[]) => void calls.push([name, ...args]);
const entry: RegistrationEntry = {
  id: ID, spiffeId: 'spiffe://admin.test/a', selectors: ['join_token:x'], x509SvidTtl: 600, jwtSvidTtl: 300, dnsNames: [], admin: false, enabled: true, metadata: {}, createdAt: new Date(0), updatedAt: new Date(0),
};
let api: ServedApi;
let base: string;

beforeAll(async () => {
  api = await serveApi({
    routers: [
      adminRouter({
        admin: { verify: (t: string) => t === TOKEN } as unknown as AdminCredentials,
        roleBindings: { list: async () => [], create: async () => { throw new Error('not in this test'); }, delete: async () => undefined },
        entries: {
          update: async (...args: unknown[]) => (calls.push(['entries.update', ...args]), entry),
          delete: async (id: string) => {
            throw new EntryError(404, 'entry-not-found', `no registration entry ${id}`);
          },
          requireConnector: record('entries.requireConnector'),
        } as unknown as EntryStore,
        leases: {} as LeaseStore,
        clock: new ManualClock(),
        trustDomain: 'admin.test',
        joinTokens: { issue: async (...args: unknown[]) => (calls.push(['joinTokens.issue', ...args]), { token: 'writ_jt_x', expiresAt: new Date(0), entry }) } as unknown as JoinTokens,
        limits: { trustDomain: 'admin.test', x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 },
        resources: {} as ResourceStore,
        policies: {} as PolicyStore,
        revocations: {
          find: async (...args: unknown[]) => (calls.push(['revocations.find', ...args]), []),
          disableConnector: async (...args: unknown[]) => (calls.push(['revocations.disableConnector', ...args]), { entries: 1, leases: 2 }),
        } as unknown as Revocations,
        auditReader: {} as AuditReader,
        rotateCa: async (overlap, actor) => (calls.push(['rotateCa', overlap, actor]), { x509Authority: 'x', jwtAuthority: 'j', activatesAt: new Date(0), spiffeSequence: 7 }),
      }),
    ],
  });
  base = api.base;
});
afterAll(() => api.close());
beforeEach(() => void (calls.length = 0));

const send = async (method: string, path: string, body?: unknown, auth = `Bearer ${TOKEN}`) => {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: auth, ...(body !== undefined && { 'content-type': 'application/json' }) }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), json: text ? JSON.parse(text) : undefined };
};

describe('the admin check', () => {
  it('RFC 6750 §3: a wrong bearer token is 401 problem+json before any route runs', async () => {
    const res = await send('GET', '/v1/admin/leases', undefined, 'Bearer nope');
    expect(res).toMatchObject({ status: 401, type: expect.stringContaining('application/problem+json'), json: { type: 'urn:writ:problem:unauthenticated', status: 401 } });
    expect(calls).toEqual([]);
  });
});

describe('entries', () => {
  it('PATCH hands the store only the fields the caller sent (no schema defaults), and who sent them', async () => {
    const res = await send('PATCH', `/v1/admin/entries/${ID}`, { enabled: false });
    expect(res.status).toBe(200);
    expect(calls).toEqual([['entries.update', ID, { enabled: false }, 'admin']]);
  });

  it('RFC 9457: a domain error becomes problem+json with its type, status and detail', async () => {
    const res = await send('DELETE', `/v1/admin/entries/${ID}`);
    expect(res).toMatchObject({ status: 404, type: expect.stringContaining('application/problem+json'), json: { type: 'urn:writ:problem:entry-not-found', status: 404, detail: `no registration entry ${ID}` } });
  });
});

describe('join tokens', () => {
  it('names the entry by SPIFFE ID for the attestation domain to resolve; the token is never cached', async () => {
    const res = await fetch(`${base}/v1/admin/join-tokens`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ spiffe_id: entry.spiffeId, ttl: 60 }) });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ token: 'writ_jt_x', expires_at: new Date(0).toISOString(), entry_id: ID, spiffe_id: entry.spiffeId });
    expect(calls).toEqual([['joinTokens.issue', { spiffeId: entry.spiffeId }, 60, 'admin']]);
  });
});

describe('leases', () => {
  it('refuses a partial filter (a subject without its issuer) with 400 invalid-request, before the store', async () => {
    const res = await send('GET', '/v1/admin/leases?subject=alice');
    expect(res.json).toMatchObject({ type: 'urn:writ:problem:invalid-request', status: 400, detail: 'filter by one of: jti; task_id; issuer+sid; issuer+subject (+connector); connector; audience' });
    expect(calls).toEqual([]);
  });

  it('hands the store the selector the filters name, the status and the page', async () => {
    await send('GET', '/v1/admin/leases?issuer=https://idp.test&subject=alice&connector=spiffe://admin.test/c&status=active&limit=5');
    expect(calls).toEqual([['revocations.find', { user: { issuer: 'https://idp.test', subject: 'alice' }, connector: 'spiffe://admin.test/c' }, 'active', { limit: 5 }]]);
  });
});

describe('connectors and the CA', () => {
  it('the kill switch checks the connector exists, then disables it with the reason and who asked', async () => {
    const id = encodeURIComponent('spiffe://admin.test/c');
    const res = await send('POST', `/v1/admin/connectors/${id}/disable`, { reason: 'compromised' });
    expect(res.json).toEqual({ spiffe_id: 'spiffe://admin.test/c', entries_disabled: 1, leases_revoked: 2 });
    expect(calls).toEqual([['entries.requireConnector', 'spiffe://admin.test/c'], ['revocations.disableConnector', 'spiffe://admin.test/c', 'compromised', 'admin']]);
  });

  it('a CA rotation is requested with the overlap and who asked, answered 202', async () => {
    const res = await send('POST', '/v1/admin/ca/rotate', { overlap: 60 });
    expect(res).toMatchObject({ status: 202, json: { x509_authority: 'x', jwt_authority: 'j', activates_at: new Date(0).toISOString(), spiffe_sequence: 7 } });
    expect(calls).toEqual([['rotateCa', 60, 'admin']]);
  });
});
