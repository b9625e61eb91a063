import { createPrivateKey } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Prisma } from '../db/generated/client';
import type { BundleStore, AuthorityKeyRecord, AuthorityRecord, PublishResult } from './bundle-store';
import type { CertificateAuthority } from './authority';
import { CaError } from './errors';
import { openKey, sealKey, type AuthorityBinding, type Kek } from './kek';
import { activatePreparedSlot, loadActiveSlot, loadPreparedSlot, writePreparedSlot, type AuthoritySlot } from './slots';
import {
  CA_CERT_FILE,
  CA_KEY_FILE,
  JWT_KEY_FILE,
  generateJwtSigningKeyPem,
  generateRootCa,
  parseCertificateAuthority,
  parseJwtSigningKey,
  readCaFile,
  type CaStoreOptions,
  type JwtSigningKey,
} from './store';
import { sha256 } from '../core/hash';
import { certificateToPem } from '../spiffe/bundle';

/** The authority record of a CA: its id is the SHA-256 of the trust anchor's DER. */
export const x509Record = (ca: CertificateAuthority): AuthorityRecord => {
  const der = new Uint8Array(ca.anchor.rawData);
  return { id: sha256(der, 'hex'), use: 'x509-svid', material: der, notBefore: ca.anchor.notBefore, notAfter: ca.anchor.notAfter };
};

/** The JWT key is published for as long as the CA it serves beside. */
export const jwtRecord = (key: JwtSigningKey, ca: CertificateAuthority): AuthorityRecord => ({
  id: key.kid,
  use: 'jwt-svid',
  material: Buffer.from(JSON.stringify(key.publicJwk)),
  notBefore: ca.certificate.notBefore,
  notAfter: ca.notAfter,
});

export const slotRecords = (slot: AuthoritySlot): AuthorityRecord[] => [x509Record(slot.ca), jwtRecord(slot.jwtKey, slot.ca)];

/**
 * Where the authorities' private keys are kept: the files of WRIT_CA_DIR (one host), or
 * the database sealed under a key-encryption key (replicas). CaRotator works through it.
 */
export interface KeyCustody {
  readonly kind: 'files' | 'sealed';
  /** The prepared slot this custody holds for a prepared rotation (`prepared`: ids the bundle names prepared), if whole. */
  loadPrepared(prepared: readonly string[]): Promise<AuthoritySlot | undefined>;
  /** New authorities for a rotation, with the sealed keys to store beside their authority rows (none for files). */
  generate(): Promise<{ slot: AuthoritySlot; keys: AuthorityKeyRecord[] }>;
  /** Called just before the database makes the prepared slot active (files: the renames, so a crash is finished at start). */
  activating(): Promise<void>;
  /** The slot whose authorities the bundle names active (`active`: their ids); never generates. */
  loadActive(active: readonly string[]): Promise<AuthoritySlot>;
}

type SlotOptions = Pick<CaStoreOptions, 'dir' | 'trustDomain' | 'caTtl' | 'clock' | 'random'>;

/** Keys in WRIT_CA_DIR (SPIRE's disk key manager): the active and prepared slots as files. */
export class FileCustody implements KeyCustody {
  readonly kind = 'files';

  constructor(private readonly opts: SlotOptions) {}

  loadPrepared(): Promise<AuthoritySlot | undefined> {
    return loadPreparedSlot(this.opts);
  }

  async generate(): Promise<{ slot: AuthoritySlot; keys: AuthorityKeyRecord[] }> {
    return { slot: await writePreparedSlot(this.opts), keys: [] };
  }

  async activating(): Promise<void> {
    activatePreparedSlot(this.opts.dir);
  }

  loadActive(): Promise<AuthoritySlot> {
    return loadActiveSlot(this.opts);
  }
}

export interface SealedCustodyOptions extends SlotOptions {
  store: BundleStore;
  /** The KEK that seals (WRIT_KEK_FILE) and, during a KEK rotation, the one it replaces. */
  kek: Kek;
  previousKek?: Kek;
  /** Let new authorities replace those the bundle names active (WRIT_CA_REPLACE). */
  replace: boolean;
}

