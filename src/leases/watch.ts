import { Client } from 'pg';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { Freshness } from '../db/read-cache';

/** The PostgreSQL channel on which a committed revocation is announced to every replica. */
export const REVOCATION_CHANNEL = 'writ_revocations';
/** The channel on which triggers announce changes to cached tables (entries, resources, policies, risk, subject revocations). */
export const CHANGE_CHANNEL = 'writ_changes';
/** NOTIFY payloads must stay under 8000 bytes; larger revocations ask listeners to reload. */
const MAX_PAYLOAD = 7000;

/** What a revocation revoked: lease ids (token jtis) and X.509-SVID serials, and when the latest of them expires. */
export interface Revoked {
  readonly jtis: readonly string[];
  readonly serials: readonly string[];
  /** Epoch ms after which none of them matters any more (the view forgets them then). */
  readonly until?: number;
}

/**
 * Announces a revocation inside its transaction: PostgreSQL delivers the notification
 * only when the transaction commits, so listeners never hear of one that rolled back.
 */
export async function announceRevoked(tx: Prisma.TransactionClient, revoked: Revoked): Promise<void> {
  if (revoked.jtis.length === 0 && revoked.serials.length === 0) return;
  const payload = JSON.stringify(revoked);
  await tx.$executeRaw`SELECT pg_notify(${REVOCATION_CHANNEL}, ${payload.length <= MAX_PAYLOAD ? payload : '{"reload":true}'})`;
}

/**
 * This replica's in-memory view of revocations, kept current by every replica's
 * announcements; and, as `Freshness`, the generation of everything else it caches.
 */
export interface RevocationWatch extends Freshness {
  /** Whether the token (jti) or SVID (serial) is known to be revoked. A fast "no"; the database stays authoritative. */
  isRevoked(id: { jti?: string; serial?: string }): boolean;
  /**
   * True only while the view is complete and was heard from within the revocation bound
   * (WRIT_REVOCATION_BOUND_MS): past it, callers read the database instead of their caches.
   */
  readonly current: boolean;
  /** The listener is connected and has reloaded (readiness); it may still be quiet for a moment. */
  readonly connected: boolean;
  /** The latest revocation marker (its sequence) this replica has heard of. */
  readonly epoch: number;
  /** A revocation this replica committed itself: its epoch moves past it now. */
  observe(seq: number): void;
  /** Forgets revocations of leases that have expired anyway. */
  prune(): void;
  /**
   * Calls `listener` with the table's name when another replica (or this one) changes a
   * watched table, and with undefined after the listener reconnected (anything may have changed).
   */
  onChange(listener: (table: string | undefined) => void): void;
  close(): Promise<void>;
}

/** No view (the embedded database serves one process): callers rely on the database alone. */
export const noRevocationWatch: RevocationWatch = {
  isRevoked: () => false,
  current: false,
  connected: false,
  epoch: 0,
  observe: () => undefined,
  generation: 0,
  touch: () => undefined,
  prune: () => undefined,
  onChange: () => undefined,
  close: async () => undefined,
};

export interface WatchOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Delay between reconnection attempts (default 1 s). */
  readonly retryMs?: number;
  /**
   * The revocation bound (default 1 s): the view is trusted only while it heard from PostgreSQL
   * within it. The listener asks a heartbeat four times per bound; no answer within two bounds
   * means the connection is gone (a silent partition), and it reconnects.
   */
  readonly boundMs?: number;
  /** A monotonic clock in ms (default performance.now): the bound is measured on it, never on wall time. */
  readonly monotonic?: () => number;
}

/**
 * LISTENs for revocations on a dedicated connection. After losing that connection it
 * reconnects and reloads every revoked, unexpired lease from the table before it calls
 * itself current again, so a dropped notification never leaves a revoked token unknown.
 */
export class PgRevocationWatch implements RevocationWatch {
  /** Revoked ids, each with the time after which it no longer matters (its lease's expiry). */
  #jtis = new Map<string, number>();
  #serials = new Map<string, number>();
  /** Announcements heard while a reload runs: merged after it, so none is lost. */
  #pending: Revoked[] | undefined;
  #connected = false;
  #heardAt = -Infinity;
  #epoch = 0;
  #generation = 0;
  #closed = false;
  #client: Client | undefined;
  #retry: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #listeners: ((table: string | undefined) => void)[] = [];

  private constructor(
    private readonly url: string,
    private readonly prisma: PrismaClient,
    private readonly opts: WatchOptions,
  ) {}

  static async start(url: string, prisma: PrismaClient, opts: WatchOptions): Promise<PgRevocationWatch> {
    const watch = new PgRevocationWatch(url, prisma, opts);
    await watch.#connect();
    return watch;
  }

  get current(): boolean {
    return this.#connected && this.#now() - this.#heardAt < this.#bound;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Milliseconds since PostgreSQL was last heard on the listening connection (a notification or a heartbeat's answer); undefined before the first. */
  get silentForMs(): number | undefined {
    return this.#heardAt === -Infinity ? undefined : this.#now() - this.#heardAt;
  }

  get epoch(): number {
    return this.#epoch;
  }

  observe(seq: number): void {
    if (seq > this.#epoch) this.#epoch = seq;
  }

  get #bound(): number {
    return this.opts.boundMs ?? 1000;
  }

  #now(): number {
    return (this.opts.monotonic ?? performance.now.bind(performance))();
  }

  get generation(): number {
    return this.#generation;
  }

  touch(): void {
    this.#generation++;
  }

