import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { attestWithJoinToken, type PemSvid } from '../support/attest';
import { openssl } from '../support/openssl';
import { assertDocumentedResponse } from '../support/openapi';

// Hostile input, as an outside attack run sends it: every answer is a 2xx or a 4xx naming the
// field, never a 5xx, and the broker keeps serving. The examples first (each a reproduction of
// a finding), then properties: fast-check bodies, query strings, form bodies and paths on every route.

const work = mkdtempSync(join(tmpdir(), 'writ-hostile-'));
const TD = 'hostile.test';
const IDP = 'https://idp.hostile.test';
const TX = 'https://ssf.hostile.test';
const OIDC = 'https://k8s.hostile.test';
const MCP = 'https://mcp.hostile.test/files';
/** A resource the properties may change at will. */
const FUZZ_MCP = 'https://mcp.hostile.test/fz';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
/** Runs per HTTP-level property; FC_RUNS raises it. */
const RUNS = Number(process.env.FC_RUNS ?? 120);

let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;
let key: CryptoKey;
let agent: PemSvid;
let entryId: string;
let anonAgent: Agent;
let mtlsAgent: Agent;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

type Caller = 'anon' | 'admin' | 'agent';

/** One request over a kept-alive TLS connection; `chunked` sends the body in pieces with Transfer-Encoding: chunked. */
function call(method: string, path: string, opts: { as?: Caller; type?: string; body?: string | Buffer; chunked?: boolean; headers?: Record<string, string> } = {}): Promise<Answer> {
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  const headers: Record<string, string> = {
    ...(opts.type !== undefined && { 'content-type': opts.type }),
    ...(opts.as === 'admin' && { authorization: `Bearer ${adminToken}` }),
    ...(body && (opts.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) })),
    ...opts.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request(`${broker.apiUrl}${path}`, { method, headers, agent: opts.as === 'agent' ? mtlsAgent : anonAgent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        // Hostile input gets documented answers too (docs/openapi.json), whatever it sent.
        try {
          assertDocumentedResponse(method, path, res.statusCode!, res.headers['content-type'], text);
        } catch (err) {
          return reject(err);
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    if (body && opts.chunked) {
      for (let at = 0; at < body.length; at += 16 * 1024) req.write(body.subarray(at, at + 16 * 1024));
      req.end();
    } else req.end(body);
  });
}

const json = (method: string, path: string, value: unknown, as: Caller = 'admin') => call(method, path, { as, type: 'application/json', body: JSON.stringify(value) });
const form = (path: string, params: Record<string, string>, as: Caller = 'agent') => call('POST', path, { as, type: 'application/x-www-form-urlencoded', body: new URLSearchParams(params).toString() });

const idToken = (claims: Record<string, unknown> = {}) =>
  new SignJWT({ sid: 'session-1', groups: ['eng'], ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer((claims.iss as string) ?? IDP).setAudience('writ').setSubject((claims.sub as string) ?? 'alice').setIssuedAt().setExpirationTime('10m').sign(key);

const exchangeForm = async (over: Record<string, string> = {}) => ({
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: await idToken(),
  subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
  resource: MCP,
  authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['read_file'], actions: ['read'] }]),
  ...over,
});

const set = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'k1' }).setIssuer(TX).setAudience('https://writ.hostile.test').setIssuedAt().setJti((claims.jti as string) ?? randomUUID()).sign(key);

