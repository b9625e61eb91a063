import pino, { type Logger } from 'pino';
import { AdminCredentials } from './admin';
import { adminRouter, bundleRouter, closeNow, forwardedClientCertificates, createApiApp, createApiServer, drain, listen, urlOf, createOpsServer, HttpMetrics, oauthErrorHandler, oauthRouter, signalsErrorHandler, signalsRouter, svidRouter, tasksRouter } from './api';
import { SetReceiver, SignalApplier, SignalIntake, UserRisks } from './signals';
import { DpopReplayCache, IdentityProviders, Introspection, OAuthRefusals, TokenExchange, TokenRevocation } from './tokens';
import { EntryStore, JoinTokenAttestor, JoinTokens, OidcAttestor, SvidIssuer, X509PopAttestor, type Attestor } from './attestation';
import { AuditLog, AuditReader, type AuditEventInput } from './audit';
import { openKeyCustody, ServerRotator, ServerSvid, type BundleCache, type CaRotator, type CertificateAuthority, type JwtSigningKey } from './ca';
import { ConfigError, redactDatabaseUrl, type Config } from './config';
import { systemClock, systemRandom, type Clock, type Random } from './core';
import { openDatabase, whileOpen, type Database, type Freshness, type Readiness } from './db';
import { LeaseJanitor, noRevocationWatch, PgRevocationWatch, PrismaLeaseStore, RevocationEpochs, Revocations, svidDenylist, TaskStore, type LeaseStore, type RevocationWatch } from './leases';
import { PolicyStore, seedPolicies } from './policy';
import { ResourceStore } from './resources';

export interface BrokerDeps {
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Shows a generated admin token to the operator. Default: one line on stderr. */
  showAdminToken?: (token: string) => void;
  /** Attestors besides join_token; by default those the configuration enables (oidc, x509pop). */
  attestors?: readonly Attestor[];
}

/** A running broker. */
export interface Broker {
  readonly apiUrl: string;
  readonly opsUrl: string;
  readonly db: Database;
  /** The CA and JWT key that sign now (they change at a rotation). */
  readonly ca: CertificateAuthority;
  readonly jwtKey: JwtSigningKey;
  readonly rotator: CaRotator;
  readonly admin: AdminCredentials;
  readonly audit: AuditLog;
  readonly leases: LeaseStore;
  readonly tasks: TaskStore;
  readiness(): Promise<Readiness>;
  /** Renews the server SVID now if it is due; returns whether it did. */
  renewServerSvidIfDue(): Promise<boolean>;
  /** One step of the maintenance schedule (CA rotation, then server SVID renewal), as the timer runs it. */
  tick(): Promise<void>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes the database. */
  shutdown(): Promise<void>;
}

/** How often expired leases are cleaned up (by one replica at a time). */
const SWEEP_INTERVAL_MS = 10 * 60_000;
const SERVER_SVID_MAX_TTL = 86400;

const showOnStderr = (token: string) => process.stderr.write(`writ: generated the bootstrap admin token (shown once, only its hash is kept): ${token}\n`);

/** The oidc and x509pop attestors the configuration enables; their files are read now, so mistakes stop start-up. */
function configuredAttestors(config: Config, clock: Clock): Attestor[] {
  const attestors: Attestor[] = [];
  if (config.oidcIssuers.length > 0) {
    try {
      attestors.push(new OidcAttestor(config.oidcIssuers, { clock }));
    } catch (err) {
      throw err instanceof ConfigError ? err : new ConfigError('oidc_issuers', (err as Error).message, err);
    }
  }
  if (config.x509pop) attestors.push(new X509PopAttestor(config.x509pop, { clock }));
  return attestors;
}

/** Builds something from configuration now, so that a bad key file stops start-up naming the setting. */
function configured<T>(setting: string, build: () => T): T {
  try {
    return build();
  } catch (err) {
    throw err instanceof ConfigError ? err : new ConfigError(setting, (err as Error).message, err);
  }
}