/** What the first start of a replica found or made. */
export interface SealedStart {
  readonly slot: AuthoritySlot;
  /** Generated now (the first replica of a new deployment, or a replacement). */
  readonly created: { readonly ca: boolean; readonly jwtKey: boolean };
  /** Taken from files in WRIT_CA_DIR into the database (a move from file custody, or an upstream CA's JWT key). */
  readonly imported: readonly string[];
  /** Keys sealed again under the new KEK (KEK rotation). */
  readonly resealed: number;
  /** The CA comes from WRIT_CA_DIR (an operator-provided intermediate), not from the database. */
  readonly upstream: boolean;
  /** What publishing them changed (authorities added or retired), when this start published. */
  readonly published?: PublishResult;
}

const pkcs8 = (pem: string | Buffer) => createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
const pemOf = (der: Buffer) => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;

/**
 * Keys in PostgreSQL sealed under the KEK (AES-256-GCM, bound to their authority), so every
 * replica signs with the same authorities. The first replica creates them inside the
 * bundle lock; the others load them. A key sealed under a KEK this replica does not hold
 * stops the start (CaError naming WRIT_KEK_FILE), never makes a new CA.
 *
 * An operator-provided intermediate (ca.crt with its chain and ca.key in WRIT_CA_DIR, a
 * mounted Secret) stays in its files; only the JWT key is then kept sealed.
 */
export class SealedCustody implements KeyCustody {
  readonly kind = 'sealed';
  #upstream: CertificateAuthority | undefined;

  constructor(private readonly opts: SealedCustodyOptions) {}

  private get keks(): Kek[] {
    return this.opts.previousKek ? [this.opts.kek, this.opts.previousKek] : [this.opts.kek];
  }

  private binding(id: string, use: AuthorityBinding['use']): AuthorityBinding {
    return { trustDomain: this.opts.trustDomain, use, authorityId: id };
  }

  private seal(id: string, use: AuthorityBinding['use'], pem: string | Buffer): AuthorityKeyRecord {
    return { authorityId: id, ...sealKey(this.opts.kek, this.binding(id, use), pkcs8(pem), this.opts.random) };
  }

  /** CA material in WRIT_CA_DIR, if any: an upstream intermediate, or a CA kept in files before the KEK was set. */
  private async filesCa(): Promise<{ ca: CertificateAuthority; keyPem: Buffer } | undefined> {
    const dir = resolve(this.opts.dir);
    const cert = readCaFile(join(dir, CA_CERT_FILE));
    const key = readCaFile(join(dir, CA_KEY_FILE));
    if (!cert && !key) return undefined;
    if (!cert || !key) throw new CaError(`${dir} holds ${cert ? CA_CERT_FILE : CA_KEY_FILE} without ${cert ? CA_KEY_FILE : CA_CERT_FILE}`, { setting: 'WRIT_CA_DIR' });
    return { ca: await parseCertificateAuthority(cert.toString('utf8'), key, this.opts), keyPem: key };
  }

  private async filesJwtKey(): Promise<{ key: JwtSigningKey; pem: Buffer } | undefined> {
    const pem = readCaFile(join(resolve(this.opts.dir), JWT_KEY_FILE));
    return pem ? { key: await parseJwtSigningKey(pem, JWT_KEY_FILE), pem } : undefined;
  }