function csr(name: string, keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']): string {
  openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: work });
  return readFileSync(join(work, `${name}.csr`), 'utf8');
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  key = pair.privateKey as CryptoKey;
  writeFileSync(join(work, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'writ.cedar'), '@id("read")\npermit (principal, action == Writ::Action::"read", resource is Writ::Tool);\n');
  const jwks = join(work, 'jwks.json');
  store = await createTestStore();
  const config = testConfig(store, {
    WRIT_TRUST_DOMAIN: TD,
    WRIT_POLICY_FILE: join(work, 'writ.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: jwks, audience: 'writ', algorithms: ['ES256'] }]),
    WRIT_SIGNAL_TRANSMITTERS: JSON.stringify([{ issuer: TX, jwks_file: jwks, audience: 'https://writ.hostile.test', algorithms: ['ES256'], subject_issuers: [IDP] }]),
    WRIT_OIDC_ISSUERS: JSON.stringify([{ issuer: OIDC, jwks_file: jwks, audience: 'writ', algorithms: ['ES256'], claims: ['namespace'] }]),
  });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
  anonAgent = new Agent({ ca: caPem, keepAlive: true, maxSockets: 4 });
  const adminCall = async (path: string, method: string, body?: unknown) => {
    const r = await json(method, path, body);
    return { status: r.status, json: r.json };
  };
  await adminCall('/v1/admin/resources', 'POST', { uri: MCP, spiffe_id: `spiffe://${TD}/mcp/files`, tools: [{ name: 'read_file', actions: ['read'], classification: 'internal' }] });
  await adminCall('/v1/admin/resources', 'POST', { uri: FUZZ_MCP, spiffe_id: `spiffe://${TD}/mcp/fz`, tools: [{ name: 't', actions: ['read'], classification: 'internal' }] });
  agent = await attestWithJoinToken({ apiUrl: broker.apiUrl, ca: caPem, admin: adminCall, spiffeId: `spiffe://${TD}/agent`, dir: work });
  mtlsAgent = new Agent({ ca: caPem, cert: agent.cert, key: agent.key, keepAlive: true, maxSockets: 4 });
  entryId = (await adminCall('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/fuzz/target` })).json.id;
  await adminCall('/v1/admin/entries', 'POST', { spiffe_id: `spiffe://${TD}/k8s/app`, selectors: [`oidc:iss:${OIDC}`, 'oidc:sub:app'] });
});

afterAll(async () => {
  anonAgent?.destroy();
  mtlsAgent?.destroy();
  await broker?.shutdown();
  await store?.drop();
  rmSync(work, { recursive: true, force: true });
});

const invalidRequest = (detail: string | RegExp) =>
  expect.objectContaining({ type: 'urn:writ:problem:invalid-request', status: 400, detail: typeof detail === 'string' ? detail : expect.stringMatching(detail) });

describe('control characters: a 400 naming the field, never a 500 from the database', () => {
  it('a NUL in a form value at /oauth2/token is invalid_request naming the parameter (RFC 6749 §5.2)', async () => {
    const res = await form('/oauth2/token', await exchangeForm({ resource: `${MCP}\u0000` }));
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ error: 'invalid_request', error_description: 'resource: contains a control character' });
  });

  it.each([
    ['sub', { sub: 'ali\u0000ce' }],
    ['sid', { sid: 'session\u0000' }],
    ['email', { email: 'alice\u0000@example.com' }],
    ['groups', { groups: ['eng', 'ops\u0000'] }],
  ])('a NUL in the ID token\'s %s claim refuses the subject token with a 400 naming the claim', async (claim, claims) => {
    const res = await form('/oauth2/token', await exchangeForm({ subject_token: await idToken(claims) }));
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
    expect(res.json.error_description).toContain(`'${claim}' claim contains a control character`); // RFC 6749 §5.2: no '"' in error_description
  });

  it('a NUL in the ID token\'s iss is not a configured issuer (400, not 503)', async () => {
    const res = await form('/oauth2/token', await exchangeForm({ subject_token: await idToken({ iss: `${IDP}\u0000` }) }));
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
  });

  it('a NUL in a JWT-SVID audience is a 400 naming audience.0', async () => {
    const res = await json('POST', '/v1/jwt-svid', { audience: ['spiffe://hostile.test/x\u0000'] }, 'agent');
    expect(res.status).toBe(400);
    expect(res.json).toEqual(invalidRequest('audience.0: contains a control character'));
  });

  it('NUL in admin bodies: join-tokens spiffe_id, entries metadata.owner; a control character in a member name', async () => {
    expect((await json('POST', '/v1/admin/join-tokens', { spiffe_id: `spiffe://${TD}/a\u0000` })).json).toEqual(invalidRequest('spiffe_id: contains a control character'));
    expect((await json('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}/ok`, metadata: { owner: 'a\u0000' } })).json).toEqual(invalidRequest('metadata.owner: contains a control character'));
    expect((await json('POST', '/v1/admin/entries', { 'spiffe\u0001id': `spiffe://${TD}/ok` })).json).toEqual(invalidRequest('spiffe?id: its name contains a control character'));
    const unpaired = await call('POST', '/v1/admin/entries', { as: 'admin', type: 'application/json', body: `{"spiffe_id":"spiffe://${TD}/ok","metadata":{"owner":"\\ud800"}}` });
    expect(unpaired.json).toEqual(invalidRequest(/^metadata\.owner: contains an unpaired UTF-16 surrogate/));
  });

  it('keeps tabs and line breaks in body text (policy text, PEM)', async () => {
    const res = await json('PUT', '/v1/admin/policies', { policies: '@id("read")\r\n\tpermit (principal, action == Writ::Action::"read", resource is Writ::Tool);\n' });
    expect(res.status).toBe(200);
  });

  it('NUL and other control characters in query strings: /v1/admin/leases, /v1/admin/audit, a parameter name', async () => {
    expect((await call('GET', `/v1/admin/leases?connector=spiffe://${TD}/a%00`, { as: 'admin' })).json).toEqual(invalidRequest('connector: contains a control character'));
    expect((await call('GET', '/v1/admin/audit?subject=a%00', { as: 'admin' })).json).toEqual(invalidRequest('subject: contains a control character'));
    expect((await call('GET', '/v1/admin/audit?subject=a%1b%5b2J', { as: 'admin' })).json).toEqual(invalidRequest('subject: contains a control character'));
    expect((await call('GET', '/v1/admin/audit?sub%7fject=a', { as: 'admin' })).json).toEqual(invalidRequest('sub?ject: its name contains a control character'));
  });

  it('NUL in a path segment, and a path that is not percent-encoded UTF-8', async () => {
    expect((await call('GET', '/v1/admin/resources/https%3A%2F%2Fa%00', { as: 'admin' })).json).toEqual(invalidRequest('the path contains a control character'));
    expect((await call('POST', `/v1/admin/connectors/${encodeURIComponent(`spiffe://${TD}/a`)}%00/disable`, { as: 'admin' })).status).toBe(400);
    expect((await call('GET', '/v1/admin/entries/%E0%A4%A', { as: 'admin' })).json).toEqual(invalidRequest(/not valid percent-encoded UTF-8/));
  });

  it('a NUL in a SET\'s subject, or a control character in its jti, is RFC 8935 invalid_request', async () => {
    const bad = await set({ events: { [`${CAEP}session-revoked`]: { subject: { format: 'iss_sub', iss: IDP, sub: 'alice\u0000' } } } });
    const res = await call('POST', '/v1/signals', { type: 'application/secevent+jwt', body: bad });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ err: 'invalid_request', description: expect.stringContaining('"sub" in the event\'s "subject" contains a control character') });
    const jti = await call('POST', '/v1/signals', { type: 'application/secevent+jwt', body: await set({ jti: 'j\u0001', events: { [`${CAEP}session-revoked`]: {} } }) });
    expect(jti.json).toEqual({ err: 'invalid_request', description: expect.stringContaining('"jti" claim contains a control character') });
  });

  it('a NUL in an oidc attestation token\'s sub or selector claim is invalid-evidence', async () => {
    const token = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(OIDC).setAudience('writ').setIssuedAt().setExpirationTime('5m').sign(key);
    const sub = await json('POST', '/v1/attest', { attestor: 'oidc', evidence: { token: await token({ sub: 'app\u0000' }) }, csr: csr('oidc1') }, 'anon');
    expect(sub.status).toBe(400);
    expect(sub.json).toMatchObject({ type: 'urn:writ:problem:invalid-evidence', detail: expect.stringContaining('"sub" claim contains a control character') });
    const claim = await json('POST', '/v1/attest', { attestor: 'oidc', evidence: { token: await token({ sub: 'app', namespace: 'n\u0000' }) }, csr: csr('oidc2') }, 'anon');
    expect(claim.status).toBe(400);
    expect(claim.json.detail).toContain('"namespace" claim contains a control character');
  });
});

describe('TLS session resumption', () => {
  it('an anonymous client that resumes its TLS session is no mTLS client (Node then reports authorized, with no certificate)', async () => {
    const resuming = new Agent({ ca: caPem, keepAlive: false, maxCachedSessions: 10 });
    const viaResumed = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = request(`${broker.apiUrl}${path}`, { method, agent: resuming, headers: body ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length) } : {} }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, reused: (res.socket as import('node:tls').TLSSocket).isSessionReused() }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      expect((await viaResumed('GET', '/v1/bundle')).reused).toBe(false);
      const answers = [await viaResumed('POST', '/v1/jwt-svid'), await viaResumed('POST', '/oauth2/revoke', 'token=x'), await viaResumed('POST', '/oauth2/token', 'grant_type=x')];
      expect(answers.some((a) => a.reused)).toBe(true);
      expect(answers.map((a) => a.status)).toEqual([401, 401, 401]);
    } finally {
      resuming.destroy();
    }
  });
});

