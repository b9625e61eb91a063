/**
 * `@writ/mcp` behind a proxy that terminates TLS, as real MCP servers often sit: the client's
 * certificate never reaches the server, so the RFC 8705 binding is checked either on the
 * certificate the proxy forwards (RFC 9440 `Client-Cert`, believed from that proxy only) or
 * not at all, the token being DPoP-bound instead (RFC 9449). A real broker, the official MCP
 * client and server (SDK 1.x), and a proxy this test starts: HTTPS towards clients (client
 * certificates optional), mutual TLS with its own X.509-SVID towards the MCP server, incoming
 * `Client-Cert` headers stripped and the verified peer certificate forwarded (RFC 9440 §4).
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpsRequestRaw, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import express, { type Request, type Response as ExpressResponse } from 'express';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ManualClock } from '../../src/core/clock';
import { grantedToolsOnly, tlsFetch, writIdentityOf, writProtection } from '../../src/mcp';
import { DpopKey, TaskTokenClient, X509Source } from '../../src/sdk';
import { formatClientCert } from '../../src/tokens/client-cert';
import { formatStepUpChallengeParams } from '../../src/tokens/step-up';
import { DpopNonces } from '../../src/tokens/dpop';
import { jwtClaims, spiffeIdIs } from '../support/mcp';
import { startBrokerFixture, type BrokerFixture, type ClientCert } from '../support/fixture';

const TD = 'proxy.test';
const ISSUER = `https://writ.${TD}`;
const SERVER_ID = `spiffe://${TD}/mcp/issues`;
const INGRESS_ID = `spiffe://${TD}/ingress`;
const AGENT_ID = `spiffe://${TD}/agent/assistant`;
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") };
`;

let fx: BrokerFixture<'mcpServer' | 'ingress' | 'stranger'>;
let agentSource: X509Source;
let mcpHttps: Server;
let proxy: Server;
/** The MCP server's own address (behind the proxy) and the public one clients use (the proxy). */
let direct: string;
let resource: string;
const ran: { user: string; connector: string }[] = [];

const pem = (s: X509Source) => ({ cert: s.getX509Svid().certificatesPem, key: s.getX509Svid().privateKey.export({ format: 'pem', type: 'pkcs8' }) as string });

async function handleMcp(req: Request, res: ExpressResponse): Promise<void> {
  const server = new McpServer({ name: 'issues', version: '1.0.0' });
  server.registerTool('list_issues', { description: 'List open issues', inputSchema: {} }, async (_args, extra) => {
    const who = writIdentityOf(extra.authInfo)!;
    ran.push({ user: who.user, connector: who.connector });
    return { content: [{ type: 'text', text: `1 open issue, for ${who.user}` }] };
  });
  const wrapped = grantedToolsOnly(server);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => void wrapped.close());
  await wrapped.connect(transport);
  await transport.handleRequest(req, res, req.body);
}

