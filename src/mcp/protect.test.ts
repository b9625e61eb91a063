import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { exportJWK, SignJWT, type JSONWebKeySet } from 'jose';
import { JwksUnavailable } from '../jwt';
import { ManualClock } from '../core/clock';
import type { Random } from '../core/random';
import { mintAccessToken, type AccessTokenSigningKey, type McpToolDetail } from '../tokens';
import type { Act } from '../tokens/access-token';
import { bearerChallenge, writProtection, type WritProtection, type WritProtectionOptions, type WritRequest } from './protect';
import { protectedResourceMetadata, protectedResourceMetadataHandler, protectedResourceMetadataUrl, type ProtectedResourceMetadataHandlerOptions } from './metadata';
import { grantedTools, requireTool, toolCalls, toolGranted } from './tools';
import { writIdentityOf } from './identity';
import { InsufficientScope, InvalidToken } from '../tokens/errors';

const ISSUER = 'https://writ.example.test';
const RESOURCE = 'https://mcp.example.test/github';
const CONNECTOR = 'spiffe://ex.test/agent/assistant';
const T0 = new Date('2026-11-27T12:00:00Z');

let key: AccessTokenSigningKey;
let otherKey: AccessTokenSigningKey;
/** Writ's next key after a rotation: another `kid`. */
let nextKey: AccessTokenSigningKey;
let jwks: JSONWebKeySet;
let nextJwks: JSONWebKeySet;
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
  const next = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  nextKey = { kid: 'k2', alg: 'ES256', privateKey: next.privateKey };
  nextJwks = { keys: [...jwks.keys, { ...(await exportJWK(next.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' }] };
});

const mint = async (
  over: { audience?: string; issuer?: string; signer?: AccessTokenSigningKey; cert?: Uint8Array; details?: McpToolDetail[]; parentAct?: Act; sid?: string; jti?: string } = {},
) =>
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
        ...(over.parentAct !== undefined && { parentAct: over.parentAct }),
        ...(over.sid !== undefined && { sid: over.sid }),
        lifetime: { maximum: 3600, certificateNotAfter: new Date(T0.getTime() + 86400e3), subjectTokenExpiresAt: new Date(T0.getTime() + 3600e3) },
      },
      over.signer ?? key,
      new ManualClock(T0),
      over.jti === undefined ? random : { ...random, uuid: () => over.jti! },
    )
  ).token;

interface Outcome {
  passed: boolean;
  status: number;
  headers: Record<string, string>;
  body: { error?: string; error_description?: string } | undefined;
  req: WritRequest;
}

type FakeRequest = { authorization?: string; url?: string; method?: string; body?: unknown; rawBody?: string; contentType?: string; cert?: Uint8Array | null };

/** Runs a new middleware with `options` on a fake request over a TLS connection whose client presented `cert`. */
function run(options: Partial<WritProtectionOptions>, request: FakeRequest): Promise<Outcome> {
  return runWith(protection(options), request);
}

const protection = (options: Partial<WritProtectionOptions> = {}) =>
  writProtection({ resource: RESOURCE, issuer: ISSUER, keys: jwks, clock: new ManualClock(T0.getTime() + 10e3), ...options });

