/**
 * The broker behind a proxy that terminates TLS (RFC 9440): the proxy connects with its own
 * X.509-SVID and forwards the client's certificate in `Client-Cert`; Writ believes that header
 * from a configured trusted proxy only, verifies the forwarded certificate against its trust
 * bundle itself, and never takes the proxy's own certificate for the client's.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateThumbprint } from '../../src/tokens/access-token';
import { formatClientCert } from '../../src/tokens/client-cert';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';
import { httpsRequest } from '../support/https';
import { jwtClaims } from '../support/mcp';
import { openssl } from '../support/openssl';

const TD = 'fwd.test';
const INGRESS = `spiffe://${TD}/ingress`;
const AGENT = `spiffe://${TD}/agent/assistant`;
const RESOURCE = 'https://mcp.fwd.test/tools';
const POLICIES = `
permit (principal, action == Writ::Action::"read", resource is Writ::Tool) when { principal.groups.contains("eng") };
`;

let fx: BrokerFixture<'ingress' | 'agent' | 'stranger'>;

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-fwd-',
    trustDomain: TD,
    policies: POLICIES,
    env: { WRIT_TRUSTED_PROXIES: JSON.stringify({ spiffe_ids: [INGRESS] }) },
    resources: [{ uri: RESOURCE, spiffe_id: `spiffe://${TD}/mcp/tools`, tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] }],
    connectors: { ingress: { spiffeId: INGRESS }, agent: { spiffeId: AGENT }, stranger: { spiffeId: `spiffe://${TD}/agent/stranger` } },
  });
});
afterAll(() => fx?.close());

const der = (pem: string) => new Uint8Array(new X509Certificate(pem).raw);
/** A JWT-SVID request over mTLS as `as`, with extra headers. */
const jwtSvid = (as: ClientCert, headers: Record<string, string> = {}) =>
  httpsRequest(`${fx.broker.apiUrl}/v1/jwt-svid`, { ca: fx.caPem, method: 'POST', cert: as.cert, key: as.key, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ audience: ['https://api.fwd.test'] }) });

describe('RFC 9440 Client-Cert at the broker', () => {
  it('from the trusted proxy: the forwarded SVID is the caller (an mTLS route and the token exchange)', async () => {
    const res = await jwtSvid(fx.connectors.ingress, { 'client-cert': formatClientCert(der(fx.connectors.agent.cert)) });
    expect(res.status).toBe(201);
    expect(jwtClaims(JSON.parse(res.body).token).sub).toBe(AGENT);

    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await fx.idp.idToken(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: RESOURCE,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]),
    });
    const exchanged = await httpsRequest(`${fx.broker.apiUrl}/oauth2/token`, {
      ca: fx.caPem,
      method: 'POST',
      ...fx.connectors.ingress,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'client-cert': formatClientCert(der(fx.connectors.agent.cert)) },
      body: body.toString(),
    });
    expect(exchanged.status).toBe(200);
    const claims = jwtClaims(JSON.parse(exchanged.body).access_token);
    expect([claims.client_id, claims.cnf]).toEqual([AGENT, { 'x5t#S256': certificateThumbprint(der(fx.connectors.agent.cert)) }]);
  });

  it('from the trusted proxy without Client-Cert: no client at all, never the proxy itself', async () => {
    const res = await jwtSvid(fx.connectors.ingress);
    expect(res.status).toBe(401);
  });

  it('from any other peer: Client-Cert is refused, even when that peer has an SVID of its own', async () => {
    const spoofed = await jwtSvid(fx.connectors.stranger, { 'client-cert': formatClientCert(der(fx.connectors.agent.cert)) });
    expect(spoofed.status).toBe(400);
    expect(JSON.parse(spoofed.body).detail).toMatch(/trusted proxy/);
    const anonymous = await httpsRequest(`${fx.broker.apiUrl}/v1/bundle`, { ca: fx.caPem, headers: { 'client-cert': formatClientCert(der(fx.connectors.agent.cert)) } });
    expect(anonymous.status).toBe(400);
  });

  it('a forwarded certificate that does not chain to the bundle is no client; a malformed header is 400', async () => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'forged.key', '-out', 'forged.crt', '-subj', '/CN=forged', '-days', '1', '-addext', `subjectAltName=URI:${AGENT}`], { cwd: fx.work });
    const forged = readFileSync(join(fx.work, 'forged.crt'), 'utf8');
    expect((await jwtSvid(fx.connectors.ingress, { 'client-cert': formatClientCert(der(forged)) })).status).toBe(401);
    const bad = await jwtSvid(fx.connectors.ingress, { 'client-cert': ':bm90IGEgY2VydGlmaWNhdGU=:' });
    expect([bad.status, JSON.parse(bad.body).detail]).toEqual([400, expect.stringMatching(/X\.509 certificate/)]);
  });
});
