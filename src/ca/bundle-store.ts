import type { JsonWebKey } from 'node:crypto';
import type { Clock } from '../core/clock';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { TrustBundle } from '../spiffe/bundle';
import { CaError, RotationRefused } from './errors';
import type { SealedKey } from './kek';

/** An authority as stored: an X.509 CA certificate or a JWT public key. */
export interface AuthorityRecord {
  /** x509: SHA-256 of the certificate DER (hex); jwt: the key ID. */
  readonly id: string;
  readonly use: 'x509-svid' | 'jwt-svid';
  /** x509: certificate DER; jwt: the public JWK as UTF-8 JSON. */
  readonly material: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

interface StoredAuthority extends AuthorityRecord {
  readonly retiredAt: Date | null;
  readonly activatesAt: Date | null;
}

/**
 * States: prepared (activatesAt set: published, waiting for activation at or after that
 * time), active (signing: neither), retired (retiredAt set: published for the grace period).
 */
const isActive = (a: StoredAuthority) => a.retiredAt === null && a.activatesAt === null;
const isPrepared = (a: StoredAuthority) => a.retiredAt === null && a.activatesAt !== null;

export interface BundleStoreOptions {
  trustDomain: string;
  refreshHint: number;
  /** Seconds a retired authority stays published: the longest life of anything it signed. */
  retiredGrace: number;
  clock: Clock;
}

/** A sealed private key to store beside its authority (KEK custody). */
export interface AuthorityKeyRecord extends SealedKey {
  readonly authorityId: string;
}

export interface PublishOptions {
  /** Let `current` replace other active authorities (they retire) instead of refusing. */
  readonly replace?: boolean;
  /** Sealed keys of authorities in `current`, stored when those are added. */
  readonly keys?: readonly AuthorityKeyRecord[];
  /** With `replace`, a prepared rotation retires too (KEK custody: the replacement is final; its keys go). */
  readonly retirePrepared?: boolean;
  /** Runs in the publish's transaction with what it did: the audit events commit with the change. */
  readonly inTransaction?: InTransaction<PublishResult>;
}

/** A step (the audit events of a change) that commits in the change's own transaction. */
export type InTransaction<T> = (tx: Prisma.TransactionClient, result: T) => Promise<void>;

const storedKey = (k: AuthorityKeyRecord) => ({ authorityId: k.authorityId, kekId: k.kekId, nonce: Uint8Array.from(k.nonce), ciphertext: Uint8Array.from(k.ciphertext) });

/** What a publish did: the resulting bundle and the authority IDs it added, retired and removed. */
export interface PublishResult {
  readonly bundle: TrustBundle;
  readonly added: readonly string[];
  readonly retired: readonly string[];
  readonly removed: readonly string[];
}

/** Serializes bundle changes across replicas (pg_advisory_xact_lock). */
const BUNDLE_LOCK_KEY = 0x57726974; // "Writ"

const USE_NAMES = { 'x509-svid': 'CA', 'jwt-svid': 'JWT signing key' } as const;

/**
 * The trust bundle in the database, shared by every replica. An authority is published
 * from when it is added until it expires, or until `retiredGrace` after it retires.
 * spiffe_sequence increments exactly when the document changes (SPIFFE Trust Domain
 * and Bundle §4.1.1): an authority added or removed, or a new refresh hint.
 */
export class BundleStore {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly opts: BundleStoreOptions,
  ) {}

  private published(a: StoredAuthority, now: Date): boolean {
    if (a.notAfter <= now) return false;
    return a.retiredAt === null || a.retiredAt.getTime() + this.opts.retiredGrace * 1000 > now.getTime();
  }

  /**
   * Makes `current` the authorities that sign from now on. Refuses when the bundle names
   * another active authority (replicas must share one CA) unless `replace` is set; then
   * the others retire and stay published for the grace period. Drops authorities whose
   * publication ended.
   */
  async publish(current: readonly AuthorityRecord[], opts: PublishOptions = {}): Promise<PublishResult> {
    return this.locked((tx) => this.publishIn(tx, current, opts));
  }

