/**
 * Revocation wins every race. Each kind of revocation is sent while 16 clients × 4 requests
 * (exchanges, chained exchanges, SVID renewals, attestations, JWT-SVIDs) are in flight through
 * two replicas on one PostgreSQL (one broker on the embedded database). Once the revocation has
 * been answered 2xx, nothing it names may be active on either replica, including what the
 * requests in flight were issued, and requests that come after it get nothing it forbids.
 *
 * RACE_ROUNDS sets the rounds per kind (CI: 3; `npm run test:races`: 50).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pino from 'pino';
import { Pool } from 'undici';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { openssl } from '../support/openssl';

const ROUNDS = Number(process.env.RACE_ROUNDS ?? 3);
const CLIENTS = 16;
const PER_CLIENT = 4;
const TD = 'race.test';
const IDP = 'https://idp.race.test';
const TX = 'https://ssf.race.test';
const TOOLS = 'https://mcp.race.test/tools';
const DOWN = 'https://mcp.race.test/down';
const SERVER = `spiffe://${TD}/mcp/tools`;
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const ADMIN = 'race-admin-token-0123456789abcdef';
const POLICIES = `
@id("read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool);

@id("tools-may-call-down")
permit (principal, action == Writ::Action::"delegate", resource in Writ::Server::"${DOWN}")
when { principal == Writ::Connector::"${SERVER}" };
`;

const work = mkdtempSync(join(tmpdir(), 'writ-races-'));
const logger = pino({ level: 'silent' });
let store: TestStore;
let replicas: Broker[];
let caPem: string;
let idpKey: CryptoKey;
let txKey: CryptoKey;
let csr: string;
let csrKey: string;
type Svid = { cert: string; key: string };
let server: Svid;
const pools = new Map<string, Pool>();
/** Per kind: rounds run, credentials issued and verified dead or asked for after, requests refused while the revocation ran. */
const tally = new Map<string, { rounds: number; issued: number; lostRace: number }>();
function count(kind: string, outcomes: Outcome[], timing: Timing): void {
  const t = tally.get(kind) ?? { rounds: 0, issued: 0, lostRace: 0 };
  t.rounds++;
  t.issued += outcomes.filter((o) => o.credential).length;
  t.lostRace += outcomes.filter((o) => !o.credential && o.sentAt < timing.ackAt && o.answeredAt > timing.sentAt).length;
  tally.set(kind, t);
}

interface Answer {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A keep-alive pool per replica and client certificate, as a connector holds one. */
function pool(replica: Broker, as?: Svid): Pool {
  const key = `${replica.apiUrl} ${as?.cert ?? ''}`;
  let p = pools.get(key);
  if (!p) {
    p = new Pool(replica.apiUrl, { connections: 8, connect: { ca: caPem, ...(as && { cert: as.cert, key: as.key }) } });
    pools.set(key, p);
  }
  return p;
}

async function post(replica: Broker, path: string, body: string, contentType: string, opts: { as?: Svid; bearer?: string } = {}): Promise<Answer> {
  const res = await pool(replica, opts.as).request({
    path,
    method: 'POST',
    headers: { 'content-type': contentType, ...(opts.bearer && { authorization: `Bearer ${opts.bearer}` }) },
    body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}
const admin = (path: string, body: unknown, replica = replicas[0]!) => post(replica, path, JSON.stringify(body), 'application/json', { bearer: ADMIN });
const form = (replica: Broker, path: string, params: Record<string, string>, as?: Svid) => post(replica, path, new URLSearchParams(params).toString(), 'application/x-www-form-urlencoded', { as });

const idToken = (sub: string, sid: string) =>
  new SignJWT({ sid, email: `${sub}@race.test` })
    .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
    .setIssuer(IDP)
    .setAudience('writ')
    .setSubject(sub)
    .setIssuedAt(Math.floor(Date.now() / 1000) - 2)
    .setExpirationTime('10m')
    .sign(idpKey);

const securityEvent = (events: Record<string, unknown>) =>
  new SignJWT({ events }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'tx-1' }).setIssuer(TX).setAudience('https://writ.race.test').setIssuedAt().setJti(randomUUID()).sign(txKey);

const exchangeParams = (subjectToken: string, extra: Record<string, string> = {}) => ({
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: subjectToken,
  subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
  resource: TOOLS,
  authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['read_file'], actions: ['read'] }]),
  ...extra,
});
const chainedParams = (parent: string) => ({
  ...exchangeParams(parent),
  subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  resource: DOWN,
  authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['lookup'], actions: ['read'] }]),
});