/** Runs `protect` on a fake request. */
function runWith(protect: WritProtection, request: FakeRequest): Promise<Outcome> {
  const socket = { getPeerCertificate: () => (request.cert === null ? {} : { raw: Buffer.from(request.cert ?? agentCert) }) };
  const stream = request.rawBody === undefined ? Readable.from([]) : Readable.from([Buffer.from(request.rawBody)]);
  const req = Object.assign(stream, {
    method: request.method ?? 'POST',
    url: request.url ?? '/mcp',
    headers: {
      ...(request.authorization !== undefined && { authorization: request.authorization }),
      ...(request.rawBody !== undefined && { 'content-type': request.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(request.rawBody)) }),
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
  it('challenges a request without credentials with WWW-Authenticate: Bearer without an error code', async () => {
    const out = await run({}, {});
    expect(out.status).toBe(401);
    expect(out.headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}", resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/github"`);
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

  it('names resource_metadata (RFC 9728 §5.1) in every challenge: the §3.1 URL of the resource by default, or the one given', async () => {
    const metadata = 'resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/github"';
    const unbound = (await run({}, { authorization: `Bearer ${await mint({ cert: strangerCert })}` })).headers['www-authenticate']!;
    expect(unbound).toMatch(/^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+", /);
    expect(unbound.endsWith(metadata)).toBe(true);
    expect((await run({}, { authorization: `Bearer ${await mint()}`, body: call('delete_repo') })).headers['www-authenticate']).toContain(metadata);
    expect((await run({ resourceMetadataUrl: 'https://meta.example.test/prm' }, {})).headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}", resource_metadata="https://meta.example.test/prm"`);
    expect((await run({ resourceMetadataUrl: false }, {})).headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}"`);
  });

  it('keeps error_description within the characters RFC 6750 §3 allows', () => {
    const header = bearerChallenge(new InvalidToken('bad "quote" \\ and\nnewline ü'));
    expect(header).toBe(`Bearer error="invalid_token", error_description="bad 'quote' ? and?newline ?"`);
  });
});