/** The admin credential: WRIT_ADMIN_TOKEN's hash, or a token generated now, shown once and audited. */
function adminCredential(db: Database, config: Config, audit: AuditLog, random: Random, show: (token: string) => void = showOnStderr): Promise<AdminCredentials> {
  return AdminCredentials.bootstrap(db.prisma, {
    configured: config.adminToken,
    random,
    audit: audit.appendIn,
    onGenerated: show,
  });
}

/** The broker's own SVID (its HTTPS certificate); each is a lease, recorded with its audit event before it is used. */
function brokerSvid(config: Config, authority: CaRotator, leases: LeaseStore, clock: Clock, random: Random): ServerSvid {
  return new ServerSvid(authority, {
    trustDomain: config.trustDomain,
    dnsNames: config.serverDnsNames,
    ipAddresses: ['127.0.0.1'],
    ttl: Math.min(SERVER_SVID_MAX_TTL, config.x509SvidMaxTtl),
    clock,
    onIssued: async (svid) => {
      await leases.record(
        { id: random.uuid(), kind: 'x509-svid', spiffeId: svid.spiffeId, issuedAt: svid.notBefore, expiresAt: svid.notAfter },
        { audit: { type: 'svid.issued', actor: 'writ', details: { spiffeId: svid.spiffeId, serial: svid.serialNumber, notAfter: svid.notAfter.toISOString() } } },
      );
    },
  });
}

/** Expired leases cleaned up (by one replica at a time), and the revocation view pruned of them, on the maintenance tick. */
function leaseSweep(db: Database, watch: RevocationWatch, config: Config, clock: Clock, logger: Logger) {
  const janitor = new LeaseJanitor(db.prisma, { clock, retention: config.leaseRetention });
  const run = async () => {
    watch.prune();
    const deleted = await janitor.sweep();
    if (deleted) logger.info({ deleted }, 'expired leases cleaned up');
  };
  return { everyMs: SWEEP_INTERVAL_MS, run };
}

/** What the API's services and routers are built from. */
interface ApiWiring {
  config: Config;
  db: Database;
  freshness: Freshness;
  clock: Clock;
  random: Random;
  logger: Logger;
  audit: AuditLog;
  rotator: CaRotator;
  bundle: BundleCache;
  leases: PrismaLeaseStore;
  epochs: RevocationEpochs;
  policies: PolicyStore;
  admin: AdminCredentials;
  attestors: readonly Attestor[];
  identityProviders: IdentityProviders;
  signalReceiver: SetReceiver;
  boundMs: number | undefined;
  metrics: HttpMetrics;
  /** Prepares a CA rotation now, recorded with the operator who asked. */
  rotateCa: ServerRotator['rotateCa'];
}