  /**
   * Start-up: loads the active authorities, or creates them on the first start, in one
   * transaction under the bundle lock, so replicas starting at once make exactly one CA.
   * Keys still sealed under the previous KEK are sealed again under the new one.
   * `inTransaction` runs last in that transaction (the audit events of what it changed).
   */
  async start(inTransaction?: (tx: Prisma.TransactionClient, start: SealedStart) => Promise<void>): Promise<SealedStart> {
    const files = await this.filesCa();
    const upstream = files && files.ca.chain.length > 0 ? files.ca : undefined;
    this.#upstream = upstream;
    const filesJwt = await this.filesJwtKey();
    const { store, trustDomain, replace } = this.opts;
    return store.locked(async (tx) => {
      const foreign = await tx.bundle.findFirst({ where: { trustDomain: { not: trustDomain } }, select: { trustDomain: true } });
      if (foreign) throw new CaError(`the database holds the bundle of trust domain "${foreign.trustDomain}", not "${trustDomain}"`, { setting: 'WRIT_TRUST_DOMAIN' });
      const resealed = await this.reseal(tx);
      const active = await tx.authority.findMany({ where: { trustDomain, retiredAt: null, activatesAt: null }, include: { key: true } });
      const now = this.opts.clock.now();
      const live = active.filter((a) => a.notAfter > now);
      // An active key this replica opens is kept, also with WRIT_CA_REPLACE: every pod of a rolling
      // upgrade starts with the flag, and only the first must replace. What replace replaces is what
      // cannot be opened (a lost KEK) or has no sealed key; an operator-provided CA replaces by its files.
      const opened = (row: (typeof active)[number] | undefined, use: AuthorityBinding['use']): string | undefined => {
        if (!row?.key) return undefined;
        try {
          return pemOf(openKey(this.keks, this.binding(row.id, use), row.key));
        } catch (e) {
          if (replace && e instanceof CaError) return undefined;
          throw e;
        }
      };
      const created = { ca: false, jwtKey: false };
      const imported: string[] = [];
      const keys: AuthorityKeyRecord[] = [];

      // The X.509 authority: the upstream CA's files; else the sealed active one; else import or make one.
      let ca = upstream;
      if (!ca) {
        const row = live.find((a) => a.use === 'x509-svid');
        const pem = opened(row, 'x509-svid');
        if (row && pem) {
          ca = await parseCertificateAuthority(certificateToPem(row.material), pem, this.opts);
        } else if (files && (!row || replace || x509Record(files.ca).id === row.id)) {
          ca = files.ca; // a CA kept in files before the KEK was set: moved into the database
          keys.push(this.seal(x509Record(ca).id, 'x509-svid', files.keyPem));
          imported.push(x509Record(ca).id);
        } else if (row && !replace) {
          throw new CaError(
            `the trust bundle's active CA (${row.id.slice(0, 16)}…) has no sealed key in the database: an operator-provided CA is mounted in WRIT_CA_DIR (${CA_CERT_FILE} with its chain, ${CA_KEY_FILE}) on every replica; a CA kept in files before the KEK was set is sealed by starting once with its files there; or start with WRIT_CA_REPLACE=true to replace it`,
            { setting: 'WRIT_CA_DIR' },
          );
        } else {
          const root = await generateRootCa(this.opts);
          ca = await parseCertificateAuthority(root.certPem, root.keyPem, this.opts);
          keys.push(this.seal(x509Record(ca).id, 'x509-svid', root.keyPem));
          created.ca = true;
        }
      }

      let jwtKey: JwtSigningKey;
      const jwtRow = live.find((a) => a.use === 'jwt-svid');
      const jwtPem = opened(jwtRow, 'jwt-svid');
      if (jwtRow && jwtPem) {
        jwtKey = await parseJwtSigningKey(jwtPem, 'the database');
      } else if (filesJwt && (!jwtRow || replace || filesJwt.key.kid === jwtRow.id)) {
        jwtKey = filesJwt.key;
        keys.push(this.seal(jwtKey.kid, 'jwt-svid', filesJwt.pem));
        imported.push(jwtKey.kid);
      } else if (jwtRow && !replace) {
        throw new CaError(
          `the trust bundle's active JWT signing key (${jwtRow.id.slice(0, 16)}…) has no sealed key in the database: start once with ${JWT_KEY_FILE} in WRIT_CA_DIR to seal it under the KEK, or with WRIT_CA_REPLACE=true to replace it`,
          { setting: 'WRIT_CA_DIR' },
        );
      } else {
        const pem = generateJwtSigningKeyPem();
        jwtKey = await parseJwtSigningKey(pem, 'a new JWT signing key');
        keys.push(this.seal(jwtKey.kid, 'jwt-svid', pem));
        created.jwtKey = true;
      }

      const slot = { ca, jwtKey };
      // Authorities that are new here (made, imported, or an upstream CA) are published in this
      // same transaction, with their sealed keys: a replica that takes the lock next loads them.
      const records = slotRecords(slot);
      const known = new Set(active.map((a) => a.id));
      let published: PublishResult | undefined;
      if (records.some((r) => !known.has(r.id))) {
        published = await store.publishIn(tx, records, { replace, keys, retirePrepared: true });
      } else {
        for (const k of keys) await tx.authorityKey.upsert({ where: { authorityId: k.authorityId }, create: { ...k, nonce: Uint8Array.from(k.nonce), ciphertext: Uint8Array.from(k.ciphertext) }, update: {} });
      }
      const start = { slot, created, imported, resealed, upstream: upstream !== undefined, published };
      await inTransaction?.(tx, start);
      return start;
    });
  }