  isRevoked(id: { jti?: string; serial?: string }): boolean {
    return (id.jti !== undefined && this.#jtis.has(id.jti)) || (id.serial !== undefined && this.#serials.has(id.serial));
  }

  /** Forgets revocations of leases that have expired anyway (expiry alone now refuses them). */
  prune(): void {
    const now = this.opts.clock.now().getTime();
    for (const map of [this.#jtis, this.#serials]) for (const [id, until] of map) if (until <= now) map.delete(id);
  }

  onChange(listener: (table: string | undefined) => void): void {
    this.#listeners.push(listener);
  }

  #changed(table: string | undefined): void {
    this.#generation++;
    for (const listener of this.#listeners) listener(table);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#heartbeat);
    await this.#client?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    // TCP keep-alive and a heartbeat: a listening connection only receives, so one dropped
    // silently (a NAT or firewall idle timeout) would otherwise look alive forever.
    const client = new Client({ connectionString: this.url, application_name: 'writ-revocation-watch', keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    client.on('notification', (msg) => {
      if (this.#client === client) this.#heardAt = this.#now();
      if (msg.channel === CHANGE_CHANNEL) this.#changed(msg.payload);
      else this.#apply(msg.payload);
    });
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    await client.connect();
    await client.query(`LISTEN ${REVOCATION_CHANNEL}; LISTEN ${CHANGE_CHANNEL}`);
    this.#client = client;
    await this.#reload(); // listening first, then reading: nothing committed in between is missed
    this.#connected = true;
    this.#heardAt = this.#now();
    this.#changed(undefined); // whatever was cached before the connection was lost is dropped
    this.#beat(client);
  }

  /**
   * Asks the listening connection itself a trivial question four times per bound; each answer
   * (like each notification) renews the view's trust for one bound. No answer within two bounds
   * means the connection is gone, silently or not: it is dropped and a new one reloads. An answer
   * already received is processed before judging, so a busy event loop is not taken for a dead
   * connection.
   */
  #beat(client: Client): void {
    const bound = this.#bound;
    clearInterval(this.#heartbeat);
    let askedAt: number | undefined;
    this.#heartbeat = setInterval(() => {
      if (this.#client !== client) return;
      if (askedAt === undefined) {
        askedAt = this.#now();
        client.query('SELECT 1').then(
          () => {
            askedAt = undefined;
            if (this.#client === client) this.#heardAt = this.#now();
          },
          () => undefined, // an error also ends the client: 'error'/'end' call #lost
        );
        return;
      }
      setImmediate(() => {
        if (this.#client !== client || askedAt === undefined || this.#now() - askedAt < 2 * bound) return;
        this.opts.logger.warn('revocation listener did not answer its heartbeat');
        this.#lost(client);
        void client.end().catch(() => undefined);
      });
    }, Math.max(10, Math.floor(bound / 4)));
    this.#heartbeat.unref();
  }

  #lost(client: Client): void {
    if (this.#closed || this.#client !== client) return;
    clearInterval(this.#heartbeat);
    this.#connected = false;
    this.#client = undefined;
    this.opts.logger.warn('revocation listener lost; reconnecting');
    const retry = () => {
      this.#retry = setTimeout(() => {
        this.#connect().catch(() => retry());
      }, this.opts.retryMs ?? 1000);
      this.#retry.unref();
    };
    retry();
  }

  async #reload(): Promise<void> {
    this.#pending = [];
    try {
      const rows = await this.prisma.lease.findMany({
        where: { revokedAt: { not: null }, expiresAt: { gt: this.opts.clock.now() } },
        select: { id: true, serial: true, expiresAt: true },
      });
      const latest = await this.prisma.revocation.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
      this.observe(Number(latest?.seq ?? 0)); // read after LISTEN: later markers are announced
      this.#jtis = new Map(rows.map((r) => [r.id, r.expiresAt.getTime()]));
      this.#serials = new Map(rows.flatMap((r) => (r.serial ? [[r.serial, r.expiresAt.getTime()] as const] : [])));
      for (const revoked of this.#pending) this.#add(revoked);
    } finally {
      this.#pending = undefined;
    }
    this.prune();
  }

  /** Reloads, retrying until it succeeds; not current meanwhile. */
  #reloadUntilDone(): void {
    this.#connected = false;
    this.#reload().then(
      () => (this.#connected = this.#client !== undefined),
      () => {
        if (this.#closed) return;
        this.#retry = setTimeout(() => this.#reloadUntilDone(), this.opts.retryMs ?? 1000);
        this.#retry.unref();
      },
    );
  }

  #add(revoked: Partial<Revoked>): void {
    const until = revoked.until ?? Number.MAX_SAFE_INTEGER;
    for (const jti of revoked.jtis ?? []) this.#jtis.set(jti, until);
    for (const serial of revoked.serials ?? []) this.#serials.set(serial, until);
  }

  #apply(payload: string | undefined): void {
    let revoked: Partial<Revoked> & { reload?: boolean; seq?: number };
    try {
      revoked = JSON.parse(payload ?? '{}') as Partial<Revoked> & { reload?: boolean; seq?: number };
    } catch {
      revoked = { reload: true }; // a payload we cannot read: reload rather than guess
    }
    if (revoked.reload) return this.#reloadUntilDone(); // the reload reads the latest marker too
    this.#pending?.push(revoked as Revoked);
    this.#add(revoked);
    // A marker's announcement comes last in its transaction: what it revoked is applied first.
    if (typeof revoked.seq === 'number') this.observe(revoked.seq);
  }
}
