import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { exportJWK, SignJWT, type JSONWebKeySet } from 'jose';
import { JwksUnavailable } from '../attestation/jwks';
import { ManualClock } from '../core/clock';
import type { Random } from '../core/random';
import { mintAccessToken, type AccessTokenSigningKey, type McpToolDetail } from '../tokens';
import {
  bearerChallenge,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  requireTool,
  toolCalls,
  toolGranted,
  writProtection,
  type WritProtectionOptions,
  type WritRequest,
} from './protect';
import { InsufficientScope, InvalidToken } from '../tokens/errors';

const ISSUER = 'https://writ.example.test';
const RESOURCE = 'https://mcp.example.test/github';
const CONNECTOR = 'spiffe://ex.test/agent/assistant';
const T0 = new Date('2026-11-27T12:00:00Z');

let key: AccessTokenSigningKey;
let otherKey: AccessTokenSigningKey;
let jwks: JSONWebKeySet;
/** Stand-ins for the DER of two client certificates: only their SHA-256 matters here. */
const agentCert = new Uint8Array(randomBytes(300));
const strangerCert = new Uint8Array(randomBytes(300));
const random: Random = { bytes: (n) => new Uint8Array(n), uuid: () => 'jti-1' };

const granted: McpToolDetail[] = [
  { type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' },
  { type: 'mcp_tool', tools: ['create_issue'], actions: ['write'] },
];

beforeAll(async () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  key = { kid: 'k1', alg: 'ES256', privateKey: pair.privateKey };
  otherKey = { kid: 'k1', alg: 'ES256', privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey };
  jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
});

const mint = async (over: { audience?: string; issuer?: string; signer?: AccessTokenSigningKey; cert?: Uint8Array; details?: McpToolDetail[] } = {}) =>
  (
    await mintAccessToken(
      {
        issuer: over.issuer ?? ISSUER,
        subject: 'alice',
        audience: over.audience ?? RESOURCE,
        clientId: CONNECTOR,
        clientCertificate: over.cert ?? agentCert,
        authorizationDetails: over.details ?? granted,
        taskId: 'task-1',
        lifetime: { maximum: 3600, certificateNotAfter: new Date(T0.getTime() + 86400e3), subjectTokenExpiresAt: new Date(T0.getTime() + 3600e3) },
      },
      over.signer ?? key,
      new ManualClock(T0),
      random,
    )
  ).token;

interface Outcome {
  passed: boolean;
  status: number;
  headers: Record<string, string>;
  body: { error?: string; error_description?: string } | undefined;
  req: WritRequest;
}

/** Runs the middleware on a fake request over a TLS connection whose client presented `cert`. */
function run(
  options: Partial<WritProtectionOptions>,
  request: { authorization?: string; url?: string; method?: string; body?: unknown; rawBody?: string; cert?: Uint8Array | null },
): Promise<Outcome> {
  const protect = writProtection({ resource: RESOURCE, issuer: ISSUER, keys: jwks, clock: new ManualClock(T0.getTime() + 10e3), ...options });
  const socket = { getPeerCertificate: () => (request.cert === null ? {} : { raw: Buffer.from(request.cert ?? agentCert) }) };
  const stream = request.rawBody === undefined ? Readable.from([]) : Readable.from([Buffer.from(request.rawBody)]);
  const req = Object.assign(stream, {
    method: request.method ?? 'POST',
    url: request.url ?? '/mcp',
    headers: {
      ...(request.authorization !== undefined && { authorization: request.authorization }),
      ...(request.rawBody !== undefined && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(request.rawBody)) }),
    },
    socket,
    ...(request.body !== undefined && { body: request.body }),
  }) as unknown as WritRequest;
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    const res = {
      statusCode: 200,
      headersSent: false,
      setHeader: (name: string, value: string) => void (headers[name.toLowerCase()] = value),
      end(text?: string) {
        resolve({ passed: false, status: this.statusCode, headers, body: text ? JSON.parse(text) : undefined, req });
      },
    };
    protect(req as IncomingMessage, res as unknown as ServerResponse, (err) => {
      if (err) throw err;
      resolve({ passed: true, status: 0, headers, body: undefined, req });
    });
  });
}

