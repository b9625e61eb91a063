import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DomainMetrics, GroupCommitQueue, Outcome, RevocationHandle, SignalEventLabel, TokenBindingKind } from './metrics';

/** What the broker reads when Prometheus scrapes: state that is cheaper to read than to track. */
export interface ScrapeSources {
  /** Live (neither revoked nor expired) leases by kind; rejects when the database cannot answer. */
  activeLeases?: () => Promise<Readonly<Record<string, number>>>;
  /** When the active CA and the serving certificate stop being valid (the JWT key has no expiry: it rotates with the CA). */
  authorities?: () => { readonly x509_ca?: Date; readonly server_svid?: Date };
  /** The PostgreSQL revocation change feed: connected, and milliseconds since it was last heard (absent on the embedded database). */
  revocationFeed?: () => { readonly connected: boolean; readonly silentForMs: number | undefined };
  /** The pg pool's connections (absent on the embedded database). */
  pool?: () => { readonly total: number; readonly idle: number; readonly waiting: number };
  /** Milliseconds since the epoch, as the broker's clock says. */
  now: () => number;
}

const SECOND_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Prometheus metrics for one broker process: the process defaults, the HTTP layer's and the
 * domains' counters, and gauges read at scrape time. Several worker processes are summed by the
 * primary (src/cluster/metrics.ts); each gauge says how (`aggregator`): a count every worker reads
 * from the shared database is the same in each (`max`), expiry is the soonest (`min`).
 */
export class PrometheusMetrics implements DomainMetrics {
  readonly registry = new Registry();
  readonly #tokens: Counter<'chained' | 'binding'>;
  readonly #decisions: Counter<'kind' | 'decision'>;
  readonly #attestations: Counter<'attestor' | 'outcome'>;
  readonly #renewals: Counter<'outcome'>;
  readonly #jwtSvids: Counter<'outcome'>;
  readonly #revocations: Counter<'handle'>;
  readonly #leasesRevoked: Counter<'handle'>;
  readonly #signals: Counter<'event' | 'outcome'>;
  readonly #batches: Histogram<'queue'>;
  /** Attestor names that may appear as labels: those the broker has (others count as `unknown`). */
  #attestors: ReadonlySet<string> = new Set();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#tokens = new Counter({ name: 'writ_tokens_issued_total', help: 'Task tokens issued by token exchange (RFC 8693), their leases committed', labelNames: ['chained', 'binding'], registers });
    this.#decisions = new Counter({ name: 'writ_policy_decisions_total', help: 'Cedar decisions: one per requested tool and action (action), one per chained hop (delegate)', labelNames: ['kind', 'decision'], registers });
    this.#attestations = new Counter({ name: 'writ_attestations_total', help: 'X.509-SVID attestations, by attestor and outcome', labelNames: ['attestor', 'outcome'], registers });
    this.#renewals = new Counter({ name: 'writ_svid_renewals_total', help: 'X.509-SVID renewals over mTLS, by outcome', labelNames: ['outcome'], registers });
    this.#jwtSvids = new Counter({ name: 'writ_jwt_svids_total', help: 'JWT-SVID requests, by outcome', labelNames: ['outcome'], registers });
    this.#revocations = new Counter({ name: 'writ_revocations_total', help: 'Committed revocations, by the handle they named', labelNames: ['handle'], registers });
    this.#leasesRevoked = new Counter({ name: 'writ_leases_revoked_total', help: 'Leases ended by revocations, by the handle named', labelNames: ['handle'], registers });
    this.#signals = new Counter({ name: 'writ_signals_total', help: 'Shared Signals SETs received (RFC 8935): per event when applied, per SET when replayed or refused', labelNames: ['event', 'outcome'], registers });
    this.#batches = new Histogram({ name: 'writ_group_commit_batch_size', help: 'Rows written per group-commit transaction', labelNames: ['queue'], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
  }

  /** Names the attestors whose names may be labels. */
  knowAttestors(names: readonly string[]): void {
    this.#attestors = new Set(names);
  }

  /** The gauges read at scrape time; sources the broker does not have (the embedded database has no pool) are left out. */
  observe(sources: ScrapeSources): void {
    const registers = [this.registry];
    const { activeLeases, authorities, revocationFeed, pool, now } = sources;
    if (activeLeases) {
      new Gauge({
        name: 'writ_active_leases',
        help: 'Leases neither revoked nor expired, by kind (read from the database at scrape)',
        labelNames: ['kind'],
        registers,
        aggregator: 'max',
        async collect() {
          this.reset();
          // A database that cannot answer leaves the gauge empty: the scrape still answers, and `absent()` alerts.
          const counts = await activeLeases().catch(() => undefined);
          for (const [kind, n] of Object.entries(counts ?? {})) this.set({ kind }, n);
        },
      });
    }
    if (authorities) {
      new Gauge({
        name: 'writ_authority_expiry_seconds',
        help: 'Seconds until the active X.509 CA and the serving certificate (the server SVID) expire',
        labelNames: ['authority'],
        registers,
        aggregator: 'min',
        collect() {
          this.reset();
          for (const [authority, at] of Object.entries(authorities())) if (at) this.set({ authority }, (at.getTime() - now()) / 1000);
        },
      });
    }
    if (revocationFeed) {
      new Gauge({
        name: 'writ_revocation_feed_connected',
        help: 'Whether this process listens to the PostgreSQL revocation change feed (1) or is reconnecting (0)',
        registers,
        aggregator: 'min',
        collect() {
          this.set(revocationFeed().connected ? 1 : 0);
        },
      });
      new Gauge({
        name: 'writ_revocation_feed_staleness_seconds',
        help: 'Seconds since this process last heard the revocation change feed (a notification or its heartbeat)',
        registers,
        aggregator: 'max',
        collect() {
          const { silentForMs } = revocationFeed();
          this.reset();
          if (silentForMs !== undefined) this.set(silentForMs / 1000);
        },
      });
    }
    if (pool) {
      new Gauge({
        name: 'writ_db_pool_connections',
        help: 'PostgreSQL pool connections: open (total), idle, and requests waiting for one',
        labelNames: ['state'],
        registers,
        aggregator: 'sum',
        collect() {
          const p = pool();
          this.set({ state: 'total' }, p.total);
          this.set({ state: 'idle' }, p.idle);
          this.set({ state: 'waiting' }, p.waiting);
        },
      });
    }
  }

  tokenIssued(token: { readonly chained: boolean; readonly binding: TokenBindingKind }): void {
    this.#tokens.inc({ chained: String(token.chained), binding: token.binding });
  }

  policyDecision(kind: 'action' | 'delegate' | 'use_grant', allowed: boolean): void {
    this.#decisions.inc({ kind, decision: allowed ? 'allow' : 'deny' });
  }

  attestation(attestor: string, outcome: Outcome): void {
    this.#attestations.inc({ attestor: this.#attestors.has(attestor) ? attestor : 'unknown', outcome });
  }

  svidRenewal(outcome: Outcome): void {
    this.#renewals.inc({ outcome });
  }

  jwtSvid(outcome: Outcome): void {
    this.#jwtSvids.inc({ outcome });
  }

  revoked(handle: RevocationHandle, leases: number): void {
    this.#revocations.inc({ handle });
    this.#leasesRevoked.inc({ handle }, leases);
  }

  signal(event: SignalEventLabel, outcome: 'applied' | 'replayed' | 'refused'): void {
    this.#signals.inc({ event, outcome });
  }

  batchCommitted(queue: GroupCommitQueue, size: number): void {
    this.#batches.observe({ queue }, size);
  }
}

export { SECOND_BUCKETS };
