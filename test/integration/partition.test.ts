/**
 * A silent partition: replica B reaches PostgreSQL through a TCP relay that, when frozen, stops
 * forwarding without closing anything (no RST, no FIN: what a dropped route or a blackholing
 * firewall looks like). A token revoked through replica A must not be answered active by B later
 * than the revocation bound after the revocation was acknowledged; past the bound B reads the
 * database, and when that does not answer within the bound, introspection says inactive and
 * mTLS routes refuse.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
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

const BOUND_MS = 1000; // the default of WRIT_REVOCATION_BOUND_MS
const TD = 'partition.test';
const IDP = 'https://idp.partition.test';
const TOOLS = 'https://mcp.partition.test/tools';
const ADMIN = 'partition-admin-token-0123456789';
const work = mkdtempSync(join(tmpdir(), 'writ-partition-'));
const logger = pino({ level: 'silent' });

/** A TCP relay to PostgreSQL that can be frozen: sockets stay open, bytes stop moving both ways until it thaws. */
class SilentRelay {
  readonly #sockets = new Set<Socket>();
  #frozen = false;
  private constructor(private readonly server: Server) {}

  static async start(host: string, port: number): Promise<SilentRelay> {
    const relay: SilentRelay = new SilentRelay(
      createServer((inbound) => {
        const outbound = connect(port, host);
        for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
          relay.#sockets.add(from);
          from.pipe(to);
          from.on('error', () => to.destroy());
          from.on('close', () => relay.#sockets.delete(from));
          if (relay.#frozen) from.pause();
        }
      }),
    );
    await new Promise<void>((r) => relay.server.listen(0, '127.0.0.1', r));
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  freeze(): void {
    this.#frozen = true;
    for (const s of this.#sockets) s.pause();
  }

  thaw(): void {
    this.#frozen = false;
    for (const s of this.#sockets) s.resume();
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.server.close();
  }
}

const describePg = usingPostgres() ? describe : describe.skip;

describePg('a silently partitioned replica holds the revocation bound', () => {
  let store: TestStore;
  let relay: SilentRelay;
  let a: Broker;
  let b: Broker;
  let caPem: string;
  let agent: { cert: string; key: string };
  let idpKey: CryptoKey;
  const pools: Pool[] = [];

  const pool = (broker: Broker, as?: { cert: string; key: string }) => {
    const p = new Pool(broker.apiUrl, { connections: 4, connect: { ca: caPem, ...(as && { cert: as.cert, key: as.key }) } });
    pools.push(p);
    return p;
  };
  const post = async (p: Pool, path: string, body: string, contentType: string, bearer?: string) => {
    const res = await p.request({ path, method: 'POST', headers: { 'content-type': contentType, ...(bearer && { authorization: `Bearer ${bearer}` }) }, body });
    const text = await res.body.text();
    return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    const idp = await generateKeyPair('ES256');
    idpKey = idp.privateKey as CryptoKey;
    writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256' }] }));
    writeFileSync(join(work, 'writ.cedar'), '@id("read")\npermit (principal, action == Writ::Action::"read", resource is Writ::Tool);\n');
    store = await createTestStore();
    const env = {
      WRIT_TRUST_DOMAIN: TD,
      WRIT_ADMIN_TOKEN: ADMIN,
      WRIT_ISSUER: 'https://writ.partition.test',
      WRIT_POLICY_FILE: join(work, 'writ.cedar'),
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
    };
    a = await startBroker(testConfig(store, env), { logger });
    const target = new URL(store.databaseUrl!);
    relay = await SilentRelay.start(target.hostname, Number(target.port || 5432));
    const via = new URL(store.databaseUrl!);
    via.host = `127.0.0.1:${relay.port}`;
    b = await startBroker({ ...testConfig(store, env), databaseUrl: via.toString() }, { logger });
    caPem = readFileSync(join(store.dir, 'certs', 'ca.crt'), 'utf8');

    const admin = pool(a);
    await post(admin, '/v1/admin/resources', JSON.stringify({ uri: TOOLS, spiffe_id: `spiffe://${TD}/mcp/tools`, tools: [{ name: 'read_file', actions: ['read'], classification: 'internal' }] }), 'application/json', ADMIN);
    const entry = await post(admin, '/v1/admin/entries', JSON.stringify({ spiffe_id: `spiffe://${TD}/agent` }), 'application/json', ADMIN);
    const joinToken = await post(admin, '/v1/admin/join-tokens', JSON.stringify({ entry_id: entry.json.id }), 'application/json', ADMIN);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'a.key', '-out', 'a.csr', '-subj', '/CN=x'], { cwd: work });
    const attested = await post(admin, '/v1/attest', JSON.stringify({ attestor: 'join_token', evidence: { token: joinToken.json.token }, csr: readFileSync(join(work, 'a.csr'), 'utf8') }), 'application/json');
    agent = { cert: attested.json.svid, key: readFileSync(join(work, 'a.key'), 'utf8') };
  });
  afterAll(async () => {
    relay?.thaw();
    await Promise.all(pools.map((p) => p.close()));
    await b?.shutdown();
    await a?.shutdown();
    relay?.close();
    await store?.drop();
  });

  it(`answers inactive no later than ${BOUND_MS} ms after a revocation it could not hear of, and its mTLS routes refuse`, async () => {
    const idToken = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(idpKey);
    const exchanged = await post(
      pool(a, agent),
      '/oauth2/token',
      new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: idToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        resource: TOOLS,
        authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['read_file'], actions: ['read'] }]),
      }).toString(),
      'application/x-www-form-urlencoded',
    );
    expect(exchanged.status).toBe(200);
    const token = exchanged.json.access_token as string;
    const adminOfB = pool(b);
    const agentOfB = pool(b, agent);
    const introspectB = async () => (await post(adminOfB, '/oauth2/introspect', new URLSearchParams({ token }).toString(), 'application/x-www-form-urlencoded', ADMIN)).json.active as boolean;
    // B has the token's lease in its cache, and its SVID's.
    expect(await introspectB()).toBe(true);
    expect((await post(agentOfB, '/v1/jwt-svid', JSON.stringify({ audience: ['x'] }), 'application/json')).status).toBe(201);

    relay.freeze();
    const revoked = await post(pool(a), '/v1/admin/revocations', JSON.stringify({ jti: JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti, reason: 'partition test' }), 'application/json', ADMIN);
    expect(revoked.json.revoked).toBe(1);
    const ackAt = performance.now();

    // Ask B over and over for two bounds: the last question it answers "active" must have been
    // asked within the bound (B decided no earlier than it was asked; the answer's trip back is not B's).
    let lastActiveAt = -1;
    const answers: { sentAt: number; active: boolean; tookMs: number }[] = [];
    while (performance.now() - ackAt < 2 * BOUND_MS + 200) {
      const sentAt = performance.now();
      const active = await introspectB();
      answers.push({ sentAt: sentAt - ackAt, active, tookMs: performance.now() - sentAt });
      if (active) lastActiveAt = sentAt - ackAt;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(lastActiveAt).toBeLessThan(BOUND_MS);
    // Past the bound, a question B cannot put to the database is answered inactive within the bound.
    const late = answers.filter((x) => x.sentAt > BOUND_MS);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((x) => !x.active && x.tookMs < BOUND_MS + 500)).toBe(true);
    // mTLS routes refuse rather than trust a cached SVID.
    const refused = await post(agentOfB, '/v1/jwt-svid', JSON.stringify({ audience: ['x'] }), 'application/json');
    expect(refused.status).toBeGreaterThanOrEqual(400);
    process.stdout.write(`partition: B answered active to a question asked ${lastActiveAt.toFixed(0)} ms after the acknowledgement (bound ${BOUND_MS} ms); ${late.length} later answers all inactive, slowest ${Math.max(...late.map((x) => x.tookMs)).toFixed(0)} ms\n`);

    // Healed, B hears of the revocation and keeps refusing the token.
    relay.thaw();
    const healed = performance.now();
    while (!(await fetch(`${b.opsUrl}/readyz`).then((r) => r.ok)) && performance.now() - healed < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(await introspectB()).toBe(false);
  });
});