const call = (name: unknown, id = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

describe('RFC 6750 §2.1 and §3: bearer tokens in the Authorization header', () => {
  it('challenges a request without credentials with a bare WWW-Authenticate: Bearer (no error code)', async () => {
    const out = await run({}, {});
    expect(out.status).toBe(401);
    expect(out.headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}"`);
    expect(out.headers['cache-control']).toBe('no-store');
  });

  it('challenges another authentication scheme the same way', async () => {
    const out = await run({}, { authorization: 'Basic YWxpY2U6c2VjcmV0' });
    expect(out.status).toBe(401);
    expect(out.headers['www-authenticate']).not.toContain('error=');
  });

  it('answers a malformed Authorization header with 400 invalid_request', async () => {
    const out = await run({}, { authorization: 'Bearer two tokens' });
    expect(out.status).toBe(400);
    expect(out.body?.error).toBe('invalid_request');
    expect(out.headers['www-authenticate']).toContain('error="invalid_request"');
  });

  it('refuses a token in the URI query (RFC 6750 §2.3 is not accepted)', async () => {
    const out = await run({}, { url: `/mcp?access_token=${await mint()}` });
    expect(out.status).toBe(400);
    expect(out.body?.error).toBe('invalid_request');
  });

  it('names resource_metadata (RFC 9728 §5.1) in challenges when configured', async () => {
    const out = await run({ resourceMetadataUrl: protectedResourceMetadataUrl(RESOURCE) }, {});
    expect(out.headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}", resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/github"`);
  });

  it('keeps error_description within the characters RFC 6750 §3 allows', () => {
    const header = bearerChallenge(new InvalidToken('bad "quote" \\ and\nnewline ü'));
    expect(header).toBe(`Bearer error="invalid_token", error_description="bad 'quote' ' and'newline '"`);
  });
});

describe('RFC 9068 §4: the JWT access token is validated', () => {
  it('admits a valid token and attaches its claims and the MCP SDK AuthInfo', async () => {
    const token = await mint();
    const out = await run({}, { authorization: `Bearer ${token}`, body: call('search') });
    expect(out.passed).toBe(true);
    expect(out.req.writ).toMatchObject({ sub: 'alice', aud: RESOURCE, client_id: CONNECTOR, task_id: 'task-1', jti: 'jti-1' });
    expect(out.req.auth).toMatchObject({ token, clientId: CONNECTOR, scopes: ['search:read', 'create_issue:write'], resource: new URL(RESOURCE) });
    expect(out.req.auth!.extra!.writ).toBe(out.req.writ);
  });

  it.each([
    ['a token for another resource ("aud")', () => mint({ audience: 'https://mcp.example.test/jira' }), /audience/],
    ['a token from another issuer ("iss")', () => mint({ issuer: 'https://elsewhere.test' }), /issuer/],
    ['a token signed by another key', () => mint({ signer: otherKey }), /signature/],
  ])('refuses %s with 401 invalid_token', async (_, token, reason) => {
    const out = await run({}, { authorization: `Bearer ${await token()}` });
    expect(out.status).toBe(401);
    expect(out.body?.error).toBe('invalid_token');
    expect(out.body?.error_description).toMatch(reason);
    expect(out.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="invalid_token", error_description="access token: /);
  });

  it('refuses an expired token', async () => {
    const out = await run({ clock: new ManualClock(T0.getTime() + 3600e3) }, { authorization: `Bearer ${await mint()}` });
    expect(out.status).toBe(401);
    expect(out.body?.error_description).toMatch(/expired/);
  });

  it('refuses a JWT that is not an access token (typ other than at+jwt), even signed by Writ\'s key', async () => {
    const jwtSvid = await new SignJWT({ sub: CONNECTOR, client_id: CONNECTOR })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setIssuedAt(T0)
      .setExpirationTime(new Date(T0.getTime() + 600e3))
      .setJti('x')
      .sign(key.privateKey);
    const out = await run({}, { authorization: `Bearer ${jwtSvid}` });
    expect(out.status).toBe(401);
    expect(out.body?.error_description).toMatch(/at\+jwt/);
  });

  it('refuses alg none', async () => {
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: RESOURCE })).toString('base64url')}.`;
    const out = await run({}, { authorization: `Bearer ${none}` });
    expect(out.status).toBe(401);
    expect(out.body?.error).toBe('invalid_token');
  });

  it('fails closed with 503 when Writ\'s keys cannot be fetched', async () => {
    const out = await run(
      { keys: { getKey: () => Promise.reject(new JwksUnavailable('no answer within 5000 ms')) } },
      { authorization: `Bearer ${await mint()}` },
    );
    expect(out.status).toBe(503);
    expect(out.body?.error).toBe('temporarily_unavailable');
    expect(out.headers['www-authenticate']).toBeUndefined();
  });
});

describe('RFC 8705 §3: the token is bound to the TLS client certificate of this request', () => {
  it('refuses the token over a connection without a client certificate', async () => {
    const out = await run({}, { authorization: `Bearer ${await mint()}`, cert: null });
    expect(out.status).toBe(401);
    expect(out.body?.error_description).toMatch(/presented none/);
  });

  it('refuses the token over a connection with another client certificate', async () => {
    const out = await run({}, { authorization: `Bearer ${await mint()}`, cert: strangerCert });
    expect(out.status).toBe(401);
    expect(out.body?.error).toBe('invalid_token');
    expect(out.body?.error_description).toMatch(/another client certificate/);
  });

  it('takes the certificate from clientCertificate when one is given (a trusted TLS-terminating proxy)', async () => {
    const out = await run({ clientCertificate: () => strangerCert }, { authorization: `Bearer ${await mint({ cert: strangerCert })}`, cert: null });
    expect(out.passed).toBe(true);
  });
});

describe('RFC 7662: introspection makes revocation take effect', () => {
  const introspection = (answer: () => Response | Promise<Response>) => {
    const calls: { url: string; body: string; method: string }[] = [];
    const fetchImpl = (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(url), body: String(init?.body), method: String(init?.method) });
      return answer();
    }) as typeof fetch;
    return { calls, options: { fetch: fetchImpl, introspect: { url: `${ISSUER}/oauth2/introspect`, tls: { cert: 'c', key: 'k' } } } };
  };

  it('asks Writ with the token (form-encoded POST) and admits it while active', async () => {
    const token = await mint();
    const { calls, options } = introspection(() => Response.json({ active: true, jti: 'jti-1', aud: RESOURCE }));
    const out = await run(options, { authorization: `Bearer ${token}` });
    expect(out.passed).toBe(true);
    expect(calls).toEqual([{ url: `${ISSUER}/oauth2/introspect`, method: 'POST', body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString() }]);
  });

  it('refuses with 401 invalid_token once Writ says active: false', async () => {
    const { options } = introspection(() => Response.json({ active: false }));
    const out = await run(options, { authorization: `Bearer ${await mint()}` });
    expect(out.status).toBe(401);
    expect(out.body?.error).toBe('invalid_token');
    expect(out.body?.error_description).toMatch(/no longer active/);
  });

  it('refuses when the answer describes another token', async () => {
    const { options } = introspection(() => Response.json({ active: true, jti: 'other' }));
    expect((await run(options, { authorization: `Bearer ${await mint()}` })).status).toBe(401);
  });

  it.each([
    ['an HTTP error', () => new Response('no', { status: 500 })],
    ['a network failure', () => Promise.reject(new TypeError('fetch failed'))],
    ['an answer without "active"', () => Response.json({ ok: true })],
  ])('fails closed with 503 on %s', async (_, answer) => {
    const { options } = introspection(answer);
    const out = await run(options, { authorization: `Bearer ${await mint()}` });
    expect(out.status).toBe(503);
    expect(out.passed).toBe(false);
  });

  it('does not ask Writ about tokens that fail local checks', async () => {
    const { calls, options } = introspection(() => Response.json({ active: true }));
    await run(options, { authorization: `Bearer ${await mint()}`, cert: strangerCert });
    expect(calls).toHaveLength(0);
  });
});