  /** KEK rotation: every key sealed under the previous KEK is sealed again under the new one. */
  private async reseal(tx: Prisma.TransactionClient): Promise<number> {
    const previous = this.opts.previousKek;
    if (!previous || previous.id === this.opts.kek.id) return 0;
    const rows = await tx.authorityKey.findMany({ where: { kekId: previous.id, authority: { trustDomain: this.opts.trustDomain } }, include: { authority: { select: { use: true } } } });
    for (const row of rows) {
      const binding = this.binding(row.authorityId, row.authority.use as AuthorityBinding['use']);
      const sealed = sealKey(this.opts.kek, binding, openKey([previous], binding, row), this.opts.random);
      await tx.authorityKey.update({ where: { authorityId: row.authorityId }, data: { kekId: sealed.kekId, nonce: Uint8Array.from(sealed.nonce), ciphertext: Uint8Array.from(sealed.ciphertext), resealedAt: this.opts.clock.now() } });
    }
    return rows.length;
  }

  /** The authorities the bundle names, with their keys opened. Throws when one is missing or does not open. */
  private async slotOf(ids: readonly string[], what: string): Promise<AuthoritySlot | undefined> {
    const rows = await this.opts.store.sealed(ids);
    const jwtRow = rows.find((r) => r.use === 'jwt-svid');
    const caRow = rows.find((r) => r.use === 'x509-svid');
    if (!jwtRow?.key || (!this.#upstream && !caRow?.key)) return undefined;
    const ca = this.#upstream ?? (await parseCertificateAuthority(certificateToPem(caRow!.material), pemOf(openKey(this.keks, this.binding(caRow!.id, 'x509-svid'), caRow!.key!)), this.opts));
    const jwtKey = await parseJwtSigningKey(pemOf(openKey(this.keks, this.binding(jwtRow.id, 'jwt-svid'), jwtRow.key)), what);
    // Keys sealed under the previous KEK after this replica started (a rotation prepared by a
    // replica not yet given the new KEK, during a rolling update): sealed again now, so that the
    // previous KEK is not needed once every replica runs without it.
    const previous = this.opts.previousKek;
    if (previous && previous.id !== this.opts.kek.id && [jwtRow, caRow].some((r) => r?.key?.kekId === previous.id)) {
      await this.opts.store.locked((tx) => this.reseal(tx));
    }
    return { ca, jwtKey };
  }

  loadPrepared(prepared: readonly string[]): Promise<AuthoritySlot | undefined> {
    return prepared.length === 0 ? Promise.resolve(undefined) : this.slotOf(prepared, 'the prepared JWT signing key');
  }

  async generate(): Promise<{ slot: AuthoritySlot; keys: AuthorityKeyRecord[] }> {
    const root = await generateRootCa(this.opts);
    const pem = generateJwtSigningKeyPem();
    const slot = { ca: await parseCertificateAuthority(root.certPem, root.keyPem, this.opts), jwtKey: await parseJwtSigningKey(pem, 'a new JWT signing key') };
    const keys = [this.seal(x509Record(slot.ca).id, 'x509-svid', root.keyPem), this.seal(slot.jwtKey.kid, 'jwt-svid', pem)];
    return { slot, keys };
  }

  async activating(): Promise<void> {
    // Nothing to move: the database activation is the whole step.
  }

  async loadActive(active: readonly string[]): Promise<AuthoritySlot> {
    const slot = await this.slotOf(active, 'the active JWT signing key');
    if (!slot) throw new CaError('the bundle names active authorities whose keys are not in the database', { setting: 'WRIT_KEK_FILE' });
    return slot;
  }
}

