import { constants as cryptoConstants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { AdminCredentials } from './admin';
import { adminRouter, auditRouter, bundleRouter, createApiApp, createOpsServer, HttpMetrics, oauthErrorHandler, oauthRouter, signalsErrorHandler, signalsRouter, svidRouter, tasksRouter } from './api';
import { SetReceiver, SignalApplier } from './signals';
import { IdentityProviders, TokenExchange } from './tokens';
import { EntryStore, JoinTokenAttestor, JoinTokens, OidcAttestor, SvidIssuer, X509PopAttestor, type Attestor } from './attestation';
import { AuditLog, AuditReader } from './audit';
import {
  BundleCache,
  BundleStore,
  CaRotator,
  FileCustody,
  readKek,
  SealedCustody,
  type AuthoritySlot,
  type Kek,
  type KeyCustody,
  type PublishResult,
  loadOrCreateCertificateAuthority,
  loadOrCreateJwtSigningKey,
  recoverInterruptedActivation,
  ServerSvid,
  type CertificateAuthority,
  type JwtSigningKey,
  type TlsCredentials,
} from './ca';
import { ConfigError, redactDatabaseUrl, type Config } from './config';
import { systemClock, systemRandom, type Clock, type Random } from './core';
import { ReadCache, type Freshness } from './db/read-cache';
import { openDatabase, type Database, type Readiness } from './db';
import { LeaseJanitor, noRevocationWatch, PgRevocationWatch, PrismaLeaseStore, RevocationEpochs, Revocations, svidDenylist, TaskStore, type LeaseStore, type RevocationWatch } from './leases';
import { PolicyInvalid, PolicyStore } from './policy';
import { ResourceStore } from './resources';
import { certificateToPem, type TrustBundle } from './spiffe/bundle';

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

const RENEWAL_CHECK_MS = 30_000;
/** How often expired leases are cleaned up (by one replica at a time). */
const SWEEP_INTERVAL_MS = 10 * 60_000;
/** Seconds a retired authority stays published beyond the longest credential lifetime. */
export const RETIRED_GRACE_MARGIN = 300;
const BUNDLE_CACHE_SECONDS = 5;
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

/** Loads the operator's policy file as a new version if it changed; an invalid file stops start-up. */
async function seedPolicies(policies: PolicyStore, path: string, audit: AuditLog): Promise<void> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WRIT_POLICY_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`, err);
  }
  const before = await policies.latest();
  try {
    const version = await policies.seed(text);
    if (version.version !== before?.version) await audit.append({ type: 'policy.updated', actor: 'policy_file', details: { version: version.version, path } });
  } catch (err) {
    if (err instanceof PolicyInvalid) throw new ConfigError('WRIT_POLICY_FILE', `${path} is not a valid policy set: ${err.errors.join('; ')}`, err);
    throw err;
  }
}

function listen(server: Server | HttpsServer, port: number, host: string, setting: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new ConfigError(setting, `cannot listen on ${host}:${port}: ${e.code}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

const urlOf = (scheme: string, a: AddressInfo) => `${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;

/** The key-encryption keys: WRIT_KEK_FILE, and during a KEK rotation WRIT_KEK_PREVIOUS_FILE. */
function readKeks(config: Config, logger: Logger): { kek: Kek; previous?: Kek } {
  const current = readKek(config.kekFile!, 'WRIT_KEK_FILE');
  const previous = config.kekPreviousFile ? readKek(config.kekPreviousFile, 'WRIT_KEK_PREVIOUS_FILE') : undefined;
  for (const [setting, w] of [...current.warnings.map((w) => ['WRIT_KEK_FILE', w]), ...(previous?.warnings ?? []).map((w) => ['WRIT_KEK_PREVIOUS_FILE', w])]) logger.warn({ setting }, w);
  return { kek: current.kek, previous: previous?.kek };
}

/**
 * Starts Writ: CA material (checked before anything else), storage, the trust bundle,
 * the admin credential, the broker's own SVID, the HTTPS API and the ops listener.
 */
export async function startBroker(config: Config, deps: BrokerDeps = {}): Promise<Broker> {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? systemRandom;
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'writ' } });

  // Key custody, checked before anything else: the key-encryption key when one is set
  // (authority keys sealed in the database, shared by replicas), else the files of WRIT_CA_DIR.
  const caOptions = { dir: config.caDir, trustDomain: config.trustDomain, caTtl: config.caTtl, clock, random };
  const keks: { kek: Kek; previous?: Kek } | undefined = config.kekFile ? readKeks(config, logger) : undefined;
  let files: { ca: Awaited<ReturnType<typeof loadOrCreateCertificateAuthority>>; jwtKey: Awaited<ReturnType<typeof loadOrCreateJwtSigningKey>> } | undefined;
  if (!keks) {
    recoverInterruptedActivation(config.caDir);
    files = { ca: await loadOrCreateCertificateAuthority(caOptions), jwtKey: await loadOrCreateJwtSigningKey({ dir: config.caDir }) };
    for (const w of [...(files.ca.warnings ?? []), ...(files.jwtKey.warnings ?? [])]) logger.warn({ setting: 'WRIT_CA_DIR' }, w);
  }
  const attestors = deps.attestors ?? configuredAttestors(config, clock);
  const identityProviders = configured('identity_providers', () => new IdentityProviders(config.identityProviders, { clock }));
  const signalReceiver = configured('signal_transmitters', () => new SetReceiver(config.signalTransmitters, { clock }));

  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, clock, random, logger });
  let watch: RevocationWatch = noRevocationWatch;
  try {
    logger.info(
      { database: config.databaseUrl ? redactDatabaseUrl(config.databaseUrl) : `embedded (${config.dataDir})`, applied: db.migrations.applied },
      'database ready',
    );
    const audit = new AuditLog(db.prisma, clock);
    // A retired authority stays published while anything it signed may be live, plus a margin
    // for a replica's maintenance interval and for clock skew between peers.
    const retiredGrace = Math.max(config.x509SvidMaxTtl, config.jwtSvidMaxTtl) + RETIRED_GRACE_MARGIN;
    const bundleStore = new BundleStore(db.prisma, { trustDomain: config.trustDomain, refreshHint: config.bundleRefreshHint, retiredGrace, clock });
    let custody: KeyCustody;
    let active: AuthoritySlot;
    let sealedPublish: PublishResult | undefined; // with a KEK, the custody's start publishes (adds, replaces) in its transaction
    const created = { ca: files?.ca.created ?? false, jwtKey: files?.jwtKey.created ?? false };
    if (keks) {
      const sealed = new SealedCustody({ ...caOptions, store: bundleStore, kek: keks.kek, previousKek: keks.previous, replace: config.caReplace });
      const start = await sealed.start();
      custody = sealed;
      active = start.slot;
      Object.assign(created, start.created);
      sealedPublish = start.published;
      for (const id of start.imported) await audit.append({ type: 'authority_key.sealed', actor: 'writ', details: { authority: id, kek: keks.kek.id, from: 'WRIT_CA_DIR' } });
      if (start.resealed > 0) await audit.append({ type: 'kek.rotated', actor: 'writ', details: { kek: keks.kek.id, previous: keks.previous!.id, resealed: start.resealed } });
      logger.info({ kek: keks.kek.id, upstream: start.upstream, resealed: start.resealed }, 'authority keys sealed in the database under the KEK');
    } else {
      custody = new FileCustody(caOptions);
      active = { ca: files!.ca.value, jwtKey: files!.jwtKey.value };
    }
    const { rotator, published } = await CaRotator.start(
      {
        custody,
        overlap: config.caRotationOverlap,
        store: bundleStore,
        clock,
        logger,
        onEvent: async (type, details) => void (await audit.append({ type, actor: 'writ', details })),
      },
      active,
      { replace: config.caReplace && !keks }, // with a KEK, the custody's start already replaced in its transaction
    );
    if (created.ca) await audit.append({ type: 'ca.created', actor: 'writ', details: { subject: active.ca.certificate.subject, notAfter: active.ca.notAfter.toISOString() } });
    if (created.jwtKey) await audit.append({ type: 'jwt_key.created', actor: 'writ', details: { kid: active.jwtKey.kid } });
    for (const result of sealedPublish ? [sealedPublish, published] : [published]) {
      for (const [type, ids] of [['bundle.authority_added', result.added], ['bundle.authority_retired', result.retired], ['bundle.authority_removed', result.removed]] as const) {
        for (const id of ids) await audit.append({ type, actor: 'writ', details: { authority: id, spiffeSequence: result.bundle.sequence } });
      }
    }
    const bundle = new BundleCache(bundleStore, { clock, maxAgeSeconds: BUNDLE_CACHE_SECONDS, logger });
    bundle.prime(published.bundle);

    const admin = await AdminCredentials.bootstrap(db.prisma, {
      configured: config.adminToken,
      random,
      onGenerated: async (token) => {
        (deps.showAdminToken ?? showOnStderr)(token);
        await audit.append({ type: 'admin_credential.generated', actor: 'writ' });
      },
    });

    // Replicas share PostgreSQL: each keeps a view of revocations that every other one announces,
    // and caches what the hot paths read until any replica announces a change to it.
    if (config.databaseUrl) watch = await PgRevocationWatch.start(config.databaseUrl, db.prisma, { clock, logger, boundMs: config.revocationBoundMs });
    // On PostgreSQL, liveness reads have the revocation bound as their deadline (a silent partition answers "no" in time).
    const boundMs = config.databaseUrl ? config.revocationBoundMs : undefined;
    // Cached reads are trusted only while the database is open and the listener current: otherwise every read asks the database (and fails closed).
    const freshness: Freshness = {
      get current() {
        return db.open && watch.current;
      },
      get generation() {
        return watch.generation;
      },
      touch: () => watch.touch(),
    };
    const policies = new PolicyStore(db.prisma, freshness);
    if (config.policyFile) await seedPolicies(policies, config.policyFile, audit);
    const leases = new PrismaLeaseStore(db.prisma, watch, audit, freshness, { boundMs });
    // Each request's epoch: the latest revocation marker this replica has heard of (src/leases/ordering.ts).
    const epochs = new RevocationEpochs(db.prisma, watch, freshness);
    const serverSvid = new ServerSvid(rotator, {
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
    // Client certificates are checked against the bundle's X.509 authorities, refreshed at each renewal.
    const tlsOptions = (c: TlsCredentials, anchors: TrustBundle) => ({ cert: c.certChainPem, key: c.keyPem, ca: anchors.x509Authorities.map(certificateToPem).join('') });

    let shuttingDown = false;
    const metrics = new HttpMetrics();
    const entries = new EntryStore(db.prisma, freshness);
    const joinTokens = new JoinTokens(db.prisma, { clock, random });
    const limits = { trustDomain: config.trustDomain, x509SvidMaxTtl: config.x509SvidMaxTtl, jwtSvidMaxTtl: config.jwtSvidMaxTtl };
    const issuer = new SvidIssuer({ authority: rotator, entries, leases, epochs, audit, attestors: [new JoinTokenAttestor(joinTokens), ...attestors], limits, clock, random });
    const auth = { admin, entries, leases, clock, trustDomain: config.trustDomain };
    const resources = new ResourceStore(db.prisma, freshness);
    const revocations = new Revocations(db.prisma, clock, (tx, event) => audit.appendIn(tx, event), freshness, epochs);
    const risks = new ReadCache<string | undefined>(freshness);
    const tasks = new TaskStore(db.prisma, { clock, random, freshness, audit: (tx, event) => audit.appendIn(tx, event) });
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
      userRisk: (issuer, subject) =>
        risks.get(JSON.stringify([issuer, subject]), async () => (await db.prisma.userRisk.findUnique({ where: { issuer_subject: { issuer, subject } } }))?.level),
      audit,
      clock,
      random,
      limits: { defaultTtl: config.accessTokenTtl, maxTtl: config.accessTokenMaxTtl, maxChainDepth: config.maxChainDepth },
    });
    const app = createApiApp({
      errorHandlers: [oauthErrorHandler(audit), signalsErrorHandler(audit)],
      routers: [
        oauthRouter({ issuer: config.issuer, exchange, leases, revocations, resources, admin, audit, bundle, clock, trustDomain: config.trustDomain, ...(boundMs !== undefined && { revocationBoundMs: boundMs }) }),
        bundleRouter(bundle),
        svidRouter({ ...auth, issuer, bundle, denylist: () => svidDenylist(db.prisma, rotator, { issuer: config.issuer, clock }) }),
        tasksRouter({ ...auth, tasks }),
        signalsRouter({ receiver: signalReceiver, applier: new SignalApplier(db.prisma, revocations, audit, { riskRevokeLevels: config.riskRevokeLevels, clock, maxAgeSeconds: config.leaseRetention, freshness }) }),
        auditRouter({ ...auth, auditReader: new AuditReader(db.prisma) }),
        adminRouter({ ...auth, joinTokens, audit, limits, resources, policies, revocations, rotateCa: (overlap) => rotateCa(overlap) }),
      ],
      logger,
      metrics,
      random,
    });
    const api = createHttpsServer(
      {
        ...tlsOptions(await serverSvid.issue(), published.bundle),
        requestCert: true, // mTLS is offered; routes that need it check the peer themselves
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
        secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION, // a connection keeps the client certificate it was verified with
      },
      (req, res) => {
        // During shutdown, answers close their connections so keep-alive clients move elsewhere.
        if (shuttingDown) res.setHeader('Connection', 'close');
        app(req, res);
      },
    );
    const readiness = async (): Promise<Readiness> => {
      if (shuttingDown) return { ready: false, reason: 'shutting down' };
      if (serverSvid.nearExpiry()) return { ready: false, reason: 'server SVID is near expiry and was not renewed' };
      if (!rotator.inSync) return { ready: false, reason: `the bundle names a CA that ${keks ? 'this replica cannot open with its KEK' : 'WRIT_CA_DIR does not hold'}` };
      if (config.databaseUrl && !watch.connected) return { ready: false, reason: 'revocation listener reconnecting; reloading revocations' };
      return db.readiness();
    };
    const ops = createOpsServer({ readiness, metrics });
    const apiAddress = await listen(api, config.port, config.host, 'WRIT_PORT');
    const opsAddress = await listen(ops, config.opsPort, config.opsHost, 'WRIT_OPS_PORT').catch((e: unknown) => {
      api.close();
      throw e;
    });

    let renewing: Promise<boolean> | undefined;
    let anchorsSequence = published.bundle.sequence;
    /** Renews the server SVID when due (or now, after a CA rotation) and refreshes the TLS trust anchors. */
    const renewServerSvid = (force: boolean): Promise<boolean> =>
      (renewing ??= (async () => {
        if (shuttingDown || !(force || serverSvid.dueForRenewal())) return false;
        const next = await serverSvid.issue();
        const anchors = await bundle.current();
        api.setSecureContext(tlsOptions(next, anchors));
        anchorsSequence = anchors.sequence;
        logger.info({ spiffeId: next.svid.spiffeId, notAfter: next.svid.notAfter.toISOString() }, 'server SVID renewed');
        return true;
      })().finally(() => {
        renewing = undefined;
      }));
    const renewServerSvidIfDue = () => renewServerSvid(false);
    /** Publishes new authorities now; the TLS listener trusts their root at once (clients may get SVIDs from it after the overlap). */
    const rotateCa = async (overlap?: number) => {
      const prepared = await rotator.rotate(overlap);
      const fresh = await bundleStore.load();
      bundle.prime(fresh);
      await renewServerSvid(true);
      scheduleActivation();
      return { ...prepared, spiffeSequence: fresh.sequence };
    };
    /** Trust for client certificates follows the bundle (authorities added by a rotation elsewhere, or removed). */
    const refreshAnchors = async () => {
      const anchors = await bundle.current();
      if (anchors.sequence !== anchorsSequence && serverSvid.current) {
        api.setSecureContext(tlsOptions(serverSvid.current, anchors));
        anchorsSequence = anchors.sequence;
      }
    };
    // A prepared rotation activates on time on every replica (not at the next periodic tick);
    // further than the tick period away, the tick schedules it when it comes nearer.
    let activationTimer: NodeJS.Timeout | undefined;
    const scheduleActivation = () => {
      clearTimeout(activationTimer);
      const at = rotator.activatesAt;
      const delay = at ? at.getTime() - clock.now().getTime() : Infinity;
      if (shuttingDown || delay > RENEWAL_CHECK_MS) return;
      activationTimer = setTimeout(() => void tick().catch((err: Error) => logger.error({ err: { message: err.message } }, 'CA activation failed')), Math.max(0, delay) + 20);
      activationTimer.unref();
    };
    // Another replica changed the authorities or the bundle (or the listener reconnected and
    // anything may have changed): follow now, so every replica serves and signs alike within a second.
    let syncing: Promise<void> | undefined;
    let syncAgain = false;
    const syncAuthorities = (): void => {
      if (syncing) {
        syncAgain = true;
        return;
      }
      syncing = (async () => {
        do {
          syncAgain = false;
          if (await rotator.follow()) await renewServerSvid(true); // the server SVID now chains to the CA that signs
          bundle.prime(await bundleStore.load());
          await refreshAnchors();
          scheduleActivation();
        } while (syncAgain && !shuttingDown);
      })()
        .catch((err: Error) => logger.error({ err: { message: err.message } }, 'following the authorities failed; the periodic check retries'))
        .finally(() => {
          syncing = undefined;
        });
    };
    watch.onChange((table) => {
      if (!shuttingDown && (table === undefined || table === 'authority' || table === 'bundle')) syncAuthorities();
    });
    const janitor = new LeaseJanitor(db.prisma, { clock, retention: config.leaseRetention });
    let lastSweep = 0;
    const tick = async () => {
      if (clock.now().getTime() - lastSweep >= SWEEP_INTERVAL_MS) {
        lastSweep = clock.now().getTime();
        watch.prune();
        const deleted = await janitor.sweep();
        if (deleted) logger.info({ deleted }, 'expired leases cleaned up');
      }
      if (await rotator.tick()) {
        bundle.prime(await bundleStore.load());
        await renewServerSvid(true); // the server SVID now chains to the new CA
      }
      scheduleActivation();
      if (!(await renewServerSvidIfDue())) await refreshAnchors();
    };
    scheduleActivation();
    const renewal = setInterval(() => {
      tick().catch((err: Error) => logger.error({ err: { message: err.message } }, 'maintenance failed (CA rotation or server SVID renewal)'));
    }, RENEWAL_CHECK_MS).unref();

    const apiUrl = urlOf('https', apiAddress);
    const opsUrl = urlOf('http', opsAddress);
    logger.info({ api: apiUrl, ops: opsUrl, trustDomain: config.trustDomain, bundle: `${apiUrl}/v1/bundle`, spiffeSequence: published.bundle.sequence }, 'writ listening');

    let stopping: Promise<void> | undefined;
    const shutdown = () =>
      (stopping ??= (async () => {
        shuttingDown = true;
        clearInterval(renewal);
        clearTimeout(activationTimer);
        await syncing;
        logger.info('shutting down: no new connections; finishing in-flight requests');
        const closed = new Promise<void>((resolve) => api.close(() => resolve()));
        const idle = setInterval(() => api.closeIdleConnections(), 100);
        const force = setTimeout(() => api.closeAllConnections(), config.shutdownGrace * 1000);
        api.closeIdleConnections();
        await closed;
        clearInterval(idle);
        clearTimeout(force);
        await renewing?.catch(() => undefined); // a renewal in progress writes its lease first
        await new Promise<void>((resolve) => {
          ops.close(() => resolve());
          ops.closeAllConnections();
        });
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
      renewServerSvidIfDue,
      tick,
      shutdown,
    };
  } catch (err) {
    await watch.close();
    await db.close().catch(() => undefined);
    throw err;
  }
}