  /** Runs `fn` in a transaction holding the bundle lock: bundle changes of every replica are serialized. */
  async locked<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${BUNDLE_LOCK_KEY})`);
      return fn(tx);
    });
  }

  /** `publish` inside a transaction that holds the bundle lock (see `locked`). */
  async publishIn(tx: Prisma.TransactionClient, current: readonly AuthorityRecord[], { replace = false, keys = [], retirePrepared = false, inTransaction }: PublishOptions = {}): Promise<PublishResult> {
    const { trustDomain, refreshHint } = this.opts;
    const now = this.opts.clock.now();
    const foreign = await tx.bundle.findFirst({ where: { trustDomain: { not: trustDomain } }, select: { trustDomain: true } });
    if (foreign) {
      throw new CaError(`the database holds the bundle of trust domain "${foreign.trustDomain}", not "${trustDomain}"`, { setting: 'WRIT_TRUST_DOMAIN' });
    }
    // A new bundle starts at sequence 0 so that its first publish makes it 1.
    const row = await tx.bundle.upsert({ where: { trustDomain }, create: { trustDomain, sequence: 0n, refreshHint }, update: {} });
    const before = (await tx.authority.findMany({ where: { trustDomain } })) as StoredAuthority[];
    const currentIds = new Set(current.map((a) => a.id));
    const others = before.filter((b) => isActive(b) && !currentIds.has(b.id) && this.published(b, now));
    if (others.length > 0 && !replace) {
      const o = others[0]!;
      if (!keys.length && (await tx.authorityKey.count({ where: { authorityId: { in: others.map((b) => b.id) } } })) > 0) {
        throw new CaError(
          `the trust bundle's active ${USE_NAMES[o.use]} (${o.id.slice(0, 16)}…) is kept in the database, sealed under a key-encryption key: set WRIT_KEK_FILE to that KEK, as on the other replicas`,
          { setting: 'WRIT_KEK_FILE' },
        );
      }
      throw new CaError(
        `the trust bundle's active ${USE_NAMES[o.use]} (${o.id.slice(0, 16)}…) is not the one in WRIT_CA_DIR: all replicas must sign with one CA. Several replicas need WRIT_KEK_FILE (one KEK for all: the CA is then kept in the database, sealed) or one operator-provided CA mounted in every replica's WRIT_CA_DIR; to replace the CA instead, start once with WRIT_CA_REPLACE=true`,
        { setting: 'WRIT_CA_DIR' },
      );
    }
    const added: string[] = [];
    for (const a of current) {
      const existing = before.find((b) => b.id === a.id);
      if (!existing) {
        await tx.authority.create({ data: { ...a, material: Uint8Array.from(a.material), trustDomain } });
        added.push(a.id);
        const key = keys.find((k) => k.authorityId === a.id);
        if (key) await tx.authorityKey.create({ data: storedKey(key) });
      } else if (existing.retiredAt !== null) {
        await tx.authority.update({ where: { id: a.id }, data: { retiredAt: null } });
      }
    }
    // A rotation prepared before the replacement must not activate over it later (nor block a start whose new KEK cannot open it).
    const stale = replace && retirePrepared ? before.filter((b) => isPrepared(b) && !currentIds.has(b.id)) : [];
    const retired = [...others, ...stale].map((b) => b.id);
    await tx.authority.updateMany({ where: { id: { in: retired } }, data: { retiredAt: now } });
    if (keys.length > 0 || stale.length > 0) await tx.authorityKey.deleteMany({ where: { authorityId: { in: retired } } }); // replaced sealed authorities never sign again
    const removed = await this.prune(tx, now);
    // Stored rows are the set last announced under the current sequence; pruning keeps it so.
    const ids = (list: readonly { id: string }[]) => list.map((a) => a.id).sort().join(',');
    const after = await tx.authority.findMany({ where: { trustDomain }, select: { id: true } });
    if (ids(before) !== ids(after) || row.refreshHint !== refreshHint) await this.bump(tx, now);
    const result = { bundle: await this.read(tx, now), added, retired, removed };
    await inTransaction?.(tx, result);
    return result;
  }

  /**
   * Publishes authorities prepared for a rotation: in the bundle now (the sequence
   * increments); they sign once `activate` is called, at or after `activatesAt`.
   * `inTransaction` runs in the same transaction with the bundle published.
   */
  async prepare(records: readonly AuthorityRecord[], activatesAt: Date, keys: readonly AuthorityKeyRecord[] = [], inTransaction?: InTransaction<TrustBundle>): Promise<TrustBundle> {
    const { trustDomain } = this.opts;
    const now = this.opts.clock.now();
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${BUNDLE_LOCK_KEY})`);
      const pruned = await this.prune(tx, now);
      const ids = records.map((r) => r.id);
      const pending = (await tx.authority.findMany({ where: { trustDomain, retiredAt: null, activatesAt: { not: null } } })).find((a) => !ids.includes(a.id));
      // One rotation at a time, also when two replicas are asked at once.
      if (pending) throw new RotationRefused(`a rotation is already prepared; it activates at ${pending.activatesAt!.toISOString()}`);
      const existing = new Set((await tx.authority.findMany({ where: { id: { in: records.map((r) => r.id) } }, select: { id: true } })).map((r) => r.id));
      const fresh = records.filter((r) => !existing.has(r.id));
      for (const r of fresh) {
        await tx.authority.create({ data: { ...r, material: Uint8Array.from(r.material), trustDomain, activatesAt } });
        const key = keys.find((k) => k.authorityId === r.id);
        if (key) await tx.authorityKey.create({ data: storedKey(key) });
      }
      if (fresh.length > 0 || pruned.length > 0) await this.bump(tx, now);
      const bundle = await this.read(tx, now);
      await inTransaction?.(tx, bundle);
      return bundle;
    });
  }

  /**
   * Makes `ids` the active authorities now and retires the others of the same use.
   * The published set does not change. Only prepared (or already active) authorities
   * activate: one retired meanwhile (a replacement) or gone is never made to sign again,
   * and `activated` is then false with nothing changed. `inTransaction` runs in the same
   * transaction when this call changed which authorities sign.
   */
  async activate(ids: readonly string[], inTransaction?: InTransaction<{ retired: string[] }>): Promise<{ retired: string[]; changed: boolean; activated: boolean }> {
    const { trustDomain } = this.opts;
    const now = this.opts.clock.now();
    return this.locked(async (tx) => {
      const rows = (await tx.authority.findMany({ where: { trustDomain } })) as StoredAuthority[];
      if (!ids.every((id) => rows.some((r) => r.id === id && r.retiredAt === null))) return { retired: [], changed: false, activated: false };
      const uses = new Set(rows.filter((r) => ids.includes(r.id)).map((r) => r.use));
      const retire = rows.filter((r) => isActive(r) && !ids.includes(r.id) && uses.has(r.use)).map((r) => r.id);
      const changed = retire.length > 0 || rows.some((r) => ids.includes(r.id) && !isActive(r));
      await tx.authority.updateMany({ where: { id: { in: retire } }, data: { retiredAt: now } });
      await tx.authority.updateMany({ where: { id: { in: [...ids] } }, data: { retiredAt: null, activatesAt: null } });
      // A retired authority never signs again: its sealed key (KEK custody) is no longer kept.
      await tx.authorityKey.deleteMany({ where: { authorityId: { in: retire } } });
      if (changed) await inTransaction?.(tx, { retired: retire });
      return { retired: retire, changed, activated: true };
    });
  }

  /** Authorities by state now: which sign, and which are prepared (with their activation times). */
  async states(): Promise<{ active: string[]; prepared: { id: string; activatesAt: Date }[] }> {
    const rows = (await this.prisma.authority.findMany({ where: { trustDomain: this.opts.trustDomain } })) as StoredAuthority[];
    return {
      active: rows.filter(isActive).map((r) => r.id),
      prepared: rows.filter(isPrepared).map((r) => ({ id: r.id, activatesAt: r.activatesAt! })),
    };
  }

  /** Authorities by id with their sealed keys, when a KEK keeps them (null otherwise). */
  async sealed(ids: readonly string[]): Promise<{ id: string; use: string; material: Uint8Array; key: SealedKey | null }[]> {
    return this.prisma.authority.findMany({ where: { trustDomain: this.opts.trustDomain, id: { in: [...ids] } }, include: { key: true } });
  }

  /** The bundle as published now, dropping authorities whose publication ended. */
  async load(): Promise<TrustBundle> {
    const now = this.opts.clock.now();
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${BUNDLE_LOCK_KEY})`);
      if ((await this.prune(tx, now)).length > 0) await this.bump(tx, now);
      return this.read(tx, now);
    });
  }

  /** Deletes authorities whose publication ended; returns their IDs. */
  private async prune(tx: Prisma.TransactionClient, now: Date): Promise<string[]> {
    const rows = (await tx.authority.findMany({ where: { trustDomain: this.opts.trustDomain } })) as StoredAuthority[];
    const gone = rows.filter((a) => !this.published(a, now)).map((a) => a.id);
    if (gone.length === 0) return gone;
    await tx.authority.deleteMany({ where: { id: { in: gone } } });
    return gone;
  }

  private async bump(tx: Prisma.TransactionClient, now: Date): Promise<void> {
    await tx.bundle.update({
      where: { trustDomain: this.opts.trustDomain },
      data: { sequence: { increment: 1n }, refreshHint: this.opts.refreshHint, updatedAt: now },
    });
  }

  private async read(tx: Prisma.TransactionClient, now: Date): Promise<TrustBundle> {
    const { trustDomain } = this.opts;
    const bundle = await tx.bundle.findUnique({ where: { trustDomain } });
    if (!bundle) throw new CaError(`no bundle for trust domain "${trustDomain}"`);
    const rows = (await tx.authority.findMany({ where: { trustDomain }, orderBy: [{ notBefore: 'asc' }, { id: 'asc' }] })) as StoredAuthority[];
    const live = rows.filter((a) => this.published(a, now));
    return {
      trustDomain,
      sequence: Number(bundle.sequence),
      refreshHint: bundle.refreshHint,
      x509Authorities: live.filter((a) => a.use === 'x509-svid').map((a) => new Uint8Array(a.material)),
      jwtAuthorities: live
        .filter((a) => a.use === 'jwt-svid')
        .map((a) => ({ kid: a.id, publicJwk: JSON.parse(Buffer.from(a.material).toString('utf8')) as JsonWebKey })),
    };
  }
}
