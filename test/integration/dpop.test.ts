/**
 * DPoP-bound token exchange (RFC 9449) with JWT-SVID client authentication
 * (draft-ietf-oauth-spiffe-client-auth), against a real broker: an agent behind a
 * TLS-terminating proxy presents no client certificate, authenticates with a JWT-SVID it got
 * over mTLS, and proves a DPoP key; the token is bound to that key (`cnf.jkt`).
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Broker } from '../../src/broker';
import { certificateThumbprint } from '../../src/tokens';
import { startBrokerFixture, type BrokerFixture, type ClientCert, type JsonResponse } from '../support/fixture';
import { httpsRequest } from '../support/https';

const IDP = 'https://idp.example.test';
/** The broker's public issuer URL (as behind a proxy): not the address it listens on. */
const ISSUER = 'https://writ.example.test';
const TOKEN_ENDPOINT = `${ISSUER}/oauth2/token`;
const GITHUB = 'https://mcp.example.test/github';
const JIRA = 'https://mcp.example.test/jira';
const JWT_SPIFFE = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';
const POLICIES = `
@id("eng-read-write")
permit (principal is Writ::User, action in [Writ::Action::"read", Writ::Action::"write"], resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("no-dpop-writes")
forbid (principal, action == Writ::Action::"write", resource)
when { context.binding == "dpop" };

@id("github-may-call-jira")
permit (principal, action == Writ::Action::"delegate", resource in Writ::Server::"${JIRA}")
when { principal == Writ::Connector::"spiffe://ex.test/mcp/github" && context.chain_depth <= 2 };
`;

let fx: BrokerFixture<'agent' | 'github' | 'doomed' | 'other'>;
let broker: Broker;

interface DpopKey {
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
  readonly jkt: string;
}

async function dpopKey(): Promise<DpopKey> {
  const pair = await generateKeyPair('ES256');
  const jwk = await exportJWK(pair.publicKey);
  return { privateKey: pair.privateKey as CryptoKey, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

/** RFC 9449 §4.2: a proof for `htm` `htu`, issued now. */
const proof = (key: DpopKey, over: { htm?: string; htu?: string; iat?: number } = {}) =>
  new SignJWT({ htm: over.htm ?? 'POST', htu: over.htu ?? TOKEN_ENDPOINT, jti: randomUUID() })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt(over.iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey);

/** POST /v1/jwt-svid over mTLS, as a connector gets its JWT-SVID. */
async function jwtSvid(as: ClientCert, audience: string[] = [ISSUER]): Promise<string> {
  const res = await httpsRequest(`${broker.apiUrl}/v1/jwt-svid`, {
    ca: fx.caPem,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ audience }),
    cert: as.cert,
    key: as.key,
  });
  if (res.status !== 201) throw new Error(`jwt-svid: ${res.status} ${res.body}`);
  return JSON.parse(res.body).token as string;
}

const details = (...d: [string, string][]) => JSON.stringify(d.map(([tool, action]) => ({ type: 'mcp_tool', tools: [tool], actions: [action] })));

/** A token request with optional DPoP header(s) and client certificate. */
async function tokenRequest(params: Record<string, string>, opts: { dpop?: string; as?: ClientCert } = {}): Promise<JsonResponse> {
  const res = await httpsRequest(`${broker.apiUrl}/oauth2/token`, {
    ca: fx.caPem,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(opts.dpop !== undefined && { dpop: opts.dpop }) },
    body: new URLSearchParams(params).toString(),
    ...(opts.as && { cert: opts.as.cert, key: opts.as.key }),
  });
  return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
}

const exchangeParams = async (extra: Record<string, string> = {}) => ({
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: await fx.idp.idToken(),
  subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
  resource: GITHUB,
  authorization_details: details(['search', 'read'], ['create_issue', 'write']),
  ...extra,
});

const withAssertion = async (assertion: string, extra: Record<string, string> = {}) => exchangeParams({ client_assertion_type: JWT_SPIFFE, client_assertion: assertion, ...extra });

