import { generateKeyPairSync } from 'node:crypto';
import type { AuditEventInput } from '../audit';
import { ManualClock } from '../core/clock';
import type { Lease } from '../leases';
import type { TrustBundle } from '../spiffe/bundle';
import { InvalidClient, InvalidRequest } from './errors';
import { Introspection } from './introspection';
import { mintAccessToken, type AccessTokenSigningKey } from './sign';
import { TokenRevocation } from './revocation';

const ISSUER = 'https://writ.test';
const RESOURCE = 'https://mcp.test/github';
const RESOURCE_ID = 'spiffe://writ.test/mcp/github';
const CONNECTOR = 'spiffe://writ.test/connector/github';
const OTHER = 'spiffe://writ.test/connector/jira';
const clock = new ManualClock(Date.parse('2026-12-01T12:00:00Z'));
const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const key: AccessTokenSigningKey = { kid: 'k1', alg: 'ES256', privateKey: pair.privateKey };
const bundle = { current: async () => ({ jwtAuthorities: [{ kid: 'k1', publicJwk: pair.publicKey.export({ format: 'jwk' }) }] }) as unknown as TrustBundle };
const svid = (spiffeId: string) => ({ spiffeId, serial: `serial-${spiffeId}`, fingerprint: 'f' });
const lease = (spiffeId: string) => ({ id: 'l', spiffeId }) as Lease;

let token: string;
let jti: string;
beforeAll(async () => {
  const minted = await mintAccessToken(
    {
      issuer: ISSUER, subject: 'alice', audience: RESOURCE, clientId: CONNECTOR, clientCertificate: new Uint8Array([1, 2, 3]), taskId: '6f1c2b9e-0d5a-4b8e-9f7c-2a3b4c5d6e7f',
      authorizationDetails: [{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }],
      lifetime: { maximum: 300, certificateNotAfter: new Date(clock.now().getTime() + 3600_000), subjectTokenExpiresAt: new Date(clock.now().getTime() + 3600_000) },
    },
    key,
    clock,
    { bytes: (n) => new Uint8Array(n), uuid: () => '0b7e9a2c-41f6-4d5e-9b39-1c2d3e4f5a6b' },
  );
  token = minted.token;
  jti = minted.jti;
});

/** A token's lease, as the store keeps it: with the identity provider that names its user. */
const USER_ISSUER = 'https://idp.example.test';
const tokenLease = async (id: string) => ({ id, kind: 'access-token', spiffeId: 'spiffe://example.org/connector', subjectIssuer: USER_ISSUER }) as Lease;

function introspection(over: { tokenAlive?: () => Promise<boolean>; boundMs?: number } = {}) {
  const events: AuditEventInput[] = [];
  const service = new Introspection({
    issuer: ISSUER,
    leases: { activeSvid: async (serial) => (serial.startsWith('serial-') ? lease(serial.slice(7)) : undefined), tokenAlive: over.tokenAlive ?? (async () => true), get: tokenLease },
    resources: { get: async (uri) => (uri === RESOURCE ? ({ uri, spiffeId: RESOURCE_ID } as never) : undefined) },
    bundle,
    audit: async (e) => void events.push(e),
    clock,
    ...(over.boundMs !== undefined && { revocationBoundMs: over.boundMs }),
  });
  return { service, events };
}