describe('RSA keys: the public exponent must be 65537', () => {
  it('refuses an RSA-2048 CSR with exponent 3 (openssl genpkey rsa_keygen_pubexp:3)', async () => {
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', 'e3.key'], { cwd: work });
    openssl(['req', '-new', '-key', 'e3.key', '-out', 'e3.csr', '-subj', '/CN=x'], { cwd: work });
    const token = await json('POST', '/v1/admin/join-tokens', { entry_id: entryId });
    const res = await json('POST', '/v1/attest', { attestor: 'join_token', evidence: { token: token.json.token }, csr: readFileSync(join(work, 'e3.csr'), 'utf8') }, 'anon');
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ type: 'urn:writ:problem:key-too-weak', detail: 'RSA public exponent 3 is not allowed; use 65537' });
  });
});

describe('the broker\'s own SPIFFE ID namespace (/writ) is reserved', () => {
  it.each(['/writ/server', '/writ', '/writ/other'])('refuses an entry whose path is %s, naming spiffe_id', async (path) => {
    const res = await json('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}${path}`, dns_names: ['localhost'] });
    expect(res.status).toBe(400);
    expect(res.json).toEqual(invalidRequest(/^spiffe_id: .*reserved for the broker/));
  });

  it('refuses an update to a reserved ID, and allows paths that only look alike', async () => {
    expect((await json('PATCH', `/v1/admin/entries/${entryId}`, { spiffe_id: `spiffe://${TD}/writ/server` })).json).toEqual(invalidRequest(/^spiffe_id: .*reserved/));
    expect((await json('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}/writer/server` })).status).toBe(201);
    expect((await json('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}/team/writ/server` })).status).toBe(201);
  });
});

describe('policy text nested beyond what Cedar survives', () => {
  it('is refused with 400 invalid-policy, and token exchanges still get decisions', async () => {
    const deep = `permit (principal, action, resource) when { ${'('.repeat(200)}true${')'.repeat(200)} };`;
    const res = await json('PUT', '/v1/admin/policies', { policies: deep });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ type: 'urn:writ:problem:invalid-policy', errors: [expect.stringMatching(/nested more than 24 levels deep/)] });
    const chain = await json('PUT', '/v1/admin/policies', { policies: `permit (principal, action, resource) when { ${Array(1000).fill('1').join(' + ')} == 1 };` });
    expect(chain.json.errors).toEqual([expect.stringMatching(/more than 128 operators/)]);
    const exchanged = await form('/oauth2/token', await exchangeForm({ subject_token: await idToken({ sub: 'carol' }) }));
    expect(exchanged.json).toMatchObject({ token_type: 'Bearer' });
  });
});

describe('bodies over the cap: 413 on every route, for every content type, chunked or not', () => {
  const routes: [string, string, Caller][] = [
    ['POST', '/v1/admin/entries', 'admin'],
    ['POST', '/v1/attest', 'anon'],
    ['POST', '/v1/jwt-svid', 'agent'],
    ['POST', '/oauth2/token', 'agent'],
    ['POST', '/oauth2/introspect', 'admin'],
    ['POST', '/v1/signals', 'anon'],
    ['POST', `/v1/tasks/${randomUUID()}/end`, 'agent'],
    ['GET', '/v1/bundle', 'anon'],
    ['POST', '/v1/nothing-here', 'anon'],
  ];
  const types = ['application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream', 'application/secevent+jwt', undefined];
  const big = 'a'.repeat(70_000);

  it.each(routes)('%s %s', async (method, path, as) => {
    for (const type of types) {
      for (const chunked of [false, true]) {
        const res = await call(method, path, { as, type, body: big, chunked });
        expect({ type, chunked, status: res.status }).toEqual({ type, chunked, status: 413 });
      }
    }
  });

  it('answers 413 in each protocol\'s shape: problem+json, RFC 6749 §5.2, RFC 8935 §2.4', async () => {
    expect((await call('POST', '/v1/admin/entries', { as: 'admin', type: 'text/plain', body: big, chunked: true })).json).toMatchObject({ type: 'urn:writ:problem:body-too-large', status: 413 });
    expect((await call('POST', '/oauth2/token', { as: 'agent', type: 'application/octet-stream', body: big })).json).toEqual({ error: 'invalid_request', error_description: 'the request body is too large' });
    expect((await call('POST', '/v1/signals', { type: 'application/secevent+jwt', body: big, chunked: true })).json).toMatchObject({ err: 'invalid_request' });
  });

  it('a form body with more than 1000 parameters (under the cap) is 413 too, not a 500', async () => {
    const many = Array.from({ length: 1001 }, (_, i) => `p${i}=1`).join('&');
    expect((await call('POST', '/v1/admin/entries', { as: 'admin', type: 'application/x-www-form-urlencoded', body: many })).json).toMatchObject({ status: 413, type: 'urn:writ:problem:body-too-large', detail: 'request body has too many parameters' });
    expect((await call('POST', '/oauth2/token', { as: 'agent', type: 'application/x-www-form-urlencoded', body: many })).status).toBe(413);
  });

  it('still takes a body just under the cap, and no body at all', async () => {
    expect((await json('POST', '/v1/admin/entries', { spiffe_id: `spiffe://${TD}/big`, metadata: { description: 'd'.repeat(2000) } })).status).toBe(201);
    expect((await call('POST', `/v1/admin/connectors/${encodeURIComponent(`spiffe://${TD}/big`)}/disable`, { as: 'admin' })).status).toBe(200);
    expect((await call('POST', `/v1/admin/connectors/${encodeURIComponent(`spiffe://${TD}/big`)}/enable`, { as: 'admin', body: '' })).status).toBe(200);
  });
});

describe('a refused body names the field', () => {
  it('a revocation selector (a union) names the branch\'s field, not just "Invalid input"', async () => {
    const res = await json('POST', '/v1/admin/revocations', { reason: 'r', user: { issuer: IDP } });
    expect(res.json).toEqual(invalidRequest(/^user\.subject: /));
    const none = await json('POST', '/v1/admin/revocations', { reason: 'r', nothing: 1 });
    expect(none.json).toEqual(invalidRequest(/^matches none of the accepted forms: \{jti\} \| \{task_id\} \| \{user\}/));
    const text = await call('POST', '/v1/admin/revocations', { as: 'admin', type: 'text/plain', body: 'revoke everything' });
    expect(text.status).toBe(400);
  });
});

// ---------------------------------------------------------------------------------------
// Properties: whatever is sent, the answer is 2xx or 4xx, and the broker keeps serving.
// ---------------------------------------------------------------------------------------

/** Strings an attacker sends: any code points, control characters, unpaired surrogates, escapes and separators. */
const nasty = fc.constantFrom('\u0000', '\u0001', '\u001b', '\u007f', '\n', '\r', '\t', '\ud800', '\udfff', '%00', '%', '..', '/', '\\', '"', "'", '{', '[', '&', '=', '+', ';', ':', '\u202e', '\ufeff', '💥');
const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.oneof(nasty, fc.string({ maxLength: 6 })), { maxLength: 12 }).map((parts) => parts.join('')),
  fc.constantFrom('spiffe://hostile.test/', `spiffe://${TD}/agent`, `spiffe://${TD}/writ/server`, 'spiffe://hostile.test/a%00', MCP, IDP, randomUUID(), '', ' ', '1e999', '-0', 'true', 'null'),
  fc.string({ minLength: 1000, maxLength: 3000 }),
);
const hostileNumber = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, 1, 600, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 31, 2 ** 53));
/** JSON-like values, with the field names the routes use so that values reach the deep checks. */
const fieldName = fc.oneof(
  fc.constantFrom('spiffe_id', 'selectors', 'dns_names', 'metadata', 'owner', 'tools', 'ttl', 'entry_id', 'audience', 'reason', 'dry_run', 'jti', 'task_id', 'user', 'session', 'connector', 'email', 'issuer', 'subject', 'sid', 'uri', 'name', 'actions', 'classification', 'policies', 'attestor', 'evidence', 'token', 'csr', 'overlap', '__proto__', 'constructor'),
  hostileString,
);
const { value: hostileJson } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    hostileString,
    hostileNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fieldName, tie('value'), { maxKeys: 6 }),
  ),
}));
/** Objects shaped like each route's body, with hostile values in their fields. */
const bodyLike = fc.dictionary(fieldName, hostileJson, { maxKeys: 6 });
/** Body text no JSON serializer writes: deep nesting, duplicate keys, huge numbers, NUL bytes, truncation. */
const rawJsonText = fc.oneof(
  fc.integer({ min: 1, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 1, max: 10_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  fc.tuple(hostileString, hostileString).map(([a, b]) => `{"spiffe_id":${JSON.stringify(a)},"spiffe_id":${JSON.stringify(b)},"reason":"x","reason":1}`),
  fc.constantFrom('{"ttl":1e999}', '{"ttl":123456789012345678901234567890}', '{"audience":[1e400]}', '{"limit":-0}', '{"a":"\u0000"}', '{"a":"\\u0000"}', '{"\\u0000":1}', '{', '[]', 'null', '"x"', '1', '\u0000'),
  fc.string({ unit: 'binary', maxLength: 200 }),
);
const jsonRoutes: [string, string, Caller][] = [
  ['POST', '/v1/admin/entries', 'admin'],
  ['PATCH', '/v1/admin/entries/ENTRY', 'admin'],
  ['POST', '/v1/admin/join-tokens', 'admin'],
  ['POST', '/v1/admin/revocations', 'admin'],
  ['POST', '/v1/admin/resources', 'admin'],
  ['PATCH', `/v1/admin/resources/${encodeURIComponent(FUZZ_MCP)}`, 'admin'], // not MCP: a valid patch would change the tools the exchanges ask for
  ['POST', '/v1/admin/connectors/spiffe%3A%2F%2Fhostile.test%2Ffuzz%2Ftarget/disable', 'admin'],
  ['POST', '/v1/attest', 'anon'],
  ['POST', '/v1/svid/renew', 'agent'],
  ['POST', '/v1/jwt-svid', 'agent'],
  ['POST', `/v1/tasks/${randomUUID()}/end`, 'agent'],
  ['POST', '/v1/signals', 'anon'],
  ['POST', '/oauth2/token', 'agent'],
];
const resolve = (path: string) => path.replace('ENTRY', entryId);

/** Valid bodies of each JSON route, to be mutated: so that hostile values get past the first check and reach the domain. */
const templates = (): [string, string, Caller, Record<string, unknown>][] => [
  ['POST', '/v1/admin/entries', 'admin', { spiffe_id: `spiffe://${TD}/fz/a`, selectors: [`oidc:iss:${OIDC}`, 'oidc:sub:x'], dns_names: ['a.example'], x509_svid_ttl: 600, metadata: { owner: 'o', description: 'd', mcp_server_uri: 'https://x.example', tools: ['t'] } }],
  ['PATCH', `/v1/admin/entries/${entryId}`, 'admin', { metadata: { owner: 'o', tools: ['t'] }, selectors: ['join_token:x'], dns_names: ['b.example'] }],
  ['POST', '/v1/admin/join-tokens', 'admin', { spiffe_id: `spiffe://${TD}/fuzz/target`, ttl: 60 }],
  ['POST', '/v1/admin/join-tokens', 'admin', { entry_id: entryId, ttl: 60 }],
  ['POST', '/v1/admin/revocations', 'admin', { reason: 'r', dry_run: true, user: { issuer: IDP, subject: 'alice' } }],
  ['POST', '/v1/admin/revocations', 'admin', { reason: 'r', dry_run: true, session: { issuer: IDP, sid: 's' } }],
  ['POST', '/v1/admin/revocations', 'admin', { reason: 'r', email: { issuer: IDP, email: 'a@example.com' } }],
  ['POST', '/v1/admin/revocations', 'admin', { reason: 'r', audience: 'https://nothing.example' }],
  ['POST', '/v1/admin/resources', 'admin', { uri: 'https://mcp.hostile.test/fz2', spiffe_id: `spiffe://${TD}/mcp/fz`, tools: [{ name: 't', actions: ['read'], classification: 'internal' }] }],
  ['PATCH', `/v1/admin/resources/${encodeURIComponent(FUZZ_MCP)}`, 'admin', { spiffe_id: `spiffe://${TD}/mcp/fz`, tools: [{ name: 't', actions: ['read'], classification: 'internal' }] }],
  ['POST', `/v1/admin/connectors/${encodeURIComponent(`spiffe://${TD}/fuzz/target`)}/enable`, 'admin', { reason: 'x' }],
  ['POST', '/v1/attest', 'anon', { attestor: 'join_token', evidence: { token: 'writ_jt_x' }, csr: 'CSR' }],
  ['POST', '/v1/attest', 'anon', { attestor: 'oidc', evidence: { token: 'a.b.c' }, csr: 'CSR' }],
  ['POST', '/v1/svid/renew', 'agent', { csr: 'CSR' }],
  ['POST', '/v1/jwt-svid', 'agent', { audience: ['spiffe://hostile.test/x', 'https://aud.example'] }],
];
/** Every path to a leaf (or a whole member) of a JSON value. */
function pathsOf(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== 'object' || value === null) return [at];
  const inner = Array.isArray(value) ? value.flatMap((v, i) => pathsOf(v, [...at, i])) : Object.entries(value).flatMap(([k, v]) => pathsOf(v, [...at, k]));
  return at.length === 0 ? inner : [at, ...inner];
}
/** `value` with the member at `path` replaced (or, for `delete`, removed). */
function withAt(value: unknown, path: (string | number)[], replacement: unknown, remove: boolean): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  // A named member added to an array (such as "length") makes it an object with that member, as JSON could send it.
  const copy: any = Array.isArray(value) && typeof head === 'number' ? [...value] : { ...(value as object) }; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (remove && rest.length === 0) delete copy[head];
  else copy[head] = withAt(copy[head], rest, replacement, remove);
  return copy;
}
const contentType = fc.constantFrom('application/json', 'application/merge-patch+json', 'application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream', 'application/secevent+jwt', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x', undefined);

/** 2xx or 4xx, with a body that names the problem when refused. */
function expectAnswered(res: Answer, what: string): void {
  if (res.status >= 500) throw new Error(`${what} → ${res.status} ${res.body.slice(0, 300)}`);
  expect(res.status).toBeGreaterThanOrEqual(200);
}

describe('properties: hostile input on every route is answered 2xx or 4xx', () => {
  it('JSON bodies of any shape', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...jsonRoutes), fc.oneof(bodyLike, hostileJson), async ([method, path, as], body) => {
        const res = await call(method, resolve(path), { as, type: 'application/json', body: JSON.stringify(body) ?? 'null' });
        expectAnswered(res, `${method} ${path} ${JSON.stringify(body)?.slice(0, 200)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('valid bodies of every JSON route with one member replaced by a hostile value, removed, or a hostile member added', async () => {
    const csrPem = csr('fuzz-template');
    const routes = templates();
    const mutation = fc.integer({ min: 0, max: routes.length - 1 }).chain((r) => {
      const paths = pathsOf(routes[r]![3]);
      return fc.tuple(fc.constant(r), fc.constantFrom(...paths), fc.oneof(hostileJson, hostileString), fc.constantFrom('replace', 'remove', 'add'), fieldName);
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ([r, path, value, how, name]) => {
        const [method, route, as, template] = routes[r]!;
        const valid = JSON.parse(JSON.stringify(template).replace('"CSR"', JSON.stringify(csrPem)));
        const body = how === 'add' ? withAt(valid, [...path.slice(0, -1), name], value, false) : withAt(valid, path, value, how === 'remove');
        const res = await call(method, route, { as, type: 'application/json', body: JSON.stringify(body) ?? 'null' });
        expectAnswered(res, `${method} ${route} ${JSON.stringify(body)?.slice(0, 300)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('ID tokens from the configured provider with hostile claims, at the token exchange', async () => {
    const claims = fc.record(
      {
        sub: fc.oneof(hostileString, hostileJson),
        sid: fc.oneof(hostileString, hostileJson),
        email: fc.oneof(hostileString, hostileJson),
        groups: fc.oneof(fc.array(hostileString, { maxLength: 4 }), hostileJson),
        name: hostileString,
        address: hostileJson,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(claims, async (c) => {
        const token = await new SignJWT({ sub: 'alice', ...c } as JWTPayload).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(IDP).setAudience('writ').setIssuedAt().setExpirationTime('10m').sign(key);
        const res = await form('/oauth2/token', await exchangeForm({ subject_token: token }));
        expectAnswered(res, `exchange ${JSON.stringify(c).slice(0, 300)}`);
        if (res.status >= 400) expect(res.json).toEqual({ error: expect.any(String), error_description: expect.any(String) });
      }),
      { numRuns: RUNS },
    );
  });

  it('raw body text (deep nesting, duplicate keys, huge numbers, NUL bytes) under any content type, chunked or not', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...jsonRoutes), rawJsonText, contentType, fc.boolean(), async ([method, path, as], body, type, chunked) => {
        const res = await call(method, resolve(path), { as, ...(type !== undefined && { type }), body, chunked });
        expectAnswered(res, `${method} ${path} ${type} ${JSON.stringify(body.slice(0, 200))}`);
      }),
      { numRuns: RUNS },
    );
  });

  const getRoutes: [string, Caller][] = [
    ['/v1/admin/entries', 'admin'],
    ['/v1/admin/entries/ENTRY', 'admin'],
    ['/v1/admin/leases', 'admin'],
    ['/v1/admin/audit', 'admin'],
    ['/v1/admin/audit/export', 'admin'],
    ['/v1/admin/resources', 'admin'],
    ['/v1/admin/policies', 'admin'],
    ['/v1/bundle', 'anon'],
    ['/v1/svid-denylist', 'anon'],
    ['/.well-known/oauth-authorization-server', 'anon'],
  ];
  const queryKey = fc.oneof(fc.constantFrom('jti', 'task_id', 'issuer', 'subject', 'sid', 'connector', 'audience', 'status', 'limit', 'before', 'after', 'type', 'actor', 'since', 'until', 'spiffe_id_prefix', 'selector', 'enabled'), hostileString);
  /** A query string as a client could send it: encoded values, raw percent signs, repeated keys, broken escapes. */
  const queryString = fc.array(fc.tuple(queryKey, hostileString, fc.constantFrom('encode', 'raw-percent', 'broken')), { maxLength: 6 }).map((pairs) =>
    pairs
      .map(([k, v, how]) =>
        how === 'encode' ? `${encodeURIComponent(k.replace(/[\ud800-\udfff]/g, ''))}=${encodeURIComponent(v.replace(/[\ud800-\udfff]/g, ''))}`
        : how === 'raw-percent' ? `${encodeURIComponent(k.replace(/[\ud800-\udfff]/g, ''))}=%${Buffer.from(v).toString('hex').slice(0, 6)}`
        : `${encodeURIComponent(k.replace(/[\ud800-\udfff]/g, ''))}=%E0%A4%A%zz%00`,
      )
      .join('&'),
  );

  it('query strings on every GET route', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...getRoutes), queryString, async ([path, as], query) => {
        const res = await call('GET', `${resolve(path)}?${query}`, { as });
        expectAnswered(res, `GET ${path}?${query}`);
      }),
      { numRuns: RUNS },
    );
  });

  const formKey = fc.oneof(fc.constantFrom('grant_type', 'subject_token', 'subject_token_type', 'resource', 'audience', 'authorization_details', 'task_id', 'requested_token_type', 'scope', 'actor_token', 'token', 'token_type_hint'), hostileString);
  const formValue = fc.oneof(
    hostileString,
    fc.constantFrom('urn:ietf:params:oauth:grant-type:token-exchange', 'urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:access_token', MCP),
    hostileJson.map((v) => JSON.stringify(v) ?? ''),
    fc.array(fc.record({ type: fc.constantFrom('mcp_tool', 'other'), tools: fc.array(hostileString, { maxLength: 3 }), actions: fc.array(fc.constantFrom('read', 'write', 'nope', '\u0000'), { maxLength: 3 }) }), { maxLength: 3 }).map((d) => JSON.stringify(d)),
  );

  it('form bodies at /oauth2/token, /oauth2/introspect and /oauth2/revoke, with repeated and hostile parameters', async () => {
    const base = await exchangeForm();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/oauth2/token', '/oauth2/introspect', '/oauth2/revoke'),
        fc.constantFrom<Caller>('agent', 'admin', 'anon'),
        fc.boolean(),
        fc.array(fc.tuple(formKey, formValue, fc.boolean()), { maxLength: 8 }),
        async (path, as, fromValid, pairs) => {
          const params = new URLSearchParams(fromValid ? base : {});
          for (const [k, v, replace] of pairs) replace ? params.set(k, v) : params.append(k, v);
          const res = await call('POST', path, { as, type: 'application/x-www-form-urlencoded', body: params.toString() });
          expectAnswered(res, `POST ${path} ${params.toString().slice(0, 300)}`);
          if (res.status >= 400) expect(res.json).toEqual({ error: expect.any(String), error_description: expect.any(String) });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('path segments: encoded controls, broken escapes and dot segments in every parameterised route', async () => {
    const segment = fc.oneof(
      hostileString.map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
      fc.constantFrom('%00', '%E0%A4%A', '%', '..', '.', '%2e%2e', '%2F', 'spiffe%3A%2F%2Fhostile.test%2Fagent', ''),
    );
    const template = fc.constantFrom<[string, string, Caller]>(
      ['GET', '/v1/admin/entries/:x', 'admin'],
      ['DELETE', '/v1/admin/entries/:x', 'admin'],
      ['GET', '/v1/admin/resources/:x', 'admin'],
      ['POST', '/v1/admin/connectors/:x/enable', 'admin'],
      ['POST', '/v1/tasks/:x/end', 'agent'],
      ['GET', '/v1/:x', 'anon'],
    );
    await fc.assert(
      fc.asyncProperty(template, segment, async ([method, path, as], x) => {
        const res = await call(method, path.replace(':x', x), { as });
        expectAnswered(res, `${method} ${path.replace(':x', x)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('SET bodies at /v1/signals: signed by the transmitter, with hostile claims', async () => {
    /** Mostly `valid`, sometimes `hostile`: so that SETs get verified and applied, with hostile identifiers. */
    const mostly = <T, U>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<U>) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostile });
    const subject = mostly(
      fc.record({ format: fc.constantFrom('iss_sub', 'email', 'opaque'), iss: mostly(fc.constantFrom(IDP, TX), hostileString), sub: hostileString, email: hostileString, id: hostileString }),
      fc.oneof(hostileJson, fc.record({ format: fc.constantFrom('complex', 'aliases'), user: hostileJson, session: hostileJson, identifiers: fc.array(hostileJson, { maxLength: 2 }) })),
    );
    const payload = fc.record(
      { subject, current_level: mostly(fc.constantFrom('LOW', 'medium', 'HIGH', 'aal2'), hostileJson), namespace: mostly(fc.constant('RFC8176'), hostileJson), principal: mostly(fc.constantFrom('USER', 'SESSION'), hostileString), reason_admin: hostileJson },
      { requiredKeys: [] },
    );
    const eventType = mostly(fc.constantFrom(`${CAEP}session-revoked`, `${CAEP}credential-change`, `${CAEP}risk-level-change`, `${CAEP}assurance-level-change`, 'https://schemas.openid.net/secevent/risc/event-type/account-disabled'), hostileString);
    const claims = fc.record(
      { jti: mostly(fc.uuid(), hostileString), txn: mostly(fc.uuid(), fc.oneof(hostileString, hostileNumber)), sub_id: subject, events: mostly(fc.dictionary(eventType, mostly(payload, hostileJson), { minKeys: 1, maxKeys: 3 }), hostileJson) },
      { requiredKeys: ['events'] },
    );
    await fc.assert(
      fc.asyncProperty(claims, async (c) => {
        const body = await set(c);
        const res = await call('POST', '/v1/signals', { type: 'application/secevent+jwt', body });
        expectAnswered(res, `SET ${JSON.stringify(c).slice(0, 300)}`);
        if (res.status >= 400) expect(res.json).toEqual({ err: expect.any(String), description: expect.any(String) });
      }),
      { numRuns: RUNS },
    );
  });

  it('policy text: Cedar-like tokens in any order and nesting, at PUT /v1/admin/policies (the policy in force is restored)', async () => {
    const before = (await call('GET', '/v1/admin/policies', { as: 'admin' })).json.policies as string;
    const token = fc.constantFrom('permit', 'forbid', ' (principal, action, resource)', ' when { ', ' unless { ', ' }', ';', '(', ')', '[', ']', '{', '}', '"', '\\', '//', '\n', '&&', '||', '+', '-', '*', '==', '<=', '.', 'if ', ' then ', ' else ', ' in ', ' has ', ' like ', ' is ', 'true', 'context', 'principal.groups', 'Writ::Action::"read"', '@id("x")', '1', '9223372036854775807', '\u0000');
    const text = fc.oneof(
      fc.array(fc.oneof(token, hostileString), { maxLength: 200 }).map((parts) => parts.join('')),
      fc.tuple(fc.constantFrom('(', '[', '{a: ', 'if true then ', '1 + ', 'true && ', '!'), fc.integer({ min: 1, max: 3000 })).map(([t, n]) => `permit (principal, action, resource) when { ${t.repeat(n)} };`),
    );
    try {
      await fc.assert(
        fc.asyncProperty(text, async (policies) => {
          const res = await json('PUT', '/v1/admin/policies', { policies });
          expectAnswered(res, `PUT /v1/admin/policies ${JSON.stringify(policies.slice(0, 200))}`);
        }),
        { numRuns: RUNS },
      );
    } finally {
      await json('PUT', '/v1/admin/policies', { policies: before });
    }
    expect((await form('/oauth2/token', await exchangeForm({ subject_token: await idToken({ sub: 'carol' }) }))).json).toMatchObject({ token_type: 'Bearer' }); // Cedar still decides
  });

  it('after all of it the broker still serves, and the audit chain verifies', async () => {
    expect((await fetch(`${broker.opsUrl}/healthz`)).status).toBe(200);
    expect((await call('GET', '/v1/bundle')).status).toBe(200);
    const verify = await call('GET', '/v1/admin/audit/verify', { as: 'admin' });
    if (!verify.json.ok) {
      // Name the event that broke the chain, as stored, so that the input that did it can be found.
      const at = verify.json.broken_at as number;
      const around = await call('GET', `/v1/admin/audit?before=${at + 1}&limit=2`, { as: 'admin' });
      throw new Error(`the audit chain does not verify: ${JSON.stringify({ verify: verify.json, events: around.json }).slice(0, 6000)}`);
    }
    expect(verify.json).toMatchObject({ ok: true });
  });
});
