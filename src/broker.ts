import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { AdminCredentials, RoleBindings, bootstrapTokenLocation, removeTokenFile, tokenFileExists } from './admin';
import type { PeopleAuth } from './api/auth';
import { ConfigError } from './config/errors';
import { OAuthError } from './tokens/errors';
import { adminOnly, adminRouter, agentRouter, vaultAdminRouter, vaultLinksRouter, approvalsRouter, consoleRouter, signInRouter, authzenRouter, bundleRouter, closeNow, forwardedClientCertificates, createApiApp, createApiServer, drain, listen, urlOf, createOpsServer, HttpMetrics, oauthErrorHandler, oauthRouter, signalsErrorHandler, signalsRouter, svidRouter, tasksRouter } from './api';
import { SetReceiver, SignalApplier, SignalIntake, UserRisks } from './signals';
import { DpopReplayCache, IdentityProviders, Introspection, OAuthRefusals, TokenExchange, TokenRevocation } from './tokens';
import { brokerLogger } from './api/logging';
import { EntryStore, JoinTokenAttestor, JoinTokens, SvidIssuer, type Attestor } from './attestation';
import { AuditLog, AuditReader, type AuditEventInput } from './audit';
import { openKeyCustody, ServerRotator, ServerSvid, type BundleCache, type CaRotator, type CertificateAuthority, type JwtSigningKey, type SecretSealer } from './ca';
import { ProviderStore, TokenVault } from './vault';
import { preflight } from './broker-preflight';
import { showStartupSummary, type Terminal } from './broker-summary';
import { redactDatabaseUrl, type Config } from './config';
import { systemClock, systemRandom, type Clock, type Random } from './core';
import { openDatabase, whileOpen, type Database, type Freshness, type Readiness } from './db';
import { LeaseJanitor, revokedSvidSerials, noRevocationWatch, type LeaseKind, PgRevocationWatch, PrismaLeaseStore, RevocationEpochs, Revocations, svidDenylist, TaskStore, TaskEventStore, type LeaseStore, type RevocationWatch } from './leases';
import { PolicyStore, seedPolicies } from './policy';
import { ResourceStore } from './resources';
import { AccessEvaluator } from './authzen';
import { ApprovalStore, WebhookDispatcher, WebhookOutbox } from './approvals';
import { ConsoleSignIn } from './console';
import { PrometheusMetrics } from './telemetry';
import type { Registry } from 'prom-client';
import type { MetricsEndpoint } from './api/ops';

