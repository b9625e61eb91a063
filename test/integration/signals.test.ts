import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';
import { scrape, valueOf } from '../support/metrics';

const work = mkdtempSync(join(tmpdir(), 'writ-signals-'));
const IDP = 'https://idp.signals.test';
const TX = 'https://ssf.signals.test';
const MCP = 'https://mcp.signals.test/files';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const POLICIES = `
@id("read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool);

@id("no-risky-users")
forbid (principal is Writ::User, action, resource) when { principal.risk == "medium" || principal.risk == "high" };
`;

let store: TestStore;
let broker: Broker;
let caPem: string;
let adminToken: string;
let idpKey: CryptoKey;
let txKey: CryptoKey;
let forger: CryptoKey;
let agent: { cert: string; key: string };

const post = (path: string, body: string, contentType: string, headers: Record<string, string> = {}, as?: { cert: string; key: string }) =>
  httpsRequest(`${broker.apiUrl}${path}`, { ca: caPem, method: 'POST', headers: { 'content-type': contentType, ...headers }, body, ...(as && { cert: as.cert, key: as.key }) }).then((r) => ({
    ...r,
    json: r.body ? JSON.parse(r.body) : undefined,
  }));
const admin = (path: string, body: unknown) => post(path, JSON.stringify(body), 'application/json', { authorization: `Bearer ${adminToken}` });

/** A Security Event Token from the test transmitter (RFC 8417). */
const set = (events: Record<string, unknown>, opts: { key?: CryptoKey; aud?: string; jti?: string } = {}) =>
  new SignJWT({ events })
    .setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'tx-1' })
    .setIssuer(TX)
    .setAudience(opts.aud ?? 'https://writ.signals.test')
    .setIssuedAt()
    .setJti(opts.jti ?? randomUUID())
    .sign(opts.key ?? txKey);
const deliver = (token: string, contentType = 'application/secevent+jwt') => post('/v1/signals', token, contentType);
const user = (sub: string) => ({ format: 'iss_sub', iss: IDP, sub });

/** A task token for `sub` in session `sid`, through the real exchange. */
async function taskToken(sub: string, sid: string, given?: string) {
  const idToken = given ?? await new SignJWT({ sid }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(idpKey);
  const form = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: idToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    resource: MCP,
    authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['read_file'], actions: ['read'] }]),
  });
  return post('/oauth2/token', form.toString(), 'application/x-www-form-urlencoded', {}, agent);
}
const active = async (token: string) => (await post('/oauth2/introspect', new URLSearchParams({ token }).toString(), 'application/x-www-form-urlencoded', { authorization: `Bearer ${adminToken}` })).json.active;