/** A new connector: its entry and a join-token attestation through the first replica. */
async function connector(name: string): Promise<{ spiffeId: string; entryId: string; svid: Svid }> {
  const spiffeId = `spiffe://${TD}/agent/${name}`;
  const entry = await admin('/v1/admin/entries', { spiffe_id: spiffeId });
  const svid = await attest(replicas[0]!, entry.json.id);
  if (svid.status !== 201) throw new Error(`attestation failed: ${svid.status} ${JSON.stringify(svid.json)}`);
  return { spiffeId, entryId: entry.json.id, svid: { cert: svid.json.svid, key: csrKey } };
}
async function attest(replica: Broker, entryId: string, token?: string): Promise<Answer> {
  const joinToken = token ?? (await admin('/v1/admin/join-tokens', { entry_id: entryId })).json.token;
  return post(replica, '/v1/attest', JSON.stringify({ attestor: 'join_token', evidence: { token: joinToken }, csr }), 'application/json');
}

const active = async (replica: Broker, token: string) => (await post(replica, '/oauth2/introspect', new URLSearchParams({ token }).toString(), 'application/x-www-form-urlencoded', { bearer: ADMIN })).json.active as boolean;

/** What one request in the load got. */
interface Outcome {
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly status: number;
  readonly kind: string;
  /** An access token, or the PEM of an X.509-SVID. */
  readonly credential?: string;
}

type Request = (replica: Broker, i: number) => Promise<{ kind: string; answer: Answer; credential?: string }>;

/** When the revocation was sent and when its 2xx answer arrived. */
interface Timing {
  readonly sentAt: number;
  readonly ackAt: number;
}

/**
 * Runs CLIENTS × PER_CLIENT requests, alternating replicas; sends `revoke` once `after` of them
 * have been answered, so some were issued before it and the rest are in flight or follow.
 */
async function race(request: Request, revoke: () => Promise<Answer>, after: number): Promise<{ outcomes: Outcome[] } & Timing> {
  let answered = 0;
  let fire!: () => void;
  const fired = new Promise<void>((r) => (fire = r));
  const outcomes: Outcome[] = [];
  const clients = Array.from({ length: CLIENTS }, async (_, c) => {
    for (let k = 0; k < PER_CLIENT; k++) {
      const i = c * PER_CLIENT + k;
      const sentAt = performance.now();
      const { kind, answer, credential } = await request(replicas[i % replicas.length]!, i);
      outcomes.push({ sentAt, answeredAt: performance.now(), status: answer.status, kind, ...(answer.status < 300 && credential !== undefined && { credential }) });
      if (++answered === after) fire();
    }
  });
  await fired;
  const sentAt = performance.now();
  const ack = await revoke();
  const ackAt = performance.now();
  expect(ack.status).toBeLessThan(300);
  await Promise.all(clients);
  expect(outcomes.filter((o) => o.status >= 500)).toEqual([]);
  return { outcomes, sentAt, ackAt };
}

const jtiOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { jti: string }).jti;

/**
 * No token the load received survives the revocation: each is inactive on every replica and its
 * lease row revoked, unless (for a revocation of what exists, `final` false) its request began
 * after the revocation was known on its replica (its lease's epoch is at least the marker's), which
 * needs it to have been answered after the revocation was sent.
 */
async function expectNoSurvivors(outcomes: Outcome[], timing: Timing, final: boolean): Promise<void> {
  const tokens = outcomes.filter((o) => o.credential && o.kind !== 'x509-svid');
  const marker = await replicas[0]!.db.prisma.revocation.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
  const leases = new Map((await replicas[0]!.db.prisma.lease.findMany({ where: { id: { in: tokens.map((o) => jtiOf(o.credential!)) } } })).map((l) => [l.id, l]));
  const survivors: string[] = [];
  for (const o of tokens) {
    const jti = jtiOf(o.credential!);
    const lease = leases.get(jti);
    const alive = [];
    for (const replica of replicas) if (await active(replica, o.credential!)) alive.push(replica.apiUrl);
    if (alive.length === 0 && lease?.revokedAt) continue;
    const askedAfter = !final && marker !== null && lease?.epoch !== null && lease?.epoch !== undefined && lease.epoch >= marker.seq && o.answeredAt > timing.sentAt;
    if (!askedAfter) survivors.push(`${jti} (active on ${alive.length} replicas, lease ${lease?.revokedAt ? 'revoked' : 'live'}, epoch ${lease?.epoch} < ${marker?.seq})`);
  }
  expect(survivors).toEqual([]);
}