/** An assertion signed with the broker's own JWT key, for claims its JWT-SVID endpoint would never issue. */
const forged = (claims: { sub?: string; aud?: string | string[]; exp?: number; jti?: string }, kid = broker.jwtKey.kid) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setSubject(claims.sub ?? 'spiffe://ex.test/agent/assistant')
    .setAudience(claims.aud ?? [ISSUER])
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 300)
    .setJti(claims.jti ?? randomUUID())
    .sign(broker.jwtKey.privateKey);

const lastAudit = (type: string) => broker.db.prisma.auditEvent.findFirst({ where: { type }, orderBy: { seq: 'desc' } });

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-dpop-',
    trustDomain: 'ex.test',
    idpIssuer: IDP,
    policies: POLICIES,
    env: { WRIT_ISSUER: ISSUER },
    resources: [
      {
        uri: GITHUB,
        spiffe_id: 'spiffe://ex.test/mcp/github',
        tools: [
          { name: 'search', actions: ['read'], classification: 'internal' },
          { name: 'create_issue', actions: ['write'], classification: 'internal' },
        ],
      },
      { uri: JIRA, spiffe_id: 'spiffe://ex.test/mcp/jira', tools: [{ name: 'comment', actions: ['read'], classification: 'internal' }] },
    ],
    connectors: {
      agent: { spiffeId: 'spiffe://ex.test/agent/assistant', owner: 'platform' },
      github: { spiffeId: 'spiffe://ex.test/mcp/github', owner: 'platform' },
      doomed: { spiffeId: 'spiffe://ex.test/agent/doomed', owner: 'platform' },
      other: { spiffeId: 'spiffe://ex.test/agent/other', owner: 'platform' },
    },
  });
  broker = fx.broker;
});

afterAll(async () => {
  await fx?.close();
});