/** The domain services behind the API and the routers that call them. */
function wireApi({ config, db, freshness, clock, random, logger, audit, rotator, bundle, leases, epochs, policies, admin, attestors, identityProviders, signalReceiver, boundMs, metrics, rotateCa }: ApiWiring) {
  // Every store records its changes in the transaction that makes them.
  const auditIn = audit.appendIn;
  const entries = new EntryStore(db.prisma, auditIn, freshness);
  const joinTokens = new JoinTokens(db.prisma, { clock, random, entries, audit: auditIn });
  const limits = { trustDomain: config.trustDomain, x509SvidMaxTtl: config.x509SvidMaxTtl, jwtSvidMaxTtl: config.jwtSvidMaxTtl };
  const issuer = new SvidIssuer({ authority: rotator, entries, leases, epochs, audit, bundle, attestors: [new JoinTokenAttestor(joinTokens), ...attestors], limits, clock, random });
  const auth = { admin, entries, leases, clock, trustDomain: config.trustDomain };
  const resources = new ResourceStore(db.prisma, auditIn, freshness);
  const revocations = new Revocations(db.prisma, clock, auditIn, freshness, epochs);
  const risks = new UserRisks(db.prisma, freshness);
  const tasks = new TaskStore(db.prisma, { clock, random, freshness, audit: auditIn });
  const exchange = new TokenExchange({
    issuer: config.issuer,
    authority: rotator,
    bundle,
    entries,
    resources,
    tasks,
    leases,
    epochs,
    policies,
    identityProviders,
    subjectRevoked: (issuer, subject, sid, issuedAt, email) => revocations.subjectRevoked(issuer, subject, sid, issuedAt, email),
    // The latest risk level a signal reported for the user, which policy sees as User.risk.
    userRisk: (issuer, subject) => risks.level(issuer, subject),
    audit,
    clock,
    random,
    limits: { defaultTtl: config.accessTokenTtl, maxTtl: config.accessTokenMaxTtl, maxChainDepth: config.maxChainDepth },
    // RFC 9449 §11.1: one replay cache per broker process; server nonces (§8) off.
    dpop: { replay: new DpopReplayCache({ clock }) },
  });
  const refusals = (event: AuditEventInput) => audit.append(event);
  const introspection = new Introspection({ issuer: config.issuer, leases, resources, bundle, audit: refusals, clock, ...(boundMs !== undefined && { revocationBoundMs: boundMs }) });
  const tokenRevocation = new TokenRevocation({ issuer: config.issuer, leases, revocations, bundle, audit: refusals, clock });
  const signals = new SignalIntake(signalReceiver, new SignalApplier(db.prisma, revocations, audit, { riskRevokeLevels: config.riskRevokeLevels, clock, maxAgeSeconds: config.leaseRetention, freshness }));
  const app = createApiApp({
    errorHandlers: [oauthErrorHandler(new OAuthRefusals(refusals)), signalsErrorHandler(signals)],
    before: [forwardedClientCertificates({ proxies: config.trustedProxies, bundle, clock })],
    routers: [
      oauthRouter({ issuer: config.issuer, exchange, introspection, revocation: tokenRevocation, admin, trustDomain: config.trustDomain }),
      bundleRouter(bundle),
      svidRouter({ ...auth, issuer, denylist: () => svidDenylist(db.prisma, rotator, { issuer: config.issuer, clock }) }),
      tasksRouter({ ...auth, tasks }),
      signalsRouter({ intake: signals }),
      adminRouter({ ...auth, joinTokens, limits, resources, policies, revocations, auditReader: new AuditReader(db.prisma), rotateCa: (overlap, actor) => rotateCa(overlap, actor) }),
    ],
    logger,
    metrics,
    random,
  });
  return { app, tasks };
}

/**
 * Starts Writ: CA material (checked before anything else), storage, the trust bundle,
 * the admin credential, the broker's own SVID, the HTTPS API and the ops listener.
 */