describe('RFC 9396 authorization_details decide which tools may be called (RFC 6750 §3.1 insufficient_scope)', () => {
  it('finds the tool names of tools/call requests, in single messages and batches', () => {
    expect(toolCalls(call('search'))).toEqual(['search']);
    expect(toolCalls([call('search'), { jsonrpc: '2.0', id: 2, method: 'tools/list' }, call('delete_repo', 3)])).toEqual(['search', 'delete_repo']);
    expect(toolCalls({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} })).toEqual([undefined]);
    expect(toolCalls(undefined)).toEqual([]);
  });

  it('grants a tool named in any detail; with actions, only when one detail names the tool and all of them', () => {
    const claims = { authorization_details: granted };
    expect(toolGranted(claims, 'search')).toBe(true);
    expect(toolGranted(claims, 'search', 'read')).toBe(true);
    expect(toolGranted(claims, 'search', 'write')).toBe(false);
    expect(toolGranted(claims, 'search', ['read', 'write'])).toBe(false);
    expect(toolGranted(claims, 'delete_repo')).toBe(false);
    expect(toolGranted(claims, undefined)).toBe(false);
    expect(() => requireTool(claims, 'delete_repo', 'delete')).toThrow(InsufficientScope);
  });

  it('passes a call of a granted tool, and requests that call no tool', async () => {
    const token = await mint();
    expect((await run({}, { authorization: `Bearer ${token}`, body: call('search') })).passed).toBe(true);
    expect((await run({}, { authorization: `Bearer ${token}`, body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } })).passed).toBe(true);
  });

  it.each([
    ['a tool the token does not grant', call('delete_repo')],
    ['a batch with one tool it does not grant', [call('search'), call('delete_repo', 2)]],
    ['a tools/call without a tool name', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 42 } }],
  ])('answers 403 insufficient_scope to %s', async (_, body) => {
    const out = await run({}, { authorization: `Bearer ${await mint()}`, body });
    expect(out.status).toBe(403);
    expect(out.body?.error).toBe('insufficient_scope');
    expect(out.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="insufficient_scope", error_description="/);
  });

  it('requires the configured actions of a tool (toolActions)', async () => {
    const token = await mint();
    expect((await run({ toolActions: { search: 'write' } }, { authorization: `Bearer ${token}`, body: call('search') })).status).toBe(403);
    expect((await run({ toolActions: { search: ['read'] } }, { authorization: `Bearer ${token}`, body: call('search') })).passed).toBe(true);
  });

  it('reads and leaves the JSON body on req.body when no body parser ran', async () => {
    const token = await mint();
    const ok = await run({}, { authorization: `Bearer ${token}`, rawBody: JSON.stringify(call('search')) });
    expect(ok.passed).toBe(true);
    expect(ok.req.body).toEqual(call('search'));
    expect((await run({}, { authorization: `Bearer ${token}`, rawBody: JSON.stringify(call('delete_repo')) })).status).toBe(403);
    expect((await run({ maxBodyBytes: 10 }, { authorization: `Bearer ${token}`, rawBody: JSON.stringify(call('search')) })).status).toBe(413);
    expect((await run({}, { authorization: `Bearer ${token}`, rawBody: '{"jsonrpc":' })).status).toBe(400);
  });

  it('does not read the body of a request whose token fails', async () => {
    const out = await run({}, { authorization: `Bearer ${await mint()}`, cert: strangerCert, rawBody: JSON.stringify(call('search')) });
    expect(out.status).toBe(401);
    expect(out.req.body).toBeUndefined();
  });
});