beforeAll(async () => {
  const idp = await generateKeyPair('ES256');
  const tx = await generateKeyPair('ES256');
  idpKey = idp.privateKey as CryptoKey;
  txKey = tx.privateKey as CryptoKey;
  forger = (await generateKeyPair('ES256')).privateKey as CryptoKey;
  writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'tx.json'), JSON.stringify({ keys: [{ ...(await exportJWK(tx.publicKey)), kid: 'tx-1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'writ.cedar'), POLICIES);
  store = await createTestStore();
  const config = testConfig(store, {
    WRIT_TRUST_DOMAIN: 'signals.test',
    WRIT_POLICY_FILE: join(work, 'writ.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
    WRIT_SIGNAL_TRANSMITTERS: JSON.stringify([{ issuer: TX, jwks_file: join(work, 'tx.json'), audience: 'https://writ.signals.test', algorithms: ['ES256'], subject_issuers: [IDP] }]),
  });
  broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
  await admin('/v1/admin/resources', { uri: MCP, spiffe_id: 'spiffe://signals.test/mcp/files', tools: [{ name: 'read_file', actions: ['read'], classification: 'internal' }] });
  const entry = await admin('/v1/admin/entries', { spiffe_id: 'spiffe://signals.test/agent' });
  const join1 = await admin('/v1/admin/join-tokens', { entry_id: entry.json.id });
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'a.key', '-out', 'a.csr', '-subj', '/CN=x'], { cwd: work });
  const attested = await post('/v1/attest', JSON.stringify({ attestor: 'join_token', evidence: { token: join1.json.token }, csr: readFileSync(join(work, 'a.csr'), 'utf8') }), 'application/json');
  agent = { cert: attested.json.svid, key: readFileSync(join(work, 'a.key'), 'utf8') };
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

describe('Shared Signals (RFC 8417 SETs, RFC 8935 push, CAEP)', () => {
  it('CAEP session-revoked ends that session\'s tokens and no other; a replay is acknowledged, not applied twice', async () => {
    const signedIn = await new SignJWT({ sid: 'session-1' }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('alice').setIssuedAt(Math.floor(Date.now() / 1000) - 5).setExpirationTime('10m').sign(idpKey);
    const s1 = await taskToken('alice', 'session-1', signedIn);
    const s2 = await taskToken('alice', 'session-2');
    const token = await set({ [`${CAEP}session-revoked`]: { subject: { format: 'complex', user: user('alice'), session: { format: 'opaque', id: 'session-1' } }, event_timestamp: 1_795_000_000 } });
    expect((await deliver(token)).status).toBe(202);
    expect(await active(s1.json.access_token)).toBe(false);
    expect(await active(s2.json.access_token)).toBe(true);
    // The session's ID token, still unexpired, buys nothing more.
    expect((await taskToken('alice', 'session-1', signedIn)).json.error).toBe('invalid_grant');
    expect((await deliver(token)).status).toBe(202);
    expect(await broker.db.prisma.auditEvent.count({ where: { type: 'signal.replayed' } })).toBe(1);
  });

  it('reaches a user named only by email (the subject token\'s email claim is kept with the lease)', async () => {
    const idToken = await new SignJWT({ sid: 'm-1', email: 'mallory@example.test' }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('mallory').setIssuedAt(Math.floor(Date.now() / 1000) - 5).setExpirationTime('10m').sign(idpKey);
    const t = await taskToken('mallory', 'm-1', idToken);
    expect(await active(t.json.access_token)).toBe(true);
    const res = await deliver(await set({ 'https://schemas.openid.net/secevent/risc/event-type/account-disabled': { subject: { format: 'email', email: 'mallory@example.test' } } }));
    expect(res.status).toBe(202);
    expect(await active(t.json.access_token)).toBe(false);
    expect((await taskToken('mallory', 'm-1', idToken)).json.error).toBe('invalid_grant');
  });

  it('CAEP credential-change ends everything the user holds', async () => {
    const t = await taskToken('bob', 'b-1');
    expect((await deliver(await set({ [`${CAEP}credential-change`]: { subject: user('bob'), credential_type: 'password', change_type: 'update' } }))).status).toBe(202);
    expect(await active(t.json.access_token)).toBe(false);
    const row = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'signal.received' }, orderBy: { seq: 'desc' } });
    expect(row).toMatchObject({ subject: 'bob', subjectIssuer: IDP });
  });

  it('CAEP risk-level-change: the level reaches policy on the next request, and HIGH revokes', async () => {
    const before = await taskToken('carol', 'c-1');
    expect(before.status).toBe(200);
    expect((await deliver(await set({ [`${CAEP}risk-level-change`]: { subject: user('carol'), current_level: 'MEDIUM', principal: 'USER' } }))).status).toBe(202);
    expect(await active(before.json.access_token)).toBe(true); // MEDIUM is below the revocation threshold
    const denied = await taskToken('carol', 'c-1');
    expect(denied.json.error).toBe('access_denied'); // policy forbids medium-risk users
    expect((await deliver(await set({ [`${CAEP}risk-level-change`]: { subject: user('carol'), current_level: 'HIGH' } }))).status).toBe(202);
    expect(await active(before.json.access_token)).toBe(false);
  });

  it.each([
    ['RISC account-disabled', 'https://schemas.openid.net/secevent/risc/event-type/account-disabled', 'frank'],
    ['RISC account-purged', 'https://schemas.openid.net/secevent/risc/event-type/account-purged', 'gina'],
  ])('%s ends everything the user holds', async (_, eventType, sub) => {
    const t = await taskToken(sub, `${sub}-1`);
    expect((await deliver(await set({ [eventType]: { subject: user(sub) } }))).status).toBe(202);
    expect(await active(t.json.access_token)).toBe(false);
  });

  it('CAEP assurance-level-change is recorded, not a revocation', async () => {
    const t = await taskToken('hana', 'h-1');
    const res = await deliver(await set({ [`${CAEP}assurance-level-change`]: { subject: user('hana'), namespace: 'NIST-AAL', current_level: 'nist-aal1' } }));
    expect(res.status).toBe(202);
    expect(await active(t.json.access_token)).toBe(true);
  });

  it('refuses an expired SET', async () => {
    const expired = await new SignJWT({ events: { [`${CAEP}credential-change`]: { subject: user('alice') } } })
      .setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'tx-1' }).setIssuer(TX).setAudience('https://writ.signals.test')
      .setIssuedAt(1_700_000_000).setExpirationTime(1_700_000_600).setJti(randomUUID()).sign(txKey);
    const res = await deliver(expired);
    expect(res.status).toBe(400);
    expect(res.json.err).toEqual(expect.any(String));
  });

  it('acknowledges and audits an unknown event type without acting on it', async () => {
    const res = await deliver(await set({ 'https://example.test/event/unknown': { subject: user('dave') } }));
    expect(res.status).toBe(202);
    const row = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'signal.received' }, orderBy: { seq: 'desc' } });
    expect(JSON.stringify(row!.details)).toContain('ignored');
  });

  it.each([
    ['a forged SET', async () => deliver(await set({ [`${CAEP}credential-change`]: { subject: user('alice') } }, { key: forger })), ['authentication_failed', 'invalid_key']],
    ['a SET for another audience', async () => deliver(await set({ [`${CAEP}credential-change`]: { subject: user('alice') } }, { aud: 'https://elsewhere.test' })), ['invalid_audience']],
    ['the wrong media type', async () => deliver(await set({ [`${CAEP}credential-change`]: { subject: user('alice') } }), 'application/json'), ['invalid_request']],
  ])('refuses %s with RFC 8935 §2.4 {err, description}, changing nothing', async (_, send, codes) => {
    const t = await taskToken('erin', 'e-1');
    const res = await send();
    expect(res.status).toBe(400);
    expect(codes).toContain(res.json.err);
    expect(res.json.description).toEqual(expect.any(String));
    expect(await active(t.json.access_token)).toBe(true);
    const row = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'signal.refused' }, orderBy: { seq: 'desc' } });
    expect(codes).toContain((row!.details as { err: string }).err);
  });
  it('counts every SET in /metrics as the audit trail records it: applied per event, replayed and refused per SET', async () => {
    const { samples } = await scrape(broker.opsUrl);
    const count = (type: string) => broker.db.prisma.auditEvent.count({ where: { type } });
    const sum = (outcome: string) => samples.filter((x) => x.name === 'writ_signals_total' && x.labels.outcome === outcome).reduce((n, x) => n + x.value, 0);
    expect([sum('replayed'), sum('refused')]).toEqual([await count('signal.replayed'), await count('signal.refused')]);
    const applied = (await broker.db.prisma.auditEvent.findMany({ where: { type: 'signal.received' } })).flatMap((r) => (r.details as { events: { kind: string; eventType: string }[] }).events);
    const byEvent = new Map<string, number>();
    for (const e of applied) {
      const label = e.kind === 'ignored' ? 'other' : e.eventType.slice(e.eventType.lastIndexOf('/') + 1);
      byEvent.set(label, (byEvent.get(label) ?? 0) + 1);
    }
    expect(byEvent.get('session-revoked')).toBeGreaterThanOrEqual(1);
    for (const [event, n] of byEvent) expect([event, valueOf(samples, 'writ_signals_total', { event, outcome: 'applied' })]).toEqual([event, n]);
    expect(valueOf(samples, 'writ_revocations_total', { handle: 'session' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(samples, 'writ_refusals_total', { route: '/v1/signals', error: 'invalid_audience' })).toBe(1);
  });
});