export async function startBroker(config: Config, deps: BrokerDeps = {}): Promise<Broker> {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? systemRandom;
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'writ' } });

  // Key custody, checked before anything else: the KEK when one is set, else the files of WRIT_CA_DIR.
  const custody = await openKeyCustody(config, { clock, random, logger });
  const attestors = deps.attestors ?? configuredAttestors(config, clock);
  const identityProviders = configured('identity_providers', () => new IdentityProviders(config.identityProviders, { clock }));
  const signalReceiver = configured('signal_transmitters', () => new SetReceiver(config.signalTransmitters, { clock }));

  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, clock, random, logger });
  let watch: RevocationWatch = noRevocationWatch;
  try {
    logger.info({ database: config.databaseUrl ? redactDatabaseUrl(config.databaseUrl) : `embedded (${config.dataDir})`, applied: db.migrations.applied }, 'database ready');
    const audit = new AuditLog(db.prisma, clock);
    const { kind: custodyKind, store: bundleStore, rotator, bundle, published } = await custody.start(db.prisma, audit);

    const admin = await adminCredential(db, config, audit, random, deps.showAdminToken);

    // Replicas share PostgreSQL: each keeps a view of revocations that every other one announces,
    // and caches what the hot paths read until any replica announces a change to it.
    if (config.databaseUrl) watch = await PgRevocationWatch.start(config.databaseUrl, db.prisma, { clock, logger, boundMs: config.revocationBoundMs });
    // On PostgreSQL, liveness reads have the revocation bound as their deadline (a silent partition answers "no" in time).
    const boundMs = config.databaseUrl ? config.revocationBoundMs : undefined;
    // Cached reads are trusted only while the database is open and the listener current: otherwise every read asks the database (and fails closed).
    const freshness = whileOpen(db, watch);
    const policies = new PolicyStore(db.prisma, audit.appendIn, freshness);
    if (config.policyFile) await seedPolicies(policies, config.policyFile);
    const leases = new PrismaLeaseStore(db.prisma, watch, audit, freshness, { boundMs });
    // Each request's epoch: the latest revocation marker this replica has heard of (src/leases/ordering.ts).
    const epochs = new RevocationEpochs(db.prisma, watch, freshness);
    const serverSvid = brokerSvid(config, rotator, leases, clock, random);

    let shuttingDown = false;
    const metrics = new HttpMetrics();
    const { app, tasks } = wireApi({ config, db, freshness, clock, random, logger, audit, rotator, bundle, leases, epochs, policies, admin, attestors, identityProviders, signalReceiver, boundMs, metrics, rotateCa: (overlap, actor) => rotateCa(overlap, actor) });
    const api = createApiServer(await serverSvid.issue(), published, (req, res) => {
      // During shutdown, answers close their connections so keep-alive clients move elsewhere.
      if (shuttingDown) res.setHeader('Connection', 'close');
      app(req, res);
    });
    const housekeeping = leaseSweep(db, watch, config, clock, logger);
    const serverRotator = new ServerRotator({ authorities: rotator, svid: serverSvid, store: bundleStore, bundle, serve: api.serve, servedSequence: published.sequence, changes: watch, housekeeping, clock, logger });
    const rotateCa = (overlap?: number, actor?: string) => serverRotator.rotateCa(overlap, actor);
    const readiness = async (): Promise<Readiness> => {
      if (shuttingDown) return { ready: false, reason: 'shutting down' };
      if (serverSvid.nearExpiry()) return { ready: false, reason: 'server SVID is near expiry and was not renewed' };
      if (!rotator.inSync) return { ready: false, reason: `the bundle names a CA that ${custodyKind === 'sealed' ? 'this replica cannot open with its KEK' : 'WRIT_CA_DIR does not hold'}` };
      if (config.databaseUrl && !watch.connected) return { ready: false, reason: 'revocation listener reconnecting; reloading revocations' };
      return db.readiness();
    };
    const ops = createOpsServer({ readiness, metrics });
    const apiAddress = await listen(api, config.port, config.host, 'WRIT_PORT');
    const opsAddress = await listen(ops, config.opsPort, config.opsHost, 'WRIT_OPS_PORT').catch((e: unknown) => {
      api.close();
      throw e;
    });
    serverRotator.start();

    const apiUrl = urlOf('https', apiAddress);
    const opsUrl = urlOf('http', opsAddress);
    logger.info({ api: apiUrl, ops: opsUrl, trustDomain: config.trustDomain, bundle: `${apiUrl}/v1/bundle`, spiffeSequence: published.sequence }, 'writ listening');

    let stopping: Promise<void> | undefined;
    const shutdown = () =>
      (stopping ??= (async () => {
        shuttingDown = true;
        await serverRotator.stop(); // a renewal in progress writes its lease first
        logger.info('shutting down: no new connections; finishing in-flight requests');
        await drain(api, config.shutdownGrace);
        await closeNow(ops);
        await watch.close();
        await db.close();
        logger.info('shut down');
      })());

    return {
      apiUrl,
      opsUrl,
      db,
      get ca() {
        return rotator.ca;
      },
      get jwtKey() {
        return rotator.jwtKey;
      },
      rotator,
      admin,
      audit,
      leases,
      tasks,
      readiness,
      renewServerSvidIfDue: () => serverRotator.renewIfDue(),
      tick: () => serverRotator.tick(),
      shutdown,
    };
  } catch (err) {
    await watch.close();
    await db.close().catch(() => undefined);
    throw err;
  }
}