describe('RFC 9068 §4: the JWT access token is validated', () => {
  it('admits a valid token and attaches the identities it names and the MCP SDK AuthInfo', async () => {
    const token = await mint();
    const out = await run({}, { authorization: `Bearer ${token}`, body: call('search') });
    expect(out.passed).toBe(true);
    expect(out.req.writ).toEqual({
      user: 'alice',
      connector: CONNECTOR,
      connectors: [CONNECTOR],
      taskId: 'task-1',
      tools: ['search', 'create_issue'],
      authorizationDetails: granted,
      claims: expect.objectContaining({ sub: 'alice', aud: RESOURCE, client_id: CONNECTOR, task_id: 'task-1', jti: 'jti-1' }),
    });
    expect(out.req.auth).toMatchObject({ token, clientId: CONNECTOR, scopes: ['search:read', 'create_issue:write'], resource: new URL(RESOURCE) });
    expect(out.req.auth!.extra!.writ).toBe(out.req.writ);
    expect(writIdentityOf(out.req.auth)).toBe(out.req.writ);
  });

  it('RFC 8693 §4.1: names the connector chain of nested act claims, the presenting connector first', async () => {
    const upstream = 'spiffe://ex.test/agent/planner';
    const first = 'spiffe://ex.test/agent/desktop';
    const out = await run({}, { authorization: `Bearer ${await mint({ parentAct: { sub: upstream, act: { sub: first } }, sid: 'session-9' })}` });
    expect(out.req.writ).toMatchObject({ user: 'alice', connector: CONNECTOR, connectors: [CONNECTOR, upstream, first], sessionId: 'session-9' });
  });

  it('lists as granted tools only those with the actions toolActions requires', async () => {
    const out = await run({ toolActions: { search: 'write' } }, { authorization: `Bearer ${await mint()}` });
    expect(out.req.writ!.tools).toEqual(['create_issue']);
    expect(grantedTools({ authorization_details: granted }, { create_issue: ['write'] })).toEqual(['search', 'create_issue']);
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

describe("Writ's keys: fetched from jwksUri, cached, fetched again for an unknown kid", () => {
  /** A JWKS endpoint that serves `sets` in turn (the last one from then on). */
  const jwksEndpoint = (...sets: JSONWebKeySet[]) => {
    const fetches: string[] = [];
    const fetchImpl = (async (url: string | URL | Request) => {
      fetches.push(String(url));
      return Response.json(sets.length > 1 ? sets.shift() : sets[0]);
    }) as typeof fetch;
    return { fetches, options: { keys: undefined, jwksUri: `${ISSUER}/oauth2/jwks`, fetch: fetchImpl } };
  };

  it('fetches the keys once and verifies later tokens with the cached set', async () => {
    const { fetches, options } = jwksEndpoint(jwks);
    const protect = protection(options);
    expect((await runWith(protect, { authorization: `Bearer ${await mint()}` })).passed).toBe(true);
    expect((await runWith(protect, { authorization: `Bearer ${await mint({ jti: 'jti-2' })}` })).passed).toBe(true);
    expect(fetches).toEqual([`${ISSUER}/oauth2/jwks`]);
  });

  it('fetches again for a token signed with a kid it has not seen (a key rotation at Writ) and admits it', async () => {
    const clock = new ManualClock(T0.getTime() + 10e3);
    const { fetches, options } = jwksEndpoint(jwks, nextJwks);
    const protect = protection({ ...options, clock });
    expect((await runWith(protect, { authorization: `Bearer ${await mint()}` })).passed).toBe(true);
    clock.advance(30);
    expect((await runWith(protect, { authorization: `Bearer ${await mint({ signer: nextKey })}` })).passed).toBe(true);
    expect(fetches).toHaveLength(2);
  });

  it('refuses an unknown kid with 401 without fetching again within 30 s of the last fetch (no request amplification)', async () => {
    const { fetches, options } = jwksEndpoint(jwks, nextJwks);
    const protect = protection(options);
    expect((await runWith(protect, { authorization: `Bearer ${await mint()}` })).passed).toBe(true);
    const out = await runWith(protect, { authorization: `Bearer ${await mint({ signer: nextKey })}` });
    expect(out.status).toBe(401);
    expect(out.body?.error).toBe('invalid_token');
    expect(fetches).toHaveLength(1);
  });

  it('fails closed with 503 when jwksUri answers an error', async () => {
    const protect = protection({ keys: undefined, jwksUri: `${ISSUER}/oauth2/jwks`, fetch: (async () => new Response('down', { status: 502 })) as typeof fetch });
    const out = await runWith(protect, { authorization: `Bearer ${await mint()}` });
    expect(out.status).toBe(503);
    expect(out.body?.error).toBe('temporarily_unavailable');
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

  describe('revocation takes effect within a second: an active answer is reused for at most cacheMs', () => {
    const active = () => Response.json({ active: true, jti: 'jti-1', aud: RESOURCE });

    it('reuses an active answer for less than 1 s by default, then asks again', async () => {
      const clock = new ManualClock(T0.getTime() + 10e3);
      const { calls, options } = introspection(active);
      const protect = protection({ ...options, clock });
      const request = { authorization: `Bearer ${await mint()}` };
      expect((await runWith(protect, request)).passed).toBe(true);
      clock.advance(0.999);
      expect((await runWith(protect, request)).passed).toBe(true);
      expect(calls).toHaveLength(1);
      clock.advance(0.001);
      expect((await runWith(protect, request)).passed).toBe(true);
      expect(calls).toHaveLength(2);
    });

    it('refuses a token revoked since the last answer once that answer is a second old', async () => {
      const clock = new ManualClock(T0.getTime() + 10e3);
      let revoked = false;
      const { options } = introspection(() => (revoked ? Response.json({ active: false }) : active()));
      const protect = protection({ ...options, clock });
      const request = { authorization: `Bearer ${await mint()}` };
      expect((await runWith(protect, request)).passed).toBe(true);
      revoked = true;
      clock.advance(1);
      const out = await runWith(protect, request);
      expect(out.status).toBe(401);
      expect(out.body?.error_description).toMatch(/no longer active/);
    });

    it('asks on every request with cacheMs 0', async () => {
      const { calls, options } = introspection(active);
      const protect = protection({ ...options, introspect: { ...options.introspect, cacheMs: 0 } });
      const request = { authorization: `Bearer ${await mint()}` };
      await runWith(protect, request);
      await runWith(protect, request);
      await Promise.all([runWith(protect, request), runWith(protect, request)]);
      expect(calls).toHaveLength(4);
    });

    it('fails closed (503) when the answer is stale and Writ cannot be asked', async () => {
      const clock = new ManualClock(T0.getTime() + 10e3);
      let reachable = true;
      const { options } = introspection(() => (reachable ? active() : Promise.reject(new TypeError('fetch failed'))));
      const protect = protection({ ...options, clock });
      const request = { authorization: `Bearer ${await mint()}` };
      expect((await runWith(protect, request)).passed).toBe(true);
      reachable = false;
      clock.advance(1);
      const out = await runWith(protect, request);
      expect(out.status).toBe(503);
      expect(out.headers['retry-after']).toBe('5');
    });

    it('keeps no inactive answer (Writ also answers inactive when it cannot look the lease up)', async () => {
      const answers = [Response.json({ active: false }), active()];
      const { calls, options } = introspection(() => answers.shift()!);
      const protect = protection(options);
      const request = { authorization: `Bearer ${await mint()}` };
      expect((await runWith(protect, request)).status).toBe(401);
      expect((await runWith(protect, request)).passed).toBe(true);
      expect(calls).toHaveLength(2);
    });

    it('keeps answers per token (jti) and asks once for concurrent requests with one token', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const { calls, options } = introspection(async () => {
        await gate;
        return Response.json({ active: true });
      });
      const protect = protection(options);
      const one = { authorization: `Bearer ${await mint()}` };
      const other = { authorization: `Bearer ${await mint({ jti: 'jti-2' })}` };
      const outcomes = Promise.all([runWith(protect, one), runWith(protect, one), runWith(protect, other)]);
      await new Promise((resolve) => setImmediate(resolve));
      release();
      expect((await outcomes).map((o) => o.passed)).toEqual([true, true, true]);
      expect(calls).toHaveLength(2);
    });

    it('does not lean on a question sent a second or more ago and still unanswered (a slow Writ): it asks again', async () => {
      const clock = new ManualClock(T0.getTime() + 10e3);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const answers = [async () => (await gate, active()), async () => Response.json({ active: false })];
      const { calls, options } = introspection(() => answers.shift()!());
      const protect = protection({ ...options, clock });
      const request = { authorization: `Bearer ${await mint()}` };
      const asked = async (n: number) => {
        for (let i = 0; i < 200 && calls.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      };
      const first = runWith(protect, request);
      await asked(1);
      clock.advance(1); // revoked meanwhile; the first question may have been answered before that
      const second = runWith(protect, request);
      await asked(2);
      release();
      expect((await first).passed).toBe(true);
      expect((await second).status).toBe(401);
      expect(calls).toHaveLength(2);
    });

    it('refuses a cacheMs above 1000 ms: it can only be made stricter', () => {
      const { options } = introspection(active);
      expect(() => protection({ ...options, introspect: { ...options.introspect, cacheMs: 1001 } })).toThrow(/cacheMs.*within a second/);
      expect(() => protection({ ...options, introspect: { ...options.introspect, cacheMs: -1 } })).toThrow(/cacheMs/);
    });
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

  it('reads the body of any Content-Type an MCP SDK transport may take for JSON (older ones match application/json anywhere in it)', async () => {
    const token = await mint();
    for (const contentType of ['application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain; x=application/json'])
      expect((await run({}, { authorization: `Bearer ${token}`, contentType, rawBody: JSON.stringify(call('delete_repo')) })).status).toBe(403);
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

  it('keeps the query of a resource URI that has one (§3.1)', () => {
    expect(protectedResourceMetadataUrl('https://mcp.example.test/tools/?tenant=a')).toBe('https://mcp.example.test/.well-known/oauth-protected-resource/tools?tenant=a');
  });

  const document = {
    resource: RESOURCE,
    authorization_servers: [ISSUER],
    bearer_methods_supported: ['header'],
    tls_client_certificate_bound_access_tokens: true,
    authorization_details_types_supported: ['mcp_tool'],
    dpop_signing_alg_values_supported: ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'],
    dpop_bound_access_tokens_required: false,
  };

  it('names Writ as the authorization server and certificate-bound tokens (§2)', () => {
    expect(protectedResourceMetadata({ resource: RESOURCE, issuer: ISSUER })).toEqual(document);
    expect(protectedResourceMetadata({ resource: RESOURCE, issuer: ISSUER, resourceName: 'GitHub tools', resourceDocumentation: 'https://docs.example.test/github' })).toEqual({
      ...document,
      resource_name: 'GitHub tools',
      resource_documentation: 'https://docs.example.test/github',
    });
  });

  /** Runs the metadata handler on a fake request: the answer, or `next` when it passed the request on. */
  const serve = (options: Partial<ProtectedResourceMetadataHandlerOptions>, method: string, url: string) =>
    new Promise<{ next: boolean; status?: number; headers: Record<string, string | number>; body?: string }>((resolve) => {
      const headers: Record<string, string | number> = {};
      const res = {
        statusCode: 200,
        setHeader: (name: string, value: string | number) => void (headers[name.toLowerCase()] = value),
        end(body?: string) {
          resolve({ next: false, status: this.statusCode, headers, ...(body !== undefined && { body }) });
        },
      };
      protectedResourceMetadataHandler({ resource: RESOURCE, issuer: ISSUER, ...options })({ method, url } as IncomingMessage, res as unknown as ServerResponse, () => resolve({ next: true, headers }));
    });

  it('serves the document as JSON at the §3.1 URL and at the bare well-known path', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/github', '/.well-known/oauth-protected-resource']) {
      const out = await serve({}, 'GET', path);
      expect(out).toMatchObject({ next: false, status: 200, headers: { 'content-type': 'application/json', 'access-control-allow-origin': '*' } });
      expect(JSON.parse(out.body!)).toEqual(document);
    }
    const head = await serve({}, 'HEAD', '/.well-known/oauth-protected-resource/github');
    expect(head.status).toBe(200);
    expect(head.body).toBeUndefined();
  });

  it('answers 405 to other methods there and passes every other request on', async () => {
    expect(await serve({}, 'POST', '/.well-known/oauth-protected-resource/github')).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD' } });
    expect((await serve({}, 'GET', '/.well-known/oauth-protected-resource/jira')).next).toBe(true);
    expect((await serve({}, 'GET', '/github')).next).toBe(true);
    expect((await serve({ serveRoot: false }, 'GET', '/.well-known/oauth-protected-resource')).next).toBe(true);
  });
});

describe('writProtection options', () => {
  it('refuses to build without a resource URI or keys', () => {
    expect(() => writProtection({ resource: 'not a uri', issuer: ISSUER, keys: jwks })).toThrow(/resource/);
    expect(() => writProtection({ resource: RESOURCE, issuer: ISSUER })).toThrow(/jwksUri/);
    expect(() => writProtection({ resource: RESOURCE, issuer: ISSUER, jwksUri: 'http://writ.example.test/oauth2/jwks' })).toThrow(/https/);
  });
});

describe('SEP-2350 per-tool step-up and SEP-2243 headers in writProtection', () => {
  const runHeaders = async (options: Partial<WritProtectionOptions>, body: unknown, headers: Record<string, string>) => {
    const protect = protection(options);
    const socket = { getPeerCertificate: () => ({ raw: Buffer.from(agentCert) }) };
    const req = Object.assign(Readable.from([]), { method: 'POST', url: '/mcp', headers: { authorization: `Bearer ${await mint()}`, ...headers }, socket, body }) as unknown as WritRequest;
    return new Promise<{ passed: boolean; status: number; headers: Record<string, string>; body: any; req: WritRequest }>((resolve) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const out: Record<string, string> = {};
      const res = { statusCode: 200, headersSent: false, setHeader: (n: string, v: string) => void (out[n.toLowerCase()] = v), end(text?: string) { resolve({ passed: false, status: this.statusCode, headers: out, body: text ? JSON.parse(text) : undefined, req }); } };
      protect(req as IncomingMessage, res as unknown as ServerResponse, () => resolve({ passed: true, status: 0, headers: out, body: undefined, req }));
    });
  };

  it('a refused tool call says what to ask for: scope (toolScopes) and authorization_details, in the challenge and the body', async () => {
    const out = await runHeaders({ toolScopes: { delete_repo: 'repo:delete' }, toolActions: { delete_repo: 'delete' } }, call('delete_repo'), {});
    expect(out.status).toBe(403);
    const challenge = out.headers['www-authenticate']!;
    expect(challenge).toMatch(/error="insufficient_scope", error_description="[^"]+", scope="repo:delete", authorization_details="[A-Za-z0-9_-]+", resource_metadata=/);
    const { parseStepUpChallenge } = await import('../tokens/step-up');
    expect(parseStepUpChallenge(challenge)).toMatchObject({ tool: 'delete_repo', scope: 'repo:delete', authorizationDetails: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }] });
    expect(out.body).toMatchObject({ error: 'insufficient_scope', authorization_details: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }] });
  });

  it('no scope when toolScopes does not map the tool; nothing to ask for a tools/call without a name', async () => {
    const out = await runHeaders({}, call('other'), {});
    expect(out.headers['www-authenticate']).not.toContain('scope=');
    expect(out.headers['www-authenticate']).toContain('authorization_details="');
    const unnamed = await runHeaders({}, call(undefined), {});
    expect(unnamed.status).toBe(403);
    expect(unnamed.headers['www-authenticate']).not.toContain('authorization_details=');
    expect(unnamed.body.authorization_details).toBeUndefined();
  });

  it('refuses a bad toolScopes value at construction', () => {
    expect(() => protection({ toolScopes: { x: 'bad"scope' } })).toThrow(/toolScopes/);
  });

  it('refuses a header mismatch with 400 and JSON-RPC -32020 before the tool check', async () => {
    const out = await runHeaders({}, call('create_issue', 5), { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'search' });
    expect(out.status).toBe(400);
    expect(out.headers['www-authenticate']).toBeUndefined();
    expect(out.headers['cache-control']).toBe('no-store');
    expect(out.body).toEqual({ jsonrpc: '2.0', id: 5, error: { code: -32020, message: expect.any(String), data: { mismatch: { header: 'search', body: 'create_issue' } } } });
    // a mismatch naming an ungranted tool is also 400, not 403: the headers are checked first
    const first = await runHeaders({}, call('delete_repo', 6), { 'mcp-method': 'tools/list' });
    expect(first.status).toBe(400);
  });

  it('passes agreeing headers and legacy requests; req.auth carries resourceMetadataUrl and the plain extra fields', async () => {
    const out = await runHeaders({}, call('search'), { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'search' });
    expect(out.passed).toBe(true);
    expect(out.req.auth).toMatchObject({ resourceMetadataUrl: protectedResourceMetadataUrl(RESOURCE), extra: { sub: 'alice', task_id: 'task-1', tools: ['search', 'create_issue'], act: { sub: CONNECTOR }, cnf: { 'x5t#S256': expect.any(String) } } });
    expect(writIdentityOf(out.req.auth)?.user).toBe('alice');
    expect(writIdentityOf({ authInfo: out.req.auth })?.user).toBe('alice');
    expect(writIdentityOf({ http: { authInfo: out.req.auth } })?.user).toBe('alice');
    expect(writIdentityOf({ http: {} })).toBeUndefined();
    expect((await runHeaders({}, call('search'), {})).passed).toBe(true);
  });
});