/** The TLS-terminating proxy: client certificates optional; what it forwards is what it verified. */
function startProxy(upstream: URL, own: ClientCert, bundle: string): Promise<Server> {
  const server = createServer({ cert: own.cert, key: own.key, ca: bundle, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const headers = { ...req.headers };
    // RFC 9440 §4: the proxy removes what a client claims and says only what it verified itself.
    delete headers['client-cert'];
    delete headers['client-cert-chain'];
    const socket = req.socket as TLSSocket;
    const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
    if (peer?.raw) headers['client-cert'] = formatClientCert(new Uint8Array(peer.raw));
    headers.host = upstream.host;
    const out = httpsRequestRaw(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, cert: own.cert, key: own.key, ca: bundle, checkServerIdentity: () => undefined },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  fx = await startBrokerFixture({
    prefix: 'writ-mcp-proxy-',
    trustDomain: TD,
    policies: POLICIES,
    env: { WRIT_ISSUER: ISSUER },
    connectors: { mcpServer: { spiffeId: SERVER_ID }, ingress: { spiffeId: INGRESS_ID }, stranger: { spiffeId: `spiffe://${TD}/agent/stranger` } },
  });
  const entry = await fx.admin('/v1/admin/entries', 'POST', { spiffe_id: AGENT_ID, metadata: { owner: 'platform' } });
  const join = await fx.admin('/v1/admin/join-tokens', 'POST', { entry_id: entry.json.id });
  agentSource = await X509Source.create({ server: fx.broker.apiUrl, bundle: fx.caPem, attestation: { joinToken: join.json.token } });

  const { mcpServer } = fx.connectors;
  const app = express();
  mcpHttps = createServer({ cert: mcpServer.cert, key: mcpServer.key, ca: fx.bundlePem, requestCert: true, rejectUnauthorized: true }, app);
  await new Promise<void>((resolve) => mcpHttps.listen(0, '127.0.0.1', resolve));
  direct = `https://127.0.0.1:${(mcpHttps.address() as AddressInfo).port}`;
  proxy = await startProxy(new URL(direct), fx.connectors.ingress, fx.bundlePem);
  resource = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}/mcp`;
  const registered = await fx.admin('/v1/admin/resources', 'POST', { uri: resource, spiffe_id: SERVER_ID, tools: [{ name: 'list_issues', actions: ['read'], classification: 'internal' }] });
  expect(registered.status).toBe(201);

  const protect = writProtection({
    resource,
    issuer: ISSUER,
    jwksUri: `${fx.broker.apiUrl}/oauth2/jwks`,
    ca: fx.bundlePem,
    introspect: { url: `${fx.broker.apiUrl}/oauth2/introspect`, cacheMs: 0, tls: { cert: mcpServer.cert, key: mcpServer.key, ca: fx.bundlePem } },
    trustedProxies: { spiffeIds: [INGRESS_ID] },
    // RFC 9449 §9: proofs must carry this server's nonce; the SDK's taskFetch picks it up.
    dpop: { nonces: new DpopNonces({ clock: new ManualClock() }) },
  });
  app.post('/mcp', express.json(), protect, handleMcp);
});

afterAll(async () => {
  for (const s of [proxy, mcpHttps]) {
    if (!s) continue;
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
  await agentSource?.close();
  await fx?.close();
});

/** A JSON-RPC POST through `fetchFn` (Authorization and DPoP as given); answers status, challenge and body. */
async function rpc(fetchFn: typeof fetch, url: string, headers: Record<string, string>, method = 'tools/call', params: unknown = { name: 'list_issues', arguments: {} }) {
  const res = await fetchFn(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: randomUUID(), method, params }),
  });
  return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', nonce: res.headers.get('dpop-nonce') ?? undefined, body: await res.text() };
}

/** `fetch` to the proxy over TLS (its certificate is its X.509-SVID), with a client certificate when given. */
const toProxy = (client: Partial<ClientCert> = {}) => tlsFetch({ ca: fx.bundlePem, ...client, checkServerIdentity: spiffeIdIs(INGRESS_ID) });
const publicTls = () => toProxy();

describe('a DPoP-bound token through a TLS-terminating proxy (RFC 9449)', () => {
  let dpop: DpopKey;
  let tokens: TaskTokenClient;

  beforeAll(async () => {
    dpop = await DpopKey.generate();
    tokens = new TaskTokenClient(agentSource, { dpop });
  });

  it('works end to end with the official MCP client: token_type DPoP, cnf.jkt, nonce picked up', async () => {
    const fetch = tokens.taskFetch({ subjectToken: await fx.idp.idToken(), resource, tools: [{ name: 'list_issues', actions: ['read'] }] }, { fetch: publicTls() });
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch }));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['list_issues']);
    expect((await client.callTool({ name: 'list_issues', arguments: {} })).content).toEqual([{ type: 'text', text: '1 open issue, for alice' }]);
    const token = await fetch.token();
    expect(token.tokenType).toBe('DPoP');
    expect(jwtClaims(token.accessToken).cnf).toEqual({ jkt: dpop.jkt });
    expect(ran.at(-1)).toEqual({ user: 'alice', connector: AGENT_ID });
    const introspected = await fx.form('/oauth2/introspect', { token: token.accessToken }, fx.connectors.mcpServer);
    expect(introspected.json).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: dpop.jkt } });
    await client.close();
    await fetch.end();
  });

  it('refuses a stolen token without the key: as a bearer token, with no proof, with a proof by another key', async () => {
    const token = (await tokens.exchange({ subjectToken: await fx.idp.idToken(), resource, tools: [{ name: 'list_issues', actions: ['read'] }] })).accessToken;
    const f = publicTls();
    const asBearer = await rpc(f, resource, { authorization: `Bearer ${token}` });
    expect([asBearer.status, asBearer.challenge]).toEqual([401, expect.stringMatching(/^Bearer .*error="invalid_token".*DPoP-bound/)]);
    const noProof = await rpc(f, resource, { authorization: `DPoP ${token}` });
    expect([noProof.status, noProof.challenge]).toEqual([401, expect.stringMatching(/^DPoP .*error="invalid_dpop_proof".*algs="ES256/)]);
    const thief = await DpopKey.generate();
    const first = await rpc(f, resource, { authorization: `DPoP ${token}`, dpop: thief.proof({ method: 'POST', url: resource, accessToken: token }) });
    const nonce = first.nonce!;
    const otherKey = await rpc(f, resource, { authorization: `DPoP ${token}`, dpop: thief.proof({ method: 'POST', url: resource, accessToken: token, nonce }) });
    expect([otherKey.status, otherKey.challenge]).toEqual([401, expect.stringMatching(/error="invalid_dpop_proof".*not the key the token is bound to/)]);
  });

  it('refuses a replayed proof, and asks for its nonce first (RFC 9449 §9, §11.1)', async () => {
    const token = (await tokens.exchange({ subjectToken: await fx.idp.idToken(), resource, tools: [{ name: 'list_issues', actions: ['read'] }] })).accessToken;
    const f = publicTls();
    const withoutNonce = await rpc(f, resource, { authorization: `DPoP ${token}`, dpop: dpop.proof({ method: 'POST', url: resource, accessToken: token }) });
    expect([withoutNonce.status, withoutNonce.challenge, typeof withoutNonce.nonce]).toEqual([401, expect.stringMatching(/error="use_dpop_nonce"/), 'string']);
    const proof = dpop.proof({ method: 'POST', url: resource, accessToken: token, nonce: withoutNonce.nonce! });
    expect((await rpc(f, resource, { authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
    const replayed = await rpc(f, resource, { authorization: `DPoP ${token}`, dpop: proof });
    expect([replayed.status, replayed.challenge]).toEqual([401, expect.stringMatching(/error="invalid_dpop_proof".*used before/)]);
  });
});

describe('a certificate-bound token through the proxy: RFC 9440 Client-Cert from the trusted proxy only', () => {
  const token = async () => (await new TaskTokenClient(agentSource).exchange({ subjectToken: await fx.idp.idToken(), resource, tools: [{ name: 'list_issues', actions: ['read'] }] })).accessToken;

  it('works when the client presents its certificate to the proxy, which forwards it', async () => {
    const t = await token();
    const res = await rpc(toProxy(pem(agentSource)), resource, { authorization: `Bearer ${t}` });
    expect([res.status, JSON.parse(res.body).result.content]).toEqual([200, [{ type: 'text', text: '1 open issue, for alice' }]]);
  });

  it('refuses the token when the client presented no certificate to the proxy (the proxy forwards none)', async () => {
    const res = await rpc(publicTls(), resource, { authorization: `Bearer ${await token()}` });
    expect([res.status, res.challenge]).toEqual([401, expect.stringMatching(/error="invalid_token".*presented none/)]);
  });

  it('refuses a spoofed Client-Cert: stripped by the proxy, and refused from any peer that is not the proxy', async () => {
    const t = await token();
    const agentCert = new Uint8Array(agentSource.getX509Svid().certificates[0]!.raw);
    const spoof = { authorization: `Bearer ${t}`, 'client-cert': formatClientCert(agentCert) };
    // Through the proxy, from another workload's certificate: the proxy replaces the header with what it verified.
    const viaProxy = await rpc(toProxy(fx.connectors.stranger), resource, spoof);
    expect([viaProxy.status, viaProxy.challenge]).toEqual([401, expect.stringMatching(/bound to another client certificate/)]);
    // Straight to the MCP server, bypassing the proxy: a peer that is not a trusted proxy may not send the header at all.
    const direct_ = await rpc(tlsFetch({ ca: fx.bundlePem, ...fx.connectors.stranger, checkServerIdentity: () => undefined }), `${direct}/mcp`, spoof);
    expect([direct_.status, direct_.challenge]).toEqual([400, expect.stringMatching(/error="invalid_request".*trusted proxy/)]);
  });
});

describe('what a malicious MCP server cannot make taskFetch do', () => {
  const challengeFor = (tool: string, actions: string[]) =>
    `Bearer error="insufficient_scope", error_description="no", ${formatStepUpChallengeParams({ tool, actions: actions as never })}`;

  it('ask for a tool other than the one the request calls, or send the token to another origin', async () => {
    const seen: { url: string; authorization: string | null }[] = [];
    const evil: typeof fetch = async (input, init) => {
      seen.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
      return new Response('{}', { status: 403, headers: { 'www-authenticate': challengeFor('delete_repo', ['delete']) } });
    };
    const stepUps: unknown[] = [];
    const taskFetch = new TaskTokenClient(agentSource).taskFetch({ subjectToken: await fx.idp.idToken(), resource, tools: [{ name: 'list_issues', actions: ['read'] }] }, { fetch: evil, onStepUp: (e) => stepUps.push(e) });
    const call = (name: string) => taskFetch(resource, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } }) });
    expect((await call('list_issues')).status).toBe(403); // the challenge names delete_repo: not followed
    expect((await taskFetch(resource, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) })).status).toBe(403);
    expect(stepUps).toEqual([]);
    await expect(taskFetch('https://elsewhere.example/mcp', { method: 'POST', body: '{}' })).rejects.toThrow(/only/);
    expect(seen.map((s) => s.url)).toEqual([resource, resource]);
    expect(seen.every((s) => s.authorization?.startsWith('Bearer '))).toBe(true);
    await taskFetch.end();
  });
});