/** After it, requests get no credential at all (the revocation holds for what comes later too). */
const expectRefusedAfter = (outcomes: Outcome[], timing: Timing) => expect(outcomes.filter((o) => o.sentAt > timing.ackAt && o.credential)).toEqual([]);

/** How many answers before the revocation is sent: a few, up to half the load. */
const pick = () => 2 + Math.floor(Math.random() * ((CLIENTS * PER_CLIENT) / 2 - 2));

beforeAll(async () => {
  const idp = await generateKeyPair('ES256');
  const tx = await generateKeyPair('ES256');
  idpKey = idp.privateKey as CryptoKey;
  txKey = tx.privateKey as CryptoKey;
  writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'tx.json'), JSON.stringify({ keys: [{ ...(await exportJWK(tx.publicKey)), kid: 'tx-1', alg: 'ES256' }] }));
  writeFileSync(join(work, 'writ.cedar'), POLICIES);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'w.key', '-out', 'w.csr', '-subj', '/CN=x'], { cwd: work });
  csr = readFileSync(join(work, 'w.csr'), 'utf8');
  csrKey = readFileSync(join(work, 'w.key'), 'utf8');
  store = await createTestStore();
  const env = {
    WRIT_TRUST_DOMAIN: TD,
    WRIT_ADMIN_TOKEN: ADMIN,
    WRIT_ISSUER: 'https://writ.race.test',
    WRIT_POLICY_FILE: join(work, 'writ.cedar'),
    WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
    WRIT_SIGNAL_TRANSMITTERS: JSON.stringify([{ issuer: TX, jwks_file: join(work, 'tx.json'), audience: 'https://writ.race.test', algorithms: ['ES256'], subject_issuers: [IDP] }]),
  };
  // Two replicas on one PostgreSQL share the CA directory (one broker on the embedded database).
  replicas = [await startBroker(testConfig(store, env), { logger })];
  if (usingPostgres()) replicas.push(await startBroker(testConfig(store, env), { logger }));
  caPem = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');
  await admin('/v1/admin/resources', { uri: TOOLS, spiffe_id: SERVER, tools: [{ name: 'read_file', actions: ['read'], classification: 'internal' }] });
  await admin('/v1/admin/resources', { uri: DOWN, spiffe_id: `spiffe://${TD}/mcp/down`, tools: [{ name: 'lookup', actions: ['read'], classification: 'internal' }] });
  const entry = await admin('/v1/admin/entries', { spiffe_id: SERVER });
  server = { cert: (await attest(replicas[0]!, entry.json.id)).json.svid, key: csrKey };
});
afterAll(async () => {
  const rows = [...tally].map(([kind, t]) => `  ${kind}: ${t.rounds} rounds, ${t.issued} credentials issued, ${t.lostRace} requests in flight refused, 0 survivors`);
  if (rows.length > 0) process.stdout.write(`races (${replicas.length} replica${replicas.length > 1 ? 's' : ''}):\n${rows.join('\n')}\n`);
  await Promise.all([...pools.values()].map((p) => p.close()));
  for (const r of replicas ?? []) await r.shutdown();
  await store?.drop();
});

const exchangeWith = (as: Svid, subjectToken: string, extra?: Record<string, string>): Request => async (replica) => {
  const answer = await form(replica, '/oauth2/token', exchangeParams(subjectToken, extra), as);
  return { kind: 'access-token', answer, credential: answer.json?.access_token };
};