describe('DPoP-bound exchange with a JWT-SVID client assertion, over TLS without a client certificate', () => {
  let key: DpopKey;
  let assertion: string;
  let token: string;

  beforeAll(async () => {
    key = await dpopKey();
    assertion = await jwtSvid(fx.connectors.agent);
  });

  it('issues token_type DPoP bound to the proof key (cnf.jkt), and policy sees the binding', async () => {
    const res = await tokenRequest(await withAssertion(assertion, { client_id: 'spiffe://ex.test/agent/assistant' }), { dpop: await proof(key) });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json).toMatchObject({ token_type: 'DPoP', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    // context.binding == "dpop": the forbid on writes removed create_issue.
    expect(res.json.authorization_details).toEqual([{ type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' }]);
    token = res.json.access_token;
    const claims = decodeJwt(token);
    expect(claims.cnf).toEqual({ jkt: key.jkt });
    expect(claims).toMatchObject({ client_id: 'spiffe://ex.test/agent/assistant', act: { sub: 'spiffe://ex.test/agent/assistant' } });
    const lease = await broker.db.prisma.lease.findUnique({ where: { id: claims.jti! } });
    expect(lease).toMatchObject({ kind: 'access-token', spiffeId: 'spiffe://ex.test/agent/assistant', fingerprint: `jkt:${key.jkt}` });
    const audit = await lastAudit('token.issued');
    expect(audit).toMatchObject({ actor: 'spiffe://ex.test/agent/assistant' });
    expect(audit!.details).toMatchObject({ binding: 'dpop', client_auth: 'jwt-spiffe' });
    // The token never outlives the JWT-SVID that authenticated the client.
    expect(claims.exp!).toBeLessThanOrEqual(decodeJwt(assertion).exp!);
  });

  it('RFC 7662: introspection returns cnf.jkt as signed and token_type DPoP', async () => {
    const res = await fx.form('/oauth2/introspect', { token }, fx.connectors.github);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
    expect(res.json.cnf).not.toHaveProperty('x5t#S256');
  });

  it('refuses a replayed proof (RFC 9449 §11.1) with invalid_dpop_proof', async () => {
    const once = await proof(key);
    expect((await tokenRequest(await withAssertion(assertion), { dpop: once })).status).toBe(200);
    const again = await tokenRequest(await withAssertion(assertion), { dpop: once });
    expect(again.status).toBe(400);
    expect(again.json).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(again.json.error_description).toMatch(/used before/);
    expect((await lastAudit('token.refused'))!.details).toMatchObject({ error: 'invalid_dpop_proof', client_auth: 'jwt-spiffe' });
  });

  it('refuses a proof for another URL or method (RFC 9449 §4.3 points 8, 9): htu is the public issuer URL', async () => {
    const local = await tokenRequest(await withAssertion(assertion), { dpop: await proof(key, { htu: `${broker.apiUrl}/oauth2/token` }) });
    expect(local.status).toBe(400);
    expect(local.json).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(local.json.error_description).toMatch(/htu/);
    const other = await tokenRequest(await withAssertion(assertion), { dpop: await proof(key, { htu: `${ISSUER}/oauth2/introspect` }) });
    expect(other.json).toMatchObject({ error: 'invalid_dpop_proof' });
    const get = await tokenRequest(await withAssertion(assertion), { dpop: await proof(key, { htm: 'GET' }) });
    expect(get.status).toBe(400);
    expect(get.json).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(get.json.error_description).toMatch(/htm/);
    const stale = await tokenRequest(await withAssertion(assertion), { dpop: await proof(key, { iat: Math.floor(Date.now() / 1000) - 600 }) });
    expect(stale.json).toMatchObject({ error: 'invalid_dpop_proof' });
    const two = await tokenRequest(await withAssertion(assertion), { dpop: `${await proof(key)}, ${await proof(key)}` });
    expect(two.json).toMatchObject({ error: 'invalid_dpop_proof' });
  });

  it('never issues an unbound token: no DPoP and no client certificate is refused; no credential at all is invalid_client', async () => {
    const unbound = await tokenRequest(await withAssertion(assertion));
    expect(unbound.status).toBe(400);
    expect(unbound.json).toMatchObject({ error: 'invalid_dpop_proof' });
    const anonymous = await tokenRequest(await exchangeParams(), { dpop: await proof(key) });
    expect(anonymous.status).toBe(401);
    expect(anonymous.json).toMatchObject({ error: 'invalid_client' });
  });

  it('a chained exchange by a DPoP-authenticated resource binds to the new proof key', async () => {
    const githubKey = await dpopKey();
    const githubAssertion = await jwtSvid(fx.connectors.github);
    const res = await tokenRequest(
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        resource: JIRA,
        authorization_details: details(['comment', 'read']),
        client_assertion_type: JWT_SPIFFE,
        client_assertion: githubAssertion,
      },
      { dpop: await proof(githubKey) },
    );
    expect(res.status).toBe(200);
    expect(res.json.token_type).toBe('DPoP');
    const claims = decodeJwt(res.json.access_token);
    expect(claims.cnf).toEqual({ jkt: githubKey.jkt });
    expect(claims.act).toEqual({ sub: 'spiffe://ex.test/mcp/github', act: { sub: 'spiffe://ex.test/agent/assistant' } });
  });
});

describe('JWT-SVID client assertions that are refused (invalid_client, 401)', () => {
  let key: DpopKey;
  beforeAll(async () => {
    key = await dpopKey();
  });

  const refused = async (params: Record<string, string>, why: RegExp, as?: ClientCert) => {
    const res = await tokenRequest(params, { dpop: await proof(key), ...(as && { as }) });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ error: 'invalid_client' });
    expect(res.json.error_description).toMatch(why);
  };

  it('refuses an assertion for another audience, or for more than one', async () => {
    await refused(await withAssertion(await jwtSvid(fx.connectors.agent, ['https://elsewhere.example.test'])), /'aud' is not this broker's issuer/);
    await refused(await withAssertion(await jwtSvid(fx.connectors.agent, [ISSUER, 'https://elsewhere.example.test'])), /one audience/);
  });

  it('refuses an expired assertion, one without a lease, and another type', async () => {
    const real = decodeJwt(await jwtSvid(fx.connectors.agent));
    await refused(await withAssertion(await forged({ jti: real.jti!, exp: Math.floor(Date.now() / 1000) - 5 })), /expired/);
    await refused(await withAssertion(await forged({})), /not a current JWT-SVID/);
    await refused(await exchangeParams({ client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await jwtSvid(fx.connectors.agent) }), /client_assertion_type/);
  });

  it("refuses an assertion signed by another trust domain's key", async () => {
    const foreign = (await generateKeyPair('ES256')).privateKey;
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: broker.jwtKey.kid, typ: 'JWT' })
      .setSubject('spiffe://ex.test/agent/assistant')
      .setAudience([ISSUER])
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(foreign);
    await refused(await withAssertion(jwt), /signature/);
    const other = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'other-td', typ: 'JWT' }).setSubject('spiffe://other.test/agent').setAudience([ISSUER]).setIssuedAt().setExpirationTime('5m').setJti(randomUUID()).sign(foreign);
    await refused(await withAssertion(other), /client_assertion/);
  });

  it('refuses a client_id that is not the assertion\'s sub, and an mTLS client naming another ID', async () => {
    const assertion = await jwtSvid(fx.connectors.agent);
    await refused(await withAssertion(assertion, { client_id: 'spiffe://ex.test/agent/other' }), /client_id/);
    await refused(await withAssertion(assertion), /different clients/, fx.connectors.other);
  });

  it('refuses the JWT-SVID of a connector the kill switch disabled', async () => {
    const assertion = await jwtSvid(fx.connectors.doomed);
    expect((await tokenRequest(await withAssertion(assertion), { dpop: await proof(key) })).status).toBe(200);
    const off = await fx.admin(`/v1/admin/connectors/${encodeURIComponent('spiffe://ex.test/agent/doomed')}/disable`, 'POST', { reason: 'test' });
    expect(off.status).toBe(200);
    await refused(await withAssertion(assertion), /not a current JWT-SVID/);
  });
});

