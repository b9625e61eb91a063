import type { Logger } from 'pino';
import type { AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import type { CertificateAuthority } from './authority';
import type { BundleStore, PublishOptions, PublishResult } from './bundle-store';
import { CaUnavailable, RotationRefused } from './errors';
import { jwtRecord, slotRecords, x509Record, type KeyCustody } from './custody';
import type { AuthoritySlot } from './slots';
import type { JwtSigningKey } from './store';

/** What signs now. SvidIssuer and ServerSvid read it at each use, so a rotation takes effect at once. */
export interface SigningAuthorities {
  readonly ca: CertificateAuthority;
  readonly jwtKey: JwtSigningKey;
}


export interface RotatorOptions {
  /** Where the private keys are kept: WRIT_CA_DIR's files, or the database sealed under the KEK. */
  custody: KeyCustody;
  /** Seconds between publishing new authorities and signing with them. */
  overlap: number;
  store: BundleStore;
  clock: Clock;
  logger: Logger;
  /** Where rotation steps are recorded, each in the transaction that makes it. */
  audit: AuditIn;
}

export interface PreparedRotation {
  readonly x509Authority: string;
  readonly jwtAuthority: string;
  readonly activatesAt: Date;
}

/** Prepare the next authorities once two thirds of the active CA's life have passed. */
const PREPARE_AT_FRACTION = 2 / 3;

const records = slotRecords;
export { x509Record, jwtRecord };

/**
 * CA rotation (SPIRE's prepared → active → old): `rotate` prepares new authorities and
 * publishes them; `tick` activates them once the overlap has passed (every replica
 * then has the new roots), prepares on schedule before the CA nears its end, and
 * follows a rotation another replica made. Retired authorities stay in the bundle
 * until everything they signed has expired (BundleStore's grace).
 */
export class CaRotator implements SigningAuthorities {
  #active: AuthoritySlot;
  #prepared: { slot: AuthoritySlot; activatesAt: Date } | undefined;
  #inSync = true;
  /** The step running now: steps run one at a time (see `exclusive`). */
  #step: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly opts: RotatorOptions,
    active: AuthoritySlot,
  ) {
    this.#active = active;
  }

  /** Fails closed (503) while this replica cannot load the CA the bundle names: it must not sign with a retired one. */
  get ca(): CertificateAuthority {
    if (!this.#inSync) throw new CaUnavailable('this replica does not hold the CA that signs now; it issues nothing until it does');
    return this.#active.ca;
  }

  get jwtKey(): JwtSigningKey {
    if (!this.#inSync) throw new CaUnavailable('this replica does not hold the JWT key that signs now; it issues nothing until it does');
    return this.#active.jwtKey;
  }

  /** False when the database names active authorities that this replica cannot load. */
  get inSync(): boolean {
    return this.#inSync;
  }

  /** Writ generated this CA (a self-signed root), so Writ may replace it; an upstream intermediate comes from the operator. */
  get managed(): boolean {
    return this.#active.ca.chain.length === 0;
  }

  /** When a prepared rotation activates, if one is known to this replica: a timer can call `tick` then. */
  get activatesAt(): Date | undefined {
    return this.#prepared?.activatesAt;
  }

  /**
   * Reconciles the key custody with the bundle in the database at start-up, then
   * publishes the active authorities (see BundleStore.publish for `replace`).
   */
  static async start(opts: RotatorOptions, active: AuthoritySlot, { replace = false, inTransaction }: Pick<PublishOptions, 'replace' | 'inTransaction'> = {}): Promise<{ rotator: CaRotator; published: PublishResult }> {
    const rotator = new CaRotator(opts, active);
    const states = await opts.store.states();
    const mine = records(active).map((r) => r.id);
    // The files hold a prepared authority as active: an activation stopped between renaming
    // the files and telling the database. Finish it.
    if (mine.some((id) => states.prepared.some((p) => p.id === id))) await opts.store.activate(mine);
    const prepared = await opts.custody.loadPrepared(states.prepared.map((p) => p.id));
    if (prepared) {
      const ids = records(prepared).map((r) => r.id);
      const known = states.prepared.find((p) => ids.includes(p.id));
      if (ids.some((id) => states.active.includes(id)) || (known && known.activatesAt <= opts.clock.now())) {
        await rotator.activate(prepared);
      } else {
        const activatesAt = known?.activatesAt ?? new Date(opts.clock.now().getTime() + opts.overlap * 1000);
        if (!known) await opts.store.prepare(records(prepared), activatesAt);
        rotator.#prepared = { slot: prepared, activatesAt };
      }
    }
    const published = await opts.store.publish(records(rotator.#active), { replace, inTransaction });
    return { rotator, published };
  }

  /**
   * Runs one step after the one running now. The activation timer, the periodic tick, a
   * change announced by another replica and an admin's rotation may ask at once, and each
   * step reads the database before it changes the slots: interleaved, a step would act on
   * what another had just changed (and, say, find the authorities it activated unknown).
   */
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#step.then(step);
    this.#step = run.catch(() => undefined);
    return run;
  }

  /**
   * Prepares new authorities and publishes them; they sign after `overlap` seconds.
   * `requestedBy`: the operator who asked, recorded with the preparation.
   */
  rotate(overlap?: number, requestedBy?: string): Promise<PreparedRotation> {
    return this.exclusive(() => this.prepareNext(overlap ?? this.opts.overlap, requestedBy === undefined ? undefined : { actor: requestedBy, overlap: overlap ?? null }));
  }

  private async prepareNext(overlap: number, request?: { actor: string; overlap: number | null }): Promise<PreparedRotation> {
    if (!this.managed) throw new RotationRefused('the CA is an operator-provided intermediate: get a new one from the upstream CA, put it in WRIT_CA_DIR and start with WRIT_CA_REPLACE=true');
    const pending = this.#prepared ?? (await this.opts.store.states()).prepared[0];
    if (pending) throw new RotationRefused(`a rotation is already prepared; it activates at ${pending.activatesAt.toISOString()}`);
    const { slot, keys } = await this.opts.custody.generate();
    const activatesAt = new Date(this.opts.clock.now().getTime() + overlap * 1000);
    const [x509, jwt] = records(slot).map((r) => r.id) as [string, string];
    await this.opts.store.prepare(records(slot), activatesAt, keys, async (tx, bundle) => {
      await this.opts.audit(tx, { type: 'ca.rotation_prepared', actor: 'writ', details: { x509Authority: x509, jwtAuthority: jwt, activatesAt: activatesAt.toISOString(), spiffeSequence: bundle.sequence } });
      if (request) await this.opts.audit(tx, { type: 'ca.rotation_requested', actor: request.actor, details: { overlap: request.overlap } });
    });
    this.#prepared = { slot, activatesAt };
    this.opts.logger.info({ x509Authority: x509, jwtAuthority: jwt, activatesAt: activatesAt.toISOString() }, 'CA rotation prepared');
    return { x509Authority: x509, jwtAuthority: jwt, activatesAt };
  }

  /**
   * One step of the schedule: activate a prepared rotation whose time has come, prepare
   * one when the CA nears its end, follow a rotation another replica made. Returns
   * whether the signing authorities changed.
   */
  tick(): Promise<boolean> {
    return this.exclusive(() => this.advance());
  }

  private async advance(): Promise<boolean> {
    const now = this.opts.clock.now();
    if (this.#prepared && now >= this.#prepared.activatesAt) {
      if (await this.activate(this.#prepared.slot)) return true;
      return this.reconcile(); // no longer prepared (replaced meanwhile): follow what the bundle names
    }
    const { ca } = this.#active;
    const life = ca.notAfter.getTime() - ca.certificate.notBefore.getTime();
    if (!this.#prepared && this.managed && now.getTime() >= ca.certificate.notBefore.getTime() + life * PREPARE_AT_FRACTION) {
      await this.prepareNext(Math.min(this.opts.overlap, Math.max(0, (ca.notAfter.getTime() - now.getTime()) / 2000))).catch((e: unknown) => {
        if (!(e instanceof RotationRefused)) throw e; // another replica prepared one at the same moment: follow it
      });
      return this.reconcile();
    }
    return this.reconcile();
  }

  /**
   * Follows the bundle in the database: loads the authorities another replica activated,
   * and learns of a rotation another replica prepared (so that any replica activates it on
   * time, also when the one that prepared it is gone). Returns whether the signing
   * authorities changed.
   */
  follow(): Promise<boolean> {
    return this.exclusive(() => this.reconcile());
  }

  private async reconcile(): Promise<boolean> {
    const { active, prepared } = await this.opts.store.states();
    if (!this.#prepared && prepared.length > 0) {
      const slot = await this.opts.custody.loadPrepared(prepared.map((p) => p.id)).catch((e: Error) => {
        this.opts.logger.warn({ err: { message: e.message } }, 'cannot load the prepared authorities');
        return undefined;
      });
      const ids = slot ? records(slot).map((r) => r.id) : [];
      const known = prepared.find((p) => ids.includes(p.id));
      if (slot && known) this.#prepared = { slot, activatesAt: known.activatesAt };
    }
    const mine = records(this.#active).map((r) => r.id);
    if (mine.every((id) => active.includes(id))) {
      this.#inSync = true;
      return false;
    }
    const loaded = await this.opts.custody.loadActive(active).catch((e: Error) => {
      this.opts.logger.error({ err: { message: e.message } }, 'cannot load the authorities the bundle names active');
      return undefined;
    });
    const ids = loaded ? records(loaded).map((r) => r.id) : [];
    this.#inSync = ids.length > 0 && ids.every((id) => active.includes(id));
    if (!this.#inSync || !loaded) {
      this.opts.logger.error({ active }, `the bundle names active authorities that this replica does not hold (${this.opts.custody.kind === 'files' ? 'the CA files in WRIT_CA_DIR' : 'sealed keys in the database'})`);
      return false;
    }
    this.#active = loaded;
    if (this.#prepared && records(this.#prepared.slot).some((r) => ids.includes(r.id))) this.#prepared = undefined;
    this.opts.logger.info({ x509Authority: ids[0] }, 'following a CA rotation made by another replica');
    return true;
  }

  /** Makes `slot` sign; false (and nothing signs differently) when the database no longer names it prepared. */
  private async activate(slot: AuthoritySlot): Promise<boolean> {
    await this.opts.custody.activating(); // files first: a start after a crash here activates in the database too
    const ids = records(slot).map((r) => r.id);
    const { changed, activated, retired } = await this.opts.store.activate(ids, (tx, { retired }) =>
      this.opts.audit(tx, { type: 'ca.rotation_activated', actor: 'writ', details: { x509Authority: ids[0], jwtAuthority: ids[1], retired } }).then(() => undefined),
    );
    if (!activated) {
      this.#prepared = undefined;
      this.opts.logger.warn({ x509Authority: ids[0] }, 'the prepared authorities are no longer prepared (retired by a CA replacement, or gone); they never sign');
      return false;
    }
    const previous = this.#active;
    this.#active = slot;
    this.#prepared = undefined;
    this.#inSync = true;
    if (!changed) return true; // another replica activated it first, and said so
    this.opts.logger.info({ x509Authority: ids[0], retired, previous: previous.ca.certificate.serialNumber }, 'CA rotation activated');
    return true;
  }
}
