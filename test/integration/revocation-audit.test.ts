/**
 * A state change and its audit event commit together: when the audit event cannot be written,
 * the revocation does not happen either (and the caller hears of it), so no revocation is ever
 * left without its record. Task end, RFC 7009 revocation and admin revocations alike.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import { systemClock, systemRandom } from '../../src/core';
import { Revocations, TaskStore } from '../../src/leases';
import { mintAccessToken } from '../../src/tokens/sign';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';

const CONNECTOR = 'spiffe://ra.test/agent/a';
let store: TestStore;
let broker: Broker;
let issuer: string;

const crash = async () => {
  throw new Error('the process died before the audit event was written');
};

async function taskWithToken(): Promise<{ taskId: string; jti: string }> {
  const taskId = randomUUID();
  const jti = randomUUID();
  await broker.db.prisma.task.create({ data: { id: taskId, subject: 'alice', subjectIssuer: 'https://idp.ra.test', connector: CONNECTOR, subjectGroups: [] } });
  await broker.db.prisma.lease.create({
    data: { id: jti, kind: 'access-token', spiffeId: CONNECTOR, subject: 'alice', subjectIssuer: 'https://idp.ra.test', taskId, audience: ['https://mcp.ra.test'], issuedAt: new Date(), expiresAt: new Date(Date.now() + 300_000) },
  });
  return { taskId, jti };
}
const revokedAt = async (jti: string) => (await broker.db.prisma.lease.findUnique({ where: { id: jti } }))!.revokedAt;

beforeAll(async () => {
  store = await createTestStore();
  const config = testConfig(store, { WRIT_TRUST_DOMAIN: 'ra.test', WRIT_ADMIN_TOKEN: 'ra-admin-token-0123456789abcdef' });
  issuer = config.issuer;
  broker = await startBroker(config, { logger: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await broker?.shutdown();
  await store?.drop();
});

describe('a revocation and its audit event commit together', () => {
  it('task end: when its audit event cannot be written, the task is not ended and its tokens stay as they were', async () => {
    const { taskId, jti } = await taskWithToken();
    const tasks = new TaskStore(broker.db.prisma, { clock: systemClock, random: systemRandom, audit: crash });
    await expect(tasks.end(taskId, CONNECTOR)).rejects.toThrow('the process died');
    expect((await broker.db.prisma.task.findUnique({ where: { id: taskId } }))!.endedAt).toBeNull();
    expect(await revokedAt(jti)).toBeNull();

    // Through the broker, the task ends and its event is in the trail.
    await broker.tasks.end(taskId, CONNECTOR);
    expect(await revokedAt(jti)).not.toBeNull();
    const events = await broker.db.prisma.auditEvent.findMany({ where: { type: 'task.ended' } });
    expect(events.map((e) => (e.details as { taskId: string }).taskId)).toContain(taskId);
  });

  it('revocation by selector (admin, RFC 7009): when its audit event cannot be written, nothing is revoked and no marker is left', async () => {
    const { jti } = await taskWithToken();
    const markers = await broker.db.prisma.revocation.count();
    const revocations = new Revocations(broker.db.prisma, systemClock, crash);
    await expect(revocations.revoke({ jti }, 'incident', undefined, 'admin')).rejects.toThrow('the process died');
    await expect(revocations.revoke({ jti }, 'incident', undefined, 'admin', () => ({ type: 'token.revoked', actor: 'admin' }))).rejects.toThrow('the process died');
    expect(await revokedAt(jti)).toBeNull();
    expect(await broker.db.prisma.revocation.count()).toBe(markers);
  });

  it('RFC 7009 through the broker: the token is revoked and token.revoked recorded before the 200', async () => {
    const taskId = randomUUID();
    const caPem = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
    const minted = await mintAccessToken(
      {
        issuer,
        subject: 'alice',
        audience: 'https://mcp.ra.test',
        clientId: CONNECTOR,
        clientCertificate: new Uint8Array(new X509Certificate(caPem).raw),
        authorizationDetails: [{ type: 'mcp_tool', tools: ['read_file'], actions: ['read'] }],
        taskId,
        lifetime: { maximum: 300, certificateNotAfter: new Date(Date.now() + 600_000), subjectTokenExpiresAt: new Date(Date.now() + 600_000) },
      },
      broker.jwtKey,
      systemClock,
      systemRandom,
    );
    await broker.leases.record({ id: minted.jti, kind: 'access-token', spiffeId: CONNECTOR, subject: 'alice', taskId, audience: ['https://mcp.ra.test'], issuedAt: minted.issuedAt, expiresAt: minted.expiresAt });
    const res = await httpsRequest(`${broker.apiUrl}/oauth2/revoke`, {
      ca: caPem,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Bearer ra-admin-token-0123456789abcdef' },
      body: new URLSearchParams({ token: minted.token }).toString(),
    });
    expect(res.status).toBe(200);
    expect(await revokedAt(minted.jti)).not.toBeNull();
    const events = await broker.db.prisma.auditEvent.findMany({ where: { type: 'token.revoked' } });
    expect(events.map((e) => (e.details as { jti: string }).jti)).toContain(minted.jti);
  });
});