describe('RFC 9728 protected resource metadata', () => {
  it('lives at /.well-known/oauth-protected-resource inserted before the resource path (§3.1)', () => {
    expect(protectedResourceMetadataUrl('https://mcp.example.test/github')).toBe('https://mcp.example.test/.well-known/oauth-protected-resource/github');
    expect(protectedResourceMetadataUrl('https://mcp.example.test:8443/')).toBe('https://mcp.example.test:8443/.well-known/oauth-protected-resource');
  });

  it('names Writ as the authorization server and certificate-bound tokens (§2)', () => {
    expect(protectedResourceMetadata({ resource: RESOURCE, issuer: ISSUER })).toEqual({
      resource: RESOURCE,
      authorization_servers: [ISSUER],
      bearer_methods_supported: ['header'],
      tls_client_certificate_bound_access_tokens: true,
      authorization_details_types_supported: ['mcp_tool'],
    });
  });
});

describe('writProtection options', () => {
  it('refuses to build without a resource URI or keys', () => {
    expect(() => writProtection({ resource: 'not a uri', issuer: ISSUER, keys: jwks })).toThrow(/resource/);
    expect(() => writProtection({ resource: RESOURCE, issuer: ISSUER })).toThrow(/jwksUri/);
    expect(() => writProtection({ resource: RESOURCE, issuer: ISSUER, jwksUri: 'http://writ.example.test/oauth2/jwks' })).toThrow(/https/);
  });
});
