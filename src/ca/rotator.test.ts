import pino from 'pino';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import type { BundleStore } from './bundle-store';
import { CaError } from './errors';
import { slotRecords, type KeyCustody } from './custody';
import { CaRotator } from './rotator';
import type { AuthoritySlot } from './slots';
import { generateJwtSigningKeyPem, generateRootCa, parseCertificateAuthority, parseJwtSigningKey } from './store';

const clock = new ManualClock();
const opts = { trustDomain: 'rotator.test', caTtl: 86400, clock, random: systemRandom };
const newSlot = async (): Promise<AuthoritySlot> => {
  const root = await generateRootCa(opts);
  return { ca: await parseCertificateAuthority(root.certPem, root.keyPem, opts), jwtKey: await parseJwtSigningKey(generateJwtSigningKeyPem(), 'test') };
};
const ids = (slot: AuthoritySlot) => slotRecords(slot).map((r) => r.id);

/**
 * The database as BundleStore shows it, with `states` answering late on demand: what it
 * answers is read when asked, as a query's snapshot is.
 */
function database(active: AuthoritySlot, prepared: AuthoritySlot, activatesAt: Date) {
  const db = { active: ids(active), prepared: ids(prepared).map((id) => ({ id, activatesAt })) };
  let hold: Promise<void> | undefined;
  let release = () => undefined as void;
  const store = {
    states: async () => {
      const snapshot = { active: [...db.active], prepared: [...db.prepared] };
      await hold;
      return snapshot;
    },
    activate: async (next: readonly string[]) => {
      const retired = db.active.filter((id) => !next.includes(id));
      db.active = [...next];
      db.prepared = db.prepared.filter((p) => !next.includes(p.id));
      return { retired, changed: retired.length > 0, activated: true };
    },
    publish: async () => ({ bundle: {}, added: [], retired: [], removed: [] }),
  } as unknown as BundleStore;
  // Sealed custody: a retired authority's key is deleted at activation, so only what is active or prepared opens.
  const custody: KeyCustody = {
    kind: 'sealed',
    loadPrepared: async (p) => (p.length > 0 ? prepared : undefined),
    generate: async () => {
      throw new Error('not here');
    },
    activating: async () => undefined,
    loadActive: async (a) => {
      for (const slot of [active, prepared]) if (ids(slot).every((id) => a.includes(id) && db.active.includes(id))) return slot;
      throw new CaError('the bundle names active authorities whose keys are not in the database');
    },
  };
  const holdStates = () => {
    hold = new Promise<void>((resolve) => (release = resolve));
    return () => {
      hold = undefined;
      release();
    };
  };
  return { store, custody, holdStates };
}

describe('CaRotator: one step at a time', () => {
  it('a change announced while the activation timer fires: the follow that read the bundle before the activation does not make the replica unable to sign', async () => {
    const [old, next] = [await newSlot(), await newSlot()];
    const { store, custody, holdStates } = database(old, next, new Date(clock.now().getTime() + 1000));
    const logger = pino({ level: 'silent' });
    const { rotator } = await CaRotator.start({ custody, store, clock, logger, overlap: 1, audit: async () => undefined }, old);
    expect(rotator.activatesAt).toBeDefined();

    const release = holdStates();
    const follow = rotator.follow(); // reads the bundle: the old authorities sign
    clock.advance(2);
    const tick = rotator.tick(); // the timer: the rotation is due
    await new Promise((r) => setImmediate(r));
    release();
    await Promise.all([follow, tick]);

    expect(rotator.inSync).toBe(true);
    expect(ids({ ca: rotator.ca, jwtKey: rotator.jwtKey })).toEqual(ids(next));
  });
});
