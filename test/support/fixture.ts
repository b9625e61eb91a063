/**
 * The fixture most end-to-end tests start from: a broker in this process (on the test store)
 * with a test identity provider it trusts, a Cedar policy file, resources registered through
 * the admin API and connectors attested with join tokens (openssl keys and CSRs), plus the
 * calls tests make to it as an admin, as a connector, and over the OAuth endpoints.
 *
 * @example
 * fx = await startBrokerFixture({
 *   trustDomain: 'ex.test',
 *   policies: POLICIES,
 *   resources: [{ uri: GITHUB, spiffe_id: 'spiffe://ex.test/mcp/github', tools }],
 *   connectors: { agent: { spiffeId: 'spiffe://ex.test/agent/assistant', owner: 'platform' } },
 * });
 * const res = await fx.form('/oauth2/token', { ...exchange, subject_token: await fx.idp.idToken() }, fx.connectors.agent);
 * // afterAll: await fx?.close();
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Logger } from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import type { Config } from '../../src/config';
import type { Clock } from '../../src/core/clock';
import { attestWithJoinToken, type AttestedConnector } from './attest';
import { testConfig } from './config';
import { createTestStore, type TestStore } from './database';
import { httpsRequest, type HttpsResponse } from './https';

/** An HTTP answer with its body parsed as JSON (undefined when empty). */
export type JsonResponse = HttpsResponse & { json: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A client certificate and its key, as PEM. */
export interface ClientCert {
  readonly cert: string;
  readonly key: string;
}

/**
 * A real OpenID provider as far as Writ can tell: an ES256 key pair whose public half is a JWKS
 * file the broker is configured with (WRIT_IDENTITY_PROVIDERS), and ID tokens signed with jose.
 */
export class TestIdentityProvider {
  private constructor(
    readonly issuer: string,
    readonly jwksFile: string,
    readonly publicJwk: JWK,
    /** The provider's signing key; pass another key to `idToken` for a forgery. */
    readonly key: CryptoKey,
    readonly kid: string,
    /** The audience its ID tokens carry and the broker expects. */
    readonly audience: string,
  ) {}

  /** Makes a key pair and writes its JWKS to `<dir>/<file>`. */
  static async create(dir: string, issuer: string, opts: { kid?: string; audience?: string; file?: string } = {}): Promise<TestIdentityProvider> {
    const kid = opts.kid ?? 'idp-1';
    const pair = await generateKeyPair('ES256');
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256' };
    const jwksFile = join(dir, opts.file ?? 'idp.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [publicJwk] }));
    return new TestIdentityProvider(issuer, jwksFile, publicJwk, pair.privateKey as CryptoKey, kid, opts.audience ?? 'writ');
  }

  /** The broker's configuration entry for this provider (one element of WRIT_IDENTITY_PROVIDERS). */
  get trusted(): { issuer: string; jwks_file: string; audience: string; algorithms: string[] } {
    return { issuer: this.issuer, jwks_file: this.jwksFile, audience: this.audience, algorithms: ['ES256'] };
  }

  /**
   * An ID token for `subject` (default alice) in group eng with sid session-1, valid for ten
   * minutes; `claims` are added over those defaults; `key` signs instead of the provider's own.
   */
  idToken(claims: Record<string, unknown> = {}, opts: { subject?: string; key?: CryptoKey; audience?: string } = {}): Promise<string> {
    return new SignJWT({ groups: ['eng'], sid: 'session-1', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid })
      .setIssuer(this.issuer)
      .setAudience(opts.audience ?? this.audience)
      .setSubject(opts.subject ?? 'alice')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(opts.key ?? this.key);
  }
}

/** A resource as POST /v1/admin/resources takes it. */
export interface ResourceRegistration {
  readonly uri: string;
  readonly spiffe_id: string;
  readonly tools: readonly { name: string; actions: string[]; classification: string; egress?: boolean; per_call?: boolean }[];
}

/** The calls a test makes to one broker (of a fixture's replicas). */
export interface BrokerCalls {
  readonly broker: Broker;
  /** The admin API as JSON, with the admin bearer token. */
  admin(path: string, method: string, body?: unknown): Promise<JsonResponse>;
  /** A form POST to an OAuth endpoint (a repeated parameter for an array), with a client certificate and/or a bearer token. */
  form(path: string, params: Record<string, string | string[]>, as?: ClientCert, bearer?: string): Promise<JsonResponse>;
  /** Registers an entry for `spiffeId` (metadata owner `owner`, default platform) and attests it with a join token. */
  attest(spiffeId: string, owner?: string): Promise<AttestedConnector>;
}

export interface BrokerFixture<C extends string = never> extends BrokerCalls {
  /** A scratch directory for the test's files (removed by close). */
  readonly work: string;
  readonly store: TestStore;
  readonly config: Config;
  readonly idp: TestIdentityProvider;
  /** The CA certificate the broker's TLS server chains to (certs/ca.crt). */
  readonly caPem: string;
  /** The trust bundle as PEM (GET /v1/bundle), as connectors and resource servers trust it. */
  readonly bundlePem: string;
  readonly adminToken: string;
  /** The connectors asked for, attested in the order given. */
  readonly connectors: Record<C, AttestedConnector>;
  /** The same calls against another broker (a replica started with `startReplica`). */
  at(broker: Broker): BrokerCalls;
  /** Another broker on the same database and CA directory (the admin credential exists already); closed by close. */
  startReplica(): Promise<Broker>;
  /** Shuts the replicas down, then the broker; drops the store and removes the scratch directory. */
  close(): Promise<void>;
}

export interface BrokerFixtureOptions<C extends string> {
  readonly trustDomain: string;
  /** The Cedar policy file's text (WRIT_POLICY_FILE). */
  readonly policies: string;
  /** The test identity provider's issuer. Default https://idp.example.test. */
  readonly idpIssuer?: string;
  /** Further broker environment (e.g. WRIT_ISSUER). */
  readonly env?: Record<string, string>;
  /** The clock of the broker (and of its replicas). */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Registered before any connector is attested; each must be answered 201. */
  readonly resources?: readonly ResourceRegistration[];
  readonly connectors?: Readonly<Record<C, { spiffeId: string; owner?: string }>>;
  /** Prefix of the scratch directory's name. */
  readonly prefix?: string;
}

const withJson = (r: HttpsResponse): JsonResponse => ({ ...r, json: r.body ? JSON.parse(r.body) : undefined });

function callsFor(broker: Broker, ca: string, adminToken: () => string, work: string): BrokerCalls {
  const admin = (path: string, method: string, body?: unknown) =>
    httpsRequest(`${broker.apiUrl}${path}`, {
      ca,
      method,
      headers: { authorization: `Bearer ${adminToken()}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(withJson);
  return {
    broker,
    admin,
    form: (path, params, as, bearer) => {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
      return httpsRequest(`${broker.apiUrl}${path}`, {
        ca,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(bearer && { authorization: `Bearer ${bearer}` }) },
        body: body.toString(),
        ...(as && { cert: as.cert, key: as.key }),
      }).then(withJson);
    },
    attest: (spiffeId, owner = 'platform') => attestWithJoinToken({ apiUrl: broker.apiUrl, ca, admin, spiffeId, dir: work, metadata: { owner } }),
  };
}

/** Starts the fixture; on failure, whatever was started is closed again. */
export async function startBrokerFixture<C extends string = never>(opts: BrokerFixtureOptions<C>): Promise<BrokerFixture<C>> {
  const work = mkdtempSync(join(tmpdir(), opts.prefix ?? 'writ-fixture-'));
  const brokers: Broker[] = [];
  let store: TestStore | undefined;
  const close = async () => {
    for (const b of brokers.splice(0).reverse()) await b.shutdown();
    await store?.drop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const idp = await TestIdentityProvider.create(work, opts.idpIssuer ?? 'https://idp.example.test');
    writeFileSync(join(work, 'writ.cedar'), opts.policies);
    store = await createTestStore();
    const config = testConfig(store, {
      WRIT_TRUST_DOMAIN: opts.trustDomain,
      WRIT_POLICY_FILE: join(work, 'writ.cedar'),
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([idp.trusted]),
      ...opts.env,
    });
    const deps = { ...(opts.clock && { clock: opts.clock }), ...(opts.logger && { logger: opts.logger }) };
    const shown: { token?: string } = {};
    const broker = await startBroker(config, { ...deps, showAdminToken: (t) => void (shown.token = t) });
    brokers.push(broker);
    const adminToken = shown.token;
    if (adminToken === undefined) throw new Error('the broker showed no admin token');
    const caPem = readFileSync(join(config.caDir, 'ca.crt'), 'utf8');
    const bundlePem = (await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: caPem, headers: { accept: 'application/x-pem-file' } })).body;
    const token = () => adminToken;
    const calls = callsFor(broker, caPem, token, work);
    for (const resource of opts.resources ?? []) {
      const res = await calls.admin('/v1/admin/resources', 'POST', resource);
      if (res.status !== 201) throw new Error(`registering ${resource.uri} failed: ${res.status} ${res.body}`);
    }
    const connectors = {} as Record<C, AttestedConnector>;
    for (const [name, c] of Object.entries(opts.connectors ?? {}) as [C, { spiffeId: string; owner?: string }][]) connectors[name] = await calls.attest(c.spiffeId, c.owner);
    return {
      ...calls,
      work,
      store,
      config,
      idp,
      caPem,
      bundlePem,
      adminToken,
      connectors,
      at: (other) => callsFor(other, caPem, token, work),
      startReplica: async () => {
        const replica = await startBroker(config, deps);
        brokers.push(replica);
        return replica;
      },
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