/** A fresh connector, user and session per round, so rounds are independent. */
async function round(r: number, kind: string) {
  const name = `${kind.replace(/\W/g, '-')}-${r}-${randomUUID().slice(0, 8)}`;
  const agent = await connector(name);
  const user = `user-${name}`;
  const sid = `sid-${name}`;
  const subjectToken = await idToken(user, sid);
  const first = await form(replicas[0]!, '/oauth2/token', exchangeParams(subjectToken), agent.svid);
  expect(first.status).toBe(200);
  return { name, agent, user, sid, subjectToken, parent: first.json.access_token as string, taskId: first.json.task_id as string };
}

const signal = (events: Record<string, unknown>, replica: Broker) => async () => post(replica, '/v1/signals', await securityEvent(events), 'application/secevent+jwt');
const iss = (sub: string) => ({ format: 'iss_sub', iss: IDP, sub });

/** Revocations whose effect on tokens is a selector over what exists (later requests may obtain new ones). */
type Kind = {
  name: string;
  /** Whether requests after the acknowledgement must get nothing either. */
  final: boolean;
  load: (ctx: Awaited<ReturnType<typeof round>>) => Request;
  revoke: (ctx: Awaited<ReturnType<typeof round>>, replica: Broker) => () => Promise<Answer>;
};

const byExchange = (ctx: Awaited<ReturnType<typeof round>>) => exchangeWith(ctx.agent.svid, ctx.subjectToken);
const intoTask = (ctx: Awaited<ReturnType<typeof round>>) => exchangeWith(ctx.agent.svid, ctx.subjectToken, { task_id: ctx.taskId });
const chained = (ctx: Awaited<ReturnType<typeof round>>): Request => async (replica) => {
  const answer = await form(replica, '/oauth2/token', chainedParams(ctx.parent), server);
  return { kind: 'access-token', answer, credential: answer.json?.access_token };
};

const KINDS: Kind[] = [
  { name: 'task end', final: true, load: intoTask, revoke: (c, r) => () => post(r, `/v1/tasks/${c.taskId}/end`, '{}', 'application/json', { as: c.agent.svid }) },
  { name: '/oauth2/revoke of the parent of chained exchanges', final: true, load: chained, revoke: (c, r) => () => form(r, '/oauth2/revoke', { token: c.parent }, c.agent.svid) },
  { name: 'admin revocation by jti (chained in flight)', final: true, load: chained, revoke: (c, r) => () => admin('/v1/admin/revocations', { jti: jtiOf(c.parent), reason: 'race' }, r) },
  { name: 'admin revocation by task', final: false, load: intoTask, revoke: (c, r) => () => admin('/v1/admin/revocations', { task_id: c.taskId, reason: 'race' }, r) },
  { name: 'admin revocation by user', final: true, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { user: { issuer: IDP, subject: c.user }, reason: 'race' }, r) },
  { name: 'admin revocation by session', final: true, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { session: { issuer: IDP, sid: c.sid }, reason: 'race' }, r) },
  { name: 'admin revocation by email', final: true, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { email: { issuer: IDP, email: `${c.user}@race.test` }, reason: 'race' }, r) },
  { name: 'admin revocation by connector', final: true, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { connector: c.agent.spiffeId, reason: 'race' }, r) },
  { name: 'admin revocation by connector prefix', final: true, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { connector: `${c.agent.spiffeId}/`.replace(/[^/]+\/$/, ''), reason: 'race' }, r) },
  { name: 'admin revocation by audience', final: false, load: byExchange, revoke: (_c, r) => () => admin('/v1/admin/revocations', { audience: TOOLS, reason: 'race' }, r) },
  { name: 'admin revocation by user and connector', final: false, load: byExchange, revoke: (c, r) => () => admin('/v1/admin/revocations', { user: { issuer: IDP, subject: c.user }, connector: c.agent.spiffeId, reason: 'race' }, r) },
  { name: 'CAEP session-revoked', final: true, load: byExchange, revoke: (c, r) => signal({ [`${CAEP}session-revoked`]: { subject: { format: 'complex', user: iss(c.user), session: { format: 'opaque', id: c.sid } } } }, r) },
  { name: 'CAEP credential-change', final: true, load: byExchange, revoke: (c, r) => signal({ [`${CAEP}credential-change`]: { subject: iss(c.user), credential_type: 'password', change_type: 'update' } }, r) },
  { name: 'RISC account-disabled', final: true, load: byExchange, revoke: (c, r) => signal({ [`${RISC}account-disabled`]: { subject: iss(c.user) } }, r) },
  { name: 'RISC account-purged', final: true, load: byExchange, revoke: (c, r) => signal({ [`${RISC}account-purged`]: { subject: iss(c.user) } }, r) },
  { name: 'CAEP risk-level-change to HIGH', final: true, load: byExchange, revoke: (c, r) => signal({ [`${CAEP}risk-level-change`]: { subject: iss(c.user), current_level: 'HIGH', principal: 'USER' } }, r) },
];

