import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exportJWK, type JSONWebKeySet } from 'jose';
import type { Transport as TransportV1 } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { AuthInfo as AuthInfoV1 } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { OAuthError as OAuthErrorV2, type AuthInfo as AuthInfoV2, type McpServer as McpServerV2, type OAuthTokenVerifier, type ServerContext, type Transport as TransportV2 } from '@modelcontextprotocol/server';
import type { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { ManualClock } from '../core/clock';
import type { Random } from '../core/random';
import { mintAccessToken, type AccessTokenSigningKey, type McpToolDetail } from '../tokens';
import { grantedToolsOnly, type McpServerLike, type TransportLike } from './granted-tools';
import { writIdentityOf, writClaimsOf, type McpAuthInfo } from './identity';
import { VerifierError, writBinding, writTokenVerifier } from './verifier';
import type { WritRequest } from './protect';

// ---------------------------------------------------------------------------------------
// Types: SDK v1 and v2 objects fit @writ/mcp's structural types (checked by tsc, not at run time).
// ---------------------------------------------------------------------------------------
type Assert<T extends true> = T;
type Extends<A, B> = [A] extends [B] ? true : false;
export type TypeChecks = [
  Assert<Extends<TransportV1, TransportLike>>,
  Assert<Extends<TransportV2, TransportLike>>,
  Assert<Extends<NodeStreamableHTTPServerTransport, TransportLike>>,
  Assert<Extends<McpServerV1, McpServerLike>>,
  Assert<Extends<McpServerV2, McpServerLike>>,
  Assert<Extends<McpAuthInfo, AuthInfoV1>>,
  Assert<Extends<McpAuthInfo, AuthInfoV2>>,
  Assert<Extends<ReturnType<typeof writTokenVerifier>, OAuthTokenVerifier>>,
];
// writIdentityOf takes v1 extra, v1 AuthInfo, v2 ctx and v2 AuthInfo; grantedToolsOnly keeps the argument's type.
export const typeUses = (extraV1: RequestHandlerExtra<never, never>, ctx: ServerContext, a1: AuthInfoV1, a2: AuthInfoV2, s1: McpServerV1, s2: McpServerV2, t2: NodeStreamableHTTPServerTransport) => {
  const checks = [writIdentityOf(extraV1), writIdentityOf(ctx), writIdentityOf(ctx.http?.authInfo), writIdentityOf(a1), writIdentityOf(a2), writClaimsOf(extraV1.authInfo)];
  const same: [McpServerV1, McpServerV2, NodeStreamableHTTPServerTransport] = [grantedToolsOnly(s1), grantedToolsOnly(s2), grantedToolsOnly(t2)];
  return [checks, same];
};

// ---------------------------------------------------------------------------------------

const ISSUER = 'https://writ.example.test';
const RESOURCE = 'https://mcp.example.test/github';
const T0 = new Date('2026-11-27T12:00:00Z');
const agentCert = new Uint8Array(randomBytes(300));
const strangerCert = new Uint8Array(randomBytes(300));
const random: Random = { bytes: (n) => new Uint8Array(n), uuid: () => 'jti-1' };
const granted: McpToolDetail[] = [{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }];
let key: AccessTokenSigningKey;
let jwks: JSONWebKeySet;

beforeAll(async () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  key = { kid: 'k1', alg: 'ES256', privateKey: pair.privateKey };
  jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
});

const mint = async (audience = RESOURCE) =>
  (
    await mintAccessToken(
      {
        issuer: ISSUER,
        subject: 'alice',
        audience,
        clientId: 'spiffe://ex.test/agent/assistant',
        clientCertificate: agentCert,
        authorizationDetails: granted,
        taskId: 'task-1',
        lifetime: { maximum: 3600, certificateNotAfter: new Date(T0.getTime() + 86400e3), subjectTokenExpiresAt: new Date(T0.getTime() + 3600e3) },
      },
      key,
      new ManualClock(T0),
      random,
    )
  ).token;