describe('RFC 7662 token introspection', () => {
  it('§2.2: answers the token\'s claims to its resource while its lease is live', async () => {
    const { service } = introspection();
    await expect(service.introspect({ admin: false, svid: svid(RESOURCE_ID) }, { token })).resolves.toMatchObject({ active: true, token_type: 'Bearer', sub: 'alice', aud: RESOURCE, jti });
  });

  it('RFC 9449 §6.2: a DPoP-bound token is token_type DPoP with cnf.jkt as signed', async () => {
    const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
    const dpop = await mintAccessToken(
      {
        issuer: ISSUER, subject: 'alice', audience: RESOURCE, clientId: CONNECTOR, dpopJkt: jkt, taskId: '6f1c2b9e-0d5a-4b8e-9f7c-2a3b4c5d6e7f',
        authorizationDetails: [{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }],
        lifetime: { maximum: 300, certificateNotAfter: new Date(clock.now().getTime() + 3600_000), subjectTokenExpiresAt: new Date(clock.now().getTime() + 3600_000) },
      },
      key,
      clock,
      { bytes: (n) => new Uint8Array(n), uuid: () => '1b7e9a2c-41f6-4d5e-9b39-1c2d3e4f5a6b' },
    );
    const { service } = introspection();
    const answer = await service.introspect({ admin: false, svid: svid(RESOURCE_ID) }, { token: dpop.token });
    expect(answer).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });
    expect((answer as { cnf: object }).cnf).toEqual({ jkt });
  });

  it('§4: answers inactive to a caller that is not the token\'s resource, and audits the refusal', async () => {
    const { service, events } = introspection();
    await expect(service.introspect({ admin: false, svid: svid(OTHER) }, { token })).resolves.toEqual({ active: false });
    expect(events).toEqual([{ type: 'introspection.refused', subject: 'alice', subjectIssuer: USER_ISSUER, actor: OTHER, details: { jti, aud: RESOURCE, reason: 'not the token\'s resource' } }]);
  });

  it('answers an admin about any token, and inactive once the lease is revoked', async () => {
    await expect(introspection().service.introspect({ admin: true, principal: 'admin' }, { token })).resolves.toMatchObject({ active: true });
    await expect(introspection({ tokenAlive: async () => false }).service.introspect({ admin: true, principal: 'admin' }, { token })).resolves.toEqual({ active: false });
  });

  it('fails closed: a database that cannot answer, or not within the revocation bound, means inactive', async () => {
    await expect(introspection({ tokenAlive: async () => Promise.reject(new Error('connection refused')) }).service.introspect({ admin: true, principal: 'admin' }, { token })).resolves.toEqual({ active: false });
    await expect(introspection({ tokenAlive: () => new Promise<boolean>(() => undefined), boundMs: 5 }).service.introspect({ admin: true, principal: 'admin' }, { token })).resolves.toEqual({ active: false });
  });

  it('§2.1: refuses a caller without a live SVID (invalid_client) and a request without a token (invalid_request)', async () => {
    const { service } = introspection();
    await expect(service.introspect({ admin: false, svid: undefined }, { token })).rejects.toBeInstanceOf(InvalidClient);
    await expect(service.introspect({ admin: false, svid: { ...svid(RESOURCE_ID), serial: 'revoked' } }, { token })).rejects.toBeInstanceOf(InvalidClient);
    await expect(service.introspect({ admin: true, principal: 'admin' }, { token: [token, token] })).rejects.toBeInstanceOf(InvalidRequest);
  });

  it('answers inactive for a token that does not verify', async () => {
    await expect(introspection().service.introspect({ admin: true, principal: 'admin' }, { token: `${token.slice(0, -4)}AAAA` })).resolves.toEqual({ active: false });
  });
});

describe('RFC 7009 token revocation', () => {
  function revocation() {
    const events: AuditEventInput[] = [];
    const revoked: unknown[] = [];
    const service = new TokenRevocation({
      issuer: ISSUER,
      leases: { activeSvid: async (serial) => (serial.startsWith('serial-') ? lease(serial.slice(7)) : undefined), get: tokenLease },
      revocations: { revoke: async (selector, reason, _tx, actor, event) => (revoked.push({ selector, reason, actor, event: event?.(1) }), 1) },
      bundle,
      audit: async (e) => void events.push(e),
      clock,
    });
    return { service, events, revoked };
  }

  it('§2.1: revokes for the token\'s own connector, with its audit event committed by the revocation', async () => {
    const { service, revoked, events } = revocation();
    await service.revoke({ admin: false, svid: svid(CONNECTOR) }, { token });
    expect(revoked).toEqual([{ selector: { jti }, reason: `revoked by ${CONNECTOR}`, actor: CONNECTOR, event: { type: 'token.revoked', subject: 'alice', subjectIssuer: USER_ISSUER, actor: CONNECTOR, details: { jti, taskId: '6f1c2b9e-0d5a-4b8e-9f7c-2a3b4c5d6e7f' } } }]);
    expect(events).toEqual([]);
  });

  it('§2.1: refuses (and audits) another connector\'s request, answering it like any other', async () => {
    const { service, revoked, events } = revocation();
    await expect(service.revoke({ admin: false, svid: svid(OTHER) }, { token })).resolves.toBeUndefined();
    expect(revoked).toEqual([]);
    expect(events).toEqual([{ type: 'token.revoke_refused', subject: 'alice', subjectIssuer: USER_ISSUER, actor: OTHER, details: { jti, reason: 'not the token\'s connector' } }]);
  });

  it('§2.2: a token that does not verify names nothing to revoke', async () => {
    const { service, revoked } = revocation();
    await service.revoke({ admin: true, principal: 'admin' }, { token: 'not.a.token' });
    expect(revoked).toEqual([]);
  });
});