export interface BrokerDeps {
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Shows a generated admin token, and the file that keeps it until its first use, to the operator. Default: one line on `terminal`. */
  showAdminToken?: (token: string, file: string) => void;
  /** Where lines for the operator go (the admin token's file, and the start-up summary when it is a TTY). Default: stderr. */
  terminal?: Terminal;
  /**
   * False for a cluster worker other than the first: it leaves the reminders to the first (they
   * share one terminal), and does not probe the ports the cluster already listens on. Default true.
   */
  speaksForAll?: boolean;
  /** Attestors besides join_token; by default those the configuration enables (oidc, x509pop). */
  attestors?: readonly Attestor[];
  /** What the ops port's /metrics answers from this process's registry; a cluster worker answers the sum over workers (src/cluster/metrics.ts). Default: the registry itself. */
  metricsEndpoint?: (registry: Registry) => MetricsEndpoint;
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
/** How often, during a KEK rotation, the token vault seals again what replicas still on the old KEK sealed. */
const RESEAL_INTERVAL_MS = 60_000;
/** How often the token vault looks for released tokens to revoke besides after each local revocation (other replicas', retries). */
const VAULT_REAP_INTERVAL_MS = 5_000;
const SERVER_SVID_MAX_TTL = 86400;

const tokenLine = (terminal: Terminal) => (token: string, file: string) => terminal.write(`writ: generated the bootstrap admin token (kept in ${file} until its first use): ${token}\n`);

/**
 * The admin credential: WRIT_ADMIN_TOKEN's hash (which overrides the stored one), or the stored
 * hash, or a token generated now: written to a 0600 file, shown once and audited. While that file
 * is there, each start says where it is; the token's first use deletes it (audited).
 */
async function adminCredential(db: Database, config: Config, audit: AuditLog, random: Random, logger: Logger, terminal: Terminal | undefined, show: (token: string, file: string) => void): Promise<{ admin: AdminCredentials; tokenFile: string | undefined }> {
  const location = bootstrapTokenLocation(config);
  let generated = false;
  const admin = await AdminCredentials.bootstrap(db.prisma, {
    configured: config.adminToken,
    random,
    audit: audit.appendIn,
    tokenFile: location,
    onGenerated: (token, file) => {
      generated = true;
      show(token, file);
    },
    // Never rejects: a failure to delete is logged, and the file stays for the operator to remove.
    onFirstUse: async () => {
      try {
        if (removeTokenFile(location.path)) await audit.append({ type: 'admin_credential.file_deleted', actor: 'writ', details: { path: location.path } });
      } catch (err) {
        logger.error({ path: location.path, err: (err as Error).message }, 'could not delete the bootstrap admin token file after its first use');
      }
    },
  });
  const unused = config.adminToken === undefined && tokenFileExists(location.path);
  if (unused && !generated) terminal?.write(`writ: the bootstrap admin token has not been used yet; it is in ${location.path} (its first use deletes the file)\n`);
  return { admin, tokenFile: unused ? location.path : undefined };
}

/** Sign-in by people: a verified token of the admin audience names the person; bindings give the role. Keys that cannot be fetched are 503, not 401. */
function signInOf(providers: IdentityProviders, bindings: RoleBindings): PeopleAuth {
  return {
    person: async (token) => {
      try {
        const id = await providers.verify(token);
        return { sub: id.sub, iss: id.iss, groups: id.groups };
      } catch (err) {
        if (err instanceof OAuthError && err.error === 'temporarily_unavailable') throw err;
        return undefined;
      }
    },
    roleOf: (person) => bindings.roleOf(person),
  };
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

/** The gauges Prometheus reads at scrape time: live leases, authority expiry, the revocation feed, the pool. */
function observeState(telemetry: PrometheusMetrics, { db, watch, rotator, serverSvid, clock }: { db: Database; watch: PgRevocationWatch | undefined; rotator: CaRotator; serverSvid: ServerSvid; clock: Clock }) {
  const now = () => clock.now().getTime();
  telemetry.observe({
    now,
    activeLeases: async () => {
      const rows = await db.prisma.lease.groupBy({ by: ['kind'], where: { revokedAt: null, expiresAt: { gt: clock.now() } }, _count: { _all: true } });
      // Every kind is reported, zero included, so that an empty gauge means the database did not answer.
      return { 'x509-svid': 0, 'jwt-svid': 0, 'access-token': 0, ...Object.fromEntries(rows.map((r) => [r.kind, r._count._all])) } satisfies Record<LeaseKind, number>;
    },
    authorities: () => ({ x509_ca: rotator.ca.certificate.notAfter, ...(serverSvid.current && { server_svid: serverSvid.current.svid.notAfter }) }),
    ...(watch && { revocationFeed: () => ({ connected: watch.connected, silentForMs: watch.silentForMs }) }),
    ...(db.connections && { pool: db.connections }),
  });
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
  telemetry: PrometheusMetrics;
  /** Prepares a CA rotation now, recorded with the operator who asked. */
  rotateCa: ServerRotator['rotateCa'];
  /** Seals what the token vault keeps (client secrets, refresh tokens). */
  secrets: SecretSealer;
}

/** The domain services behind the API and the routers that call them. */
function wireApi({ config, db, freshness, clock, random, logger, audit, rotator, bundle, leases, epochs, policies, admin, attestors, identityProviders, signalReceiver, boundMs, metrics, telemetry, rotateCa, secrets }: ApiWiring) {
  // Every store records its changes in the transaction that makes them.
  const auditIn = audit.appendIn;
  const entries = new EntryStore(db.prisma, auditIn, freshness);
  const joinTokens = new JoinTokens(db.prisma, { clock, random, entries, audit: auditIn });
  const limits = { trustDomain: config.trustDomain, x509SvidMaxTtl: config.x509SvidMaxTtl, jwtSvidMaxTtl: config.jwtSvidMaxTtl };
  const issuer = new SvidIssuer({ authority: rotator, entries, leases, epochs, audit, bundle, attestors: [new JoinTokenAttestor(joinTokens), ...attestors], limits, clock, random, metrics: telemetry });
  telemetry.knowAttestors([...issuer.attestorNames, 'agent']);
  // People sign in with a token of a configured provider for the admin audience (never the subject tokens' audience), and hold roles by binding.
  const roleBindings = new RoleBindings(db.prisma, { configured: config.adminRoles, audit: auditIn, clock, random });
  const adminProviders = config.adminAudience === undefined ? undefined : new IdentityProviders(config.identityProviders.map((p) => ({ ...p, audience: config.adminAudience! })), { clock });
  const people = adminProviders && signInOf(adminProviders, roleBindings);
  // The console: Writ as the provider's client (authorization code flow with PKCE), sessions in the database.
  const consoleSignIn = adminProviders && new ConsoleSignIn({
    prisma: db.prisma,
    clock,
    random,
    baseUrl: config.issuer,
    clientId: config.adminAudience!,
    issuers: config.identityProviders.map((p) => p.issuer),
    sessionTtl: config.consoleSessionTtl,
    idleTimeout: config.consoleIdleTimeout,
    verify: async (idToken) => {
      const id = await adminProviders.verify(idToken);
      return { person: { sub: id.sub, iss: id.iss, groups: id.groups }, expiresAt: id.exp, nonce: id.claims.nonce };
    },
  });
  const auth = { admin, entries, leases, clock, trustDomain: config.trustDomain, ...(people && { people }), ...(consoleSignIn && { consoleSessions: consoleSignIn }) };
  const resources = new ResourceStore(db.prisma, auditIn, freshness);
  const revocations = new Revocations(db.prisma, clock, auditIn, freshness, epochs, telemetry);
  const risks = new UserRisks(db.prisma, freshness);
  const tasks = new TaskStore(db.prisma, { clock, random, freshness, audit: auditIn, metrics: telemetry });
  const taskEvents = new TaskEventStore(db.prisma, { clock, random, audit: auditIn, auditMany: (tx, events) => audit.appendManyIn(tx, events.map((e) => audit.stamp(e))) });
  // Human approval (permits marked @approval("required")); requests and decisions are announced by a signed webhook when one is set.
  const approvalUrl = (id: string) => `${config.issuer.replace(/\/+$/, '')}/v1/approvals/${id}`;
  const outbox = config.approvalWebhookUrl ? new WebhookOutbox({ clock, random, approvalUrl }) : undefined;
  const approvals = new ApprovalStore(db.prisma, {
    audit: auditIn,
    clock,
    random,
    settings: { group: config.approvalGroup, ...(config.approvalIssuer !== undefined && { issuer: config.approvalIssuer }), ttl: config.approvalTtl, validity: Math.min(config.approvalValidity, config.accessTokenMaxTtl), baseUrl: config.issuer },
    ...(outbox && { announce: outbox.announce }),
  });
  tasks.onEnd((tx, taskId) => approvals.revokeForTask(tx, taskId));
  const webhooks = config.approvalWebhookUrl ? new WebhookDispatcher(db.prisma, { url: config.approvalWebhookUrl, secret: config.approvalWebhookSecret! }, { clock, log: (m) => logger.warn(m) }) : undefined;
  // The token vault: SaaS grants kept sealed, released to live tasks under policy.
  const providers = new ProviderStore(db.prisma, { audit: auditIn, clock, sealer: secrets });
  const vault = new TokenVault({ prisma: db.prisma, providers, sealer: secrets, clock, random, audit: auditIn, baseUrl: config.issuer });
  // What the vault released to a task ends with it: revoked at the provider once the task ends or its token is revoked.
  const reapFailed = (err: unknown) => logger.warn({ err }, 'the token vault could not revoke released tokens now; it tries again');
  tasks.onEnded(() => vault.reapSoon(reapFailed));
  // A revocation of a user, a session or a connector also revokes the stored grants whose provider's revoke_on says so.
  revocations.revokesGrants((tx, selector, cause, reason, actor) => vault.revokeForRevocation(tx, selector, cause, reason, actor));
  revocations.onCommitted(() => vault.reapSoon(reapFailed));
  const exchange = new TokenExchange({
    issuer: config.issuer,
    authority: rotator,
    bundle,
    entries,
    resources,
    tasks,
    history: taskEvents,
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
    metrics: telemetry,
    vault: { vault, providers },
  });
  const refusals = (event: AuditEventInput) => audit.append(event);
  // AuthZEN: per-call decisions on the same policy set, the user and connector from Writ's task record.
  const evaluator = new AccessEvaluator({
    policies,
    resources,
    tasks,
    connectorOwner: async (spiffeId) => {
      const enabled = (await entries.bySpiffeId(spiffeId)).filter((e) => e.enabled);
      return enabled.length === 0 ? undefined : (enabled[0]!.metadata.owner ?? '');
    },
    subjectRevoked: (issuer, subject, since) => revocations.subjectRevoked(issuer, subject, undefined, since),
    userRisk: (issuer, subject) => risks.level(issuer, subject),
    audit,
    history: taskEvents,
    approvals,
    tokenOfTask: async (jti, taskId) => (await leases.tokenAlive(jti, clock.now())) && (await leases.get(jti))?.taskId === taskId,
    clock,
    random,
  });
  const introspection = new Introspection({ issuer: config.issuer, leases, resources, bundle, audit: refusals, clock, ...(boundMs !== undefined && { revocationBoundMs: boundMs }) });
  const tokenRevocation = new TokenRevocation({ issuer: config.issuer, leases, revocations, bundle, audit: refusals, clock });
  const signals = new SignalIntake(signalReceiver, new SignalApplier(db.prisma, revocations, audit, { riskRevokeLevels: config.riskRevokeLevels, clock, maxAgeSeconds: config.leaseRetention, freshness, metrics: telemetry }));
  const app = createApiApp({
    errorHandlers: [oauthErrorHandler(new OAuthRefusals(refusals)), signalsErrorHandler(signals)],
    before: [forwardedClientCertificates({ proxies: config.trustedProxies, bundle, clock })],
    routers: [
      oauthRouter({ issuer: config.issuer, exchange, introspection, revocation: tokenRevocation, admin, trustDomain: config.trustDomain, ...(people && { people }) }),
      bundleRouter(bundle),
      svidRouter({ ...auth, issuer, denylist: () => svidDenylist(db.prisma, rotator, { issuer: config.issuer, clock }) }),
      authzenRouter({ ...auth, evaluator, issuer: config.issuer }),
      agentRouter({ ...auth, issuer, revokedSerials: (ids) => revokedSvidSerials(db.prisma, ids, clock.now()) }),
      tasksRouter({ ...auth, tasks, events: taskEvents, resources }),
      approvalsRouter({ ...auth, approvals }),
      signInRouter({ clientId: config.adminAudience, issuers: config.identityProviders.map((p) => p.issuer) }),
      ...(consoleSignIn && people ? [consoleRouter({ signIn: consoleSignIn, roleOf: people.roleOf })] : []),
      signalsRouter({ intake: signals }),
      vaultLinksRouter({ vault, people: auth, ...(consoleSignIn && { signIn: consoleSignIn }) }),
      adminOnly(auth, vaultAdminRouter({ vault, providers })),
      adminRouter({ ...auth, joinTokens, limits, resources, policies, revocations, roleBindings, auditReader: new AuditReader(db.prisma), rotateCa: (overlap, actor) => rotateCa(overlap, actor) }),
    ],
    logger,
    metrics,
    random,
  });
  return { app, tasks, webhooks, vault, reapFailed, providers };
}

/**
 * Starts Writ: CA material (checked before anything else), storage, the trust bundle,
 * the admin credential, the broker's own SVID, the HTTPS API and the ops listener.
 */
export async function startBroker(config: Config, deps: BrokerDeps = {}): Promise<Broker> {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? systemRandom;
  const logger = deps.logger ?? brokerLogger(config);
  const terminal = deps.terminal ?? process.stderr;

  // Every check that changes nothing comes first (policy file, JWKS and CA files, ports): a mistake leaves no CA, rows or token behind.
  const { attestors, identityProviders, signalReceiver } = await preflight(config, { clock, checkPorts: deps.speaksForAll !== false, ...(deps.attestors && { attestors: deps.attestors }) });
  // Key custody: the KEK when one is set, else the files of WRIT_CA_DIR (created on a first start).
  const custody = await openKeyCustody(config, { clock, random, logger });

  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, clock, random, logger });
  let watch: RevocationWatch = noRevocationWatch;
  let feed: PgRevocationWatch | undefined;
  try {
    logger.info({ database: config.databaseUrl ? redactDatabaseUrl(config.databaseUrl) : `embedded (${config.dataDir})`, applied: db.migrations.applied }, 'database ready');
    const telemetry = new PrometheusMetrics();
    const audit = new AuditLog(db.prisma, clock, telemetry);
    const { kind: custodyKind, store: bundleStore, rotator, bundle, published } = await custody.start(db.prisma, audit);

    const { admin, tokenFile } = await adminCredential(db, config, audit, random, logger, deps.speaksForAll === false ? undefined : terminal, deps.showAdminToken ?? tokenLine(terminal));
    if (config.adminBootstrapToken === 'disabled') {
      // Only once someone else can administer Writ: people with a role binding (and sign-in on), or an admin SVID's entry.
      const people = config.adminAudience !== undefined && (config.adminRoles.some((b) => b.role === 'admin') || (await db.prisma.roleBinding.count({ where: { role: 'admin' } })) > 0);
      const automation = (await db.prisma.registrationEntry.count({ where: { admin: true, enabled: true } })) > 0;
      if (!people && !automation) throw new ConfigError('admin_bootstrap_token', 'disabled, but nobody else can administer Writ: bind the admin role to a group or user (WRIT_ADMIN_ROLES, with WRIT_ADMIN_AUDIENCE) or create an admin entry first');
      admin.disable();
      logger.info('the bootstrap admin token is disabled');
    }

    // Replicas share PostgreSQL: each keeps a view of revocations that every other one announces,
    // and caches what the hot paths read until any replica announces a change to it.
    if (config.databaseUrl) watch = feed = await PgRevocationWatch.start(config.databaseUrl, db.prisma, { clock, logger, boundMs: config.revocationBoundMs });
    // On PostgreSQL, liveness reads have the revocation bound as their deadline (a silent partition answers "no" in time).
    const boundMs = config.databaseUrl ? config.revocationBoundMs : undefined;
    // Cached reads are trusted only while the database is open and the listener current: otherwise every read asks the database (and fails closed).
    const freshness = whileOpen(db, watch);
    const policies = new PolicyStore(db.prisma, audit.appendIn, freshness);
    if (config.policyFile) await seedPolicies(policies, config.policyFile);
    const leases = new PrismaLeaseStore(db.prisma, watch, audit, freshness, { boundMs, metrics: telemetry, ...(db.sql && { sql: db.sql }) });
    // Each request's epoch: the latest revocation marker this replica has heard of (src/leases/ordering.ts).
    const epochs = new RevocationEpochs(db.prisma, watch, freshness);
    const serverSvid = brokerSvid(config, rotator, leases, clock, random);

    let shuttingDown = false;
    const metrics = new HttpMetrics(telemetry.registry);
    const { app, tasks, webhooks, vault, reapFailed, providers } = wireApi({ config, db, freshness, clock, random, logger, audit, rotator, bundle, leases, epochs, policies, admin, attestors, identityProviders, signalReceiver, boundMs, metrics, telemetry, rotateCa: (overlap, actor) => rotateCa(overlap, actor), secrets: custody.secrets });
    // The token vault's providers from the configuration, their secrets read from their files now (a bad file stops the start).
    await providers.syncConfigured(config.vaultProviders, (p) => {
      const path = (p.clientSecretFile ?? p.privateKeyFile)!;
      try {
        return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw new ConfigError('vault_providers', `${p.id}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    });
    // KEK rotation (or a move to a KEK): the vault's secrets are sealed again under the current key, now and, while
    // this replica also holds the old key, every minute (what replicas still on the old key seal during the rollout).
    const reseal = () =>
      vault.resealSecrets().then((n) => {
        if (n.providers + n.grants + n.releases > 0) logger.info({ kek: custody.secrets.kekId, ...n }, 'token vault secrets sealed again under the current key-encryption key');
      });
    let resealTimer: ReturnType<typeof setInterval> | undefined;
    if (custody.secrets.rotating) {
      await reseal();
      resealTimer = setInterval(() => void reseal().catch((err: unknown) => logger.warn({ err }, 'the token vault could not seal its secrets again now; it tries again')), RESEAL_INTERVAL_MS);
      resealTimer.unref();
    }
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
    observeState(telemetry, { db, watch: feed, rotator, serverSvid, clock });
    const registry = telemetry.registry;
    const ops = createOpsServer({ readiness, metrics: deps.metricsEndpoint?.(registry) ?? { contentType: registry.contentType, text: () => registry.metrics() } });
    const apiAddress = await listen(api, config.port, config.host, 'WRIT_PORT');
    const opsAddress = await listen(ops, config.opsPort, config.opsHost, 'WRIT_OPS_PORT').catch((e: unknown) => {
      api.close();
      throw e;
    });
    serverRotator.start();
    webhooks?.start();
    vault.startReaping(VAULT_REAP_INTERVAL_MS, reapFailed);

    const apiUrl = urlOf('https', apiAddress);
    const opsUrl = urlOf('http', opsAddress);
    logger.info({ api: apiUrl, ops: opsUrl, trustDomain: config.trustDomain, bundle: `${apiUrl}/v1/bundle`, spiffeSequence: published.sequence }, 'writ listening');
    if (terminal.isTTY) {
      const engine = await policies.engine();
      showStartupSummary(terminal, {
        apiUrl,
        opsUrl,
        bundleUrl: `${apiUrl}/v1/bundle`,
        trustDomain: config.trustDomain,
        policy: engine.version === '0' ? undefined : { version: engine.version, policies: engine.policyIds.length },
        identityProviders: config.identityProviders.length,
        signalTransmitters: config.signalTransmitters.length,
        adminTokenFile: tokenFile,
      });
    }

    let stopping: Promise<void> | undefined;
    const shutdown = () =>
      (stopping ??= (async () => {
        shuttingDown = true;
        await serverRotator.stop(); // a renewal in progress writes its lease first
        logger.info('shutting down: no new connections; finishing in-flight requests');
        await drain(api, config.shutdownGrace);
        await closeNow(ops);
        await webhooks?.stop();
        vault.stopReaping();
        if (resealTimer) clearInterval(resealTimer);
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