const verifier = () => writTokenVerifier({ resource: RESOURCE, issuer: ISSUER, keys: jwks, clock: new ManualClock(T0.getTime() + 10e3) });

/** Runs writBinding on a fake request over a connection that presented `cert`. */
function bind(auth: unknown, cert: Uint8Array) {
  const req = { socket: { getPeerCertificate: () => ({ raw: Buffer.from(cert) }) }, headers: {}, auth } as unknown as WritRequest;
  return new Promise<{ passed: boolean; status: number; headers: Record<string, string>; req: WritRequest }>((resolve) => {
    const headers: Record<string, string> = {};
    const res = {
      statusCode: 200,
      headersSent: false,
      setHeader: (n: string, v: string) => void (headers[n.toLowerCase()] = v),
      end() {
        resolve({ passed: false, status: this.statusCode, headers, req });
      },
    };
    writBinding({ resourceMetadataUrl: 'https://mcp.example.test/.well-known/oauth-protected-resource/github' })(req as IncomingMessage, res as unknown as ServerResponse, () =>
      resolve({ passed: true, status: 0, headers, req }),
    );
  });
}

describe('writTokenVerifier: an SDK v2 OAuthTokenVerifier that fails closed on the unchecked binding', () => {
  it('verifies the token but returns an AuthInfo without identity or scopes (writIdentityOf undefined)', async () => {
    const token = await mint();
    const auth = await verifier().verifyAccessToken(token);
    expect(auth).toMatchObject({ token, clientId: 'spiffe://ex.test/agent/assistant', scopes: [], expiresAt: expect.any(Number), resourceMetadataUrl: expect.stringContaining('oauth-protected-resource') });
    expect(Object.keys(auth.extra!)).toEqual(['unboundClaims']);
    expect(writIdentityOf(auth)).toBeUndefined();
  });

  it('rejects a bad token with an error SDK v2 takes for its OAuthError (invalid_token)', async () => {
    const err = await verifier().verifyAccessToken(await mint('https://other.example.test/')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerifierError);
    expect(err instanceof OAuthErrorV2).toBe(true);
    expect((err as VerifierError).code).toBe('invalid_token');
    expect((err as VerifierError).toResponseObject()).toEqual({ error: 'invalid_token', error_description: expect.stringContaining('audience') });
  });

  it('fails at once on bad options', () => {
    expect(() => writTokenVerifier({ resource: 'nope', issuer: ISSUER, keys: jwks })).toThrow(/writTokenVerifier: "resource"/);
  });
});

describe('writBinding: the RFC 8705 binding after requireBearerAuth', () => {
  it('upgrades the AuthInfo to the full identity over the bound certificate', async () => {
    const auth = await verifier().verifyAccessToken(await mint());
    const out = await bind(auth, agentCert);
    expect(out.passed).toBe(true);
    expect(writIdentityOf(out.req.auth)).toMatchObject({ user: 'alice', tools: ['search'], taskId: 'task-1' });
    expect(out.req.auth!.extra).toMatchObject({ sub: 'alice', task_id: 'task-1', tools: ['search'], act: { sub: 'spiffe://ex.test/agent/assistant' }, cnf: { 'x5t#S256': expect.any(String) } });
    expect(out.req.auth!.scopes).toEqual(['search:read']);
    expect(out.req.writ?.user).toBe('alice');
  });

  it('refuses 401 invalid_token over another certificate, and without an AuthInfo', async () => {
    const auth = await verifier().verifyAccessToken(await mint());
    const other = await bind(auth, strangerCert);
    expect(other).toMatchObject({ passed: false, status: 401 });
    expect(other.headers['www-authenticate']).toMatch(/error="invalid_token", error_description="[^"]*another client certificate[^"]*", resource_metadata=/);
    expect(writIdentityOf(other.req.auth)).toBeUndefined();
    const none = await bind(undefined, agentCert);
    expect(none).toMatchObject({ passed: false, status: 401 });
    const forged = await bind({ token: 'x', extra: { writ: { user: 'mallory' } } }, agentCert);
    expect(forged).toMatchObject({ passed: false, status: 401 });
  });
});