describe('an acknowledged revocation leaves nothing alive, whatever was in flight', () => {
  it.each(KINDS.map((k) => [k.name, k] as const))('%s', async (_, kind) => {
    for (let r = 0; r < ROUNDS; r++) {
      const ctx = await round(r, kind.name);
      const { outcomes, ...timing } = await race(kind.load(ctx), kind.revoke(ctx, replicas[r % replicas.length]!), pick());
      await expectNoSurvivors(outcomes, timing, kind.final);
      if (kind.final) expectRefusedAfter(outcomes, timing);
      count(kind.name, outcomes, timing);
    }
  });

  it('the kill switch: exchanges, chained exchanges, renewals, attestations and JWT-SVIDs in flight leave nothing, and enable revives none of it', async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const ctx = await round(r, 'kill switch');
      // Join tokens for the attestations in flight are made beforehand.
      const joinTokens = await Promise.all(Array.from({ length: CLIENTS * PER_CLIENT }, async () => (await admin('/v1/admin/join-tokens', { entry_id: ctx.agent.entryId })).json.token as string));
      const mixed: Request = async (replica, i) => {
        switch (i % 5) {
          case 0:
            return exchangeWith(ctx.agent.svid, ctx.subjectToken)(replica, i);
          case 4:
            return chained(ctx)(replica, i); // by the MCP server, from a token the connector holds
          case 1: {
            const answer = await post(replica, '/v1/svid/renew', JSON.stringify({ csr }), 'application/json', { as: ctx.agent.svid });
            return { kind: 'x509-svid', answer, credential: answer.json?.svid };
          }
          case 2: {
            const answer = await attest(replica, ctx.agent.entryId, joinTokens[i]);
            return { kind: 'x509-svid', answer, credential: answer.json?.svid };
          }
          default: {
            const answer = await post(replica, '/v1/jwt-svid', JSON.stringify({ audience: ['https://mcp.race.test'] }), 'application/json', { as: ctx.agent.svid });
            return { kind: 'jwt-svid', answer, credential: answer.json?.token };
          }
        }
      };
      const replica = replicas[r % replicas.length]!;
      const { outcomes, ...timing } = await race(mixed, () => admin(`/v1/admin/connectors/${encodeURIComponent(ctx.agent.spiffeId)}/disable`, { reason: 'race' }, replica), pick());
      expectRefusedAfter(outcomes, timing);
      // Nothing the connector holds is live: tokens, chained tokens, X.509-SVIDs and JWT-SVIDs.
      const live = await replicas[0]!.db.prisma.lease.findMany({ where: { spiffeId: ctx.agent.spiffeId, revokedAt: null, expiresAt: { gt: new Date() } }, select: { id: true, kind: true } });
      expect(live).toEqual([]);
      await expectNoSurvivors(outcomes.filter((o) => o.kind === 'access-token'), timing, true);
      count('kill switch', outcomes, timing);

      // Enabled again, the connector must attest anew: no SVID it got in the race authenticates anything.
      expect((await admin(`/v1/admin/connectors/${encodeURIComponent(ctx.agent.spiffeId)}/enable`, { reason: 'race over' })).status).toBe(200);
      const svids = outcomes.filter((o) => o.kind === 'x509-svid' && o.credential);
      for (const [i, o] of svids.entries()) {
        const held = { cert: o.credential!, key: csrKey };
        const answer = await form(replicas[i % replicas.length]!, '/oauth2/token', exchangeParams(ctx.subjectToken), held);
        expect([answer.status, answer.json.error]).toEqual([401, 'invalid_client']);
      }
      for (const p of [...pools.entries()].filter(([k]) => svids.some((o) => k.endsWith(o.credential!)))) {
        await p[1].close();
        pools.delete(p[0]);
      }
    }
  });
});