describe('mutual TLS, with and without DPoP', () => {
  it('is unchanged without DPoP: Bearer, bound to the certificate (RFC 8705)', async () => {
    const res = await fx.form('/oauth2/token', await exchangeParams(), fx.connectors.agent);
    expect(res.status).toBe(200);
    expect(res.json.token_type).toBe('Bearer');
    expect(res.json.authorization_details).toHaveLength(2); // the forbid applies to DPoP-bound tokens only
    const claims = decodeJwt(res.json.access_token);
    expect(claims.cnf).toEqual({ 'x5t#S256': certificateThumbprint(new X509Certificate(fx.connectors.agent.cert).raw) });
    expect((await lastAudit('token.issued'))!.details).toMatchObject({ binding: 'mtls', client_auth: 'tls_client_auth' });
    const introspected = await fx.form('/oauth2/introspect', { token: res.json.access_token }, fx.connectors.github);
    expect(introspected.json).toMatchObject({ active: true, token_type: 'Bearer' });
  });

  it('binds to the DPoP key when the request carries both (RFC 9449 §5)', async () => {
    const key = await dpopKey();
    const res = await tokenRequest(await exchangeParams(), { dpop: await proof(key), as: fx.connectors.agent });
    expect(res.status).toBe(200);
    expect(res.json.token_type).toBe('DPoP');
    expect(decodeJwt(res.json.access_token).cnf).toEqual({ jkt: key.jkt });
    expect((await lastAudit('token.issued'))!.details).toMatchObject({ binding: 'dpop', client_auth: 'tls_client_auth' });
  });

  it('accepts a certificate and an assertion that name the same client', async () => {
    const key = await dpopKey();
    const res = await tokenRequest(await withAssertion(await jwtSvid(fx.connectors.agent)), { dpop: await proof(key), as: fx.connectors.agent });
    expect(res.status).toBe(200);
  });
});

describe('RFC 8414 metadata', () => {
  it('announces DPoP algorithms and JWT-SVID client authentication', async () => {
    const res = await httpsRequest(`${broker.apiUrl}/.well-known/oauth-authorization-server`, { ca: fx.caPem });
    const doc = JSON.parse(res.body);
    expect(doc.issuer).toBe(ISSUER);
    expect(doc.token_endpoint).toBe(TOKEN_ENDPOINT);
    expect(doc.dpop_signing_alg_values_supported).toContain('ES256');
    expect(doc.token_endpoint_auth_methods_supported).toEqual(['tls_client_auth', 'spiffe_jwt']);
  });
});
