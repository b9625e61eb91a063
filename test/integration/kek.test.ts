import { randomBytes, createPublicKey, createPrivateKey, X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startBroker, type Broker } from '../../src/broker';
import { ManualClock } from '../../src/core/clock';
import { CaError, openKey, x509Record } from '../../src/ca';
import { readKek } from '../../src/ca/kek';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { opensslCaChain } from '../support/openssl';

const logger = pino({ level: 'silent' });
const ADMIN = 'writ_admin_kek_test_token_0123456789';

let store: TestStore;
let keys: string;
const kekPath = (name: string) => {
  const path = join(keys, name);
  if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  return path;
};

beforeAll(async () => {
  store = await createTestStore();
  keys = mkdtempSync(join(tmpdir(), 'writ-keks-'));
});
afterAll(async () => {
  await store.drop();
});

/** A broker on the test store with the given KEK files and its own WRIT_CA_DIR. */
const start = (env: Record<string, string>, s: TestStore = store) =>
  startBroker(testConfig(s, { WRIT_ADMIN_TOKEN: ADMIN, WRIT_TRUST_DOMAIN: 'kek.test', WRIT_CA_DIR: join(s.dir, `certs-${randomBytes(4).toString('hex')}`), ...env }), { logger });

async function refusal(promise: Promise<unknown>): Promise<CaError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaError);
  return err as CaError;
}

const sealedRows = (b: Broker) => b.db.prisma.authorityKey.findMany({ include: { authority: true }, orderBy: { authorityId: 'asc' } });
const authorityCount = (b: Broker) => b.db.prisma.authority.count();

describe('authority keys sealed under a key-encryption key (WRIT_KEK_FILE)', () => {
  let first: { x509: string; kid: string };

  it('the first start creates the CA and JWT key in the database, sealed, and writes nothing to WRIT_CA_DIR', async () => {
    const caDir = join(store.dir, 'certs-first');
    const broker = await start({ WRIT_KEK_FILE: kekPath('one'), WRIT_CA_DIR: caDir });
    try {
      first = { x509: x509Record(broker.ca).id, kid: broker.jwtKey.kid };
      expect(existsSync(caDir) ? readdirSync(caDir) : []).toEqual([]);
      const rows = await sealedRows(broker);
      expect(rows.map((r) => r.authority.use).sort()).toEqual(['jwt-svid', 'x509-svid']);
      const kek = readKek(kekPath('one'), 'WRIT_KEK_FILE').kek;
      for (const row of rows) {
        expect(row.kekId).toBe(kek.id);
        // What the row holds opens, under this KEK, to the private key of the authority it belongs to.
        const der = openKey([kek], { trustDomain: 'kek.test', use: row.authority.use as 'x509-svid' | 'jwt-svid', authorityId: row.authorityId }, row);
        const publicKey = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
        if (row.authority.use === 'x509-svid') {
          expect(row.authorityId).toBe(first.x509);
          expect(new X509Certificate(row.authority.material).publicKey.export({ format: 'jwk' })).toEqual(publicKey);
        } else {
          expect(row.authorityId).toBe(first.kid);
          expect(JSON.parse(Buffer.from(row.authority.material).toString('utf8'))).toMatchObject(publicKey);
        }
        expect(Buffer.from(row.ciphertext).includes(der.subarray(-32))).toBe(false);
      }
      const events = await broker.db.prisma.auditEvent.findMany({ where: { type: { in: ['ca.created', 'jwt_key.created'] } } });
      expect(events).toHaveLength(2);
      // Published in the custody's transaction, and audited as in file custody.
      const added = await broker.db.prisma.auditEvent.findMany({ where: { type: 'bundle.authority_added' } });
      expect(added.map((e) => (e.details as { authority: string }).authority).sort()).toEqual([first.x509, first.kid].sort());
      // What the custody's transaction created and published is audited in it, in the order it happened, and chained.
      const startup = await broker.db.prisma.auditEvent.findMany({ orderBy: { seq: 'asc' }, take: 4 });
      expect(startup.map((e) => e.type)).toEqual(['ca.created', 'jwt_key.created', 'bundle.authority_added', 'bundle.authority_added']);
      expect(await broker.audit.verify()).toBeUndefined();
    } finally {
      await broker.shutdown();
    }
  });

  it('a restart (another WRIT_CA_DIR: another replica) loads the same authorities and creates nothing', async () => {
    const broker = await start({ WRIT_KEK_FILE: kekPath('one') });
    try {
      expect(x509Record(broker.ca).id).toBe(first.x509);
      expect(broker.jwtKey.kid).toBe(first.kid);
      expect(await authorityCount(broker)).toBe(2);
      expect(await broker.db.prisma.auditEvent.count({ where: { type: 'ca.created' } })).toBe(1);
    } finally {
      await broker.shutdown();
    }
  });

  it('a wrong KEK stops the start, naming WRIT_KEK_FILE and both KEK ids, and never makes a new CA', async () => {
    const err = await refusal(start({ WRIT_KEK_FILE: kekPath('wrong') }));
    expect(err.setting).toBe('WRIT_KEK_FILE');
    expect(err.message).toContain(readKek(kekPath('one'), 'WRIT_KEK_FILE').kek.id);
    expect(err.message).toContain(readKek(kekPath('wrong'), 'WRIT_KEK_FILE').kek.id);
    const broker = await start({ WRIT_KEK_FILE: kekPath('one') });
    try {
      expect(await authorityCount(broker)).toBe(2);
      expect(x509Record(broker.ca).id).toBe(first.x509);
    } finally {
      await broker.shutdown();
    }
  });

  it('rows cannot be swapped: a key moved to another authority does not authenticate, and the start stops', async () => {
    let broker = await start({ WRIT_KEK_FILE: kekPath('one') });
    const rows = await sealedRows(broker);
    const [a, b] = rows as [(typeof rows)[0], (typeof rows)[0]];
    const swap = async (x: typeof a, y: typeof a) => {
      await broker.db.prisma.authorityKey.update({ where: { authorityId: x.authorityId }, data: { nonce: y.nonce, ciphertext: y.ciphertext } });
      await broker.db.prisma.authorityKey.update({ where: { authorityId: y.authorityId }, data: { nonce: x.nonce, ciphertext: x.ciphertext } });
    };
    await swap(a, b);
    await broker.shutdown();
    const err = await refusal(start({ WRIT_KEK_FILE: kekPath('one') }));
    expect(err.message).toContain('sealed for another authority');
    expect(err.setting).toBe('WRIT_KEK_FILE');
    const fixer = await reopen();
    try {
      await fixer.query('UPDATE authority_key SET nonce = $2, ciphertext = $3 WHERE authority_id = $1', [a.authorityId, Buffer.from(a.nonce), Buffer.from(a.ciphertext)]);
      await fixer.query('UPDATE authority_key SET nonce = $2, ciphertext = $3 WHERE authority_id = $1', [b.authorityId, Buffer.from(b.nonce), Buffer.from(b.ciphertext)]);
    } finally {
      await fixer.end();
    }
    broker = await start({ WRIT_KEK_FILE: kekPath('one') });
    expect(x509Record(broker.ca).id).toBe(first.x509);
    await broker.shutdown();
  });

  it('KEK rotation: with the new KEK and WRIT_KEK_PREVIOUS_FILE the keys are sealed again; afterwards the old KEK is not needed', async () => {
    let broker = await start({ WRIT_KEK_FILE: kekPath('two'), WRIT_KEK_PREVIOUS_FILE: kekPath('one') });
    const two = readKek(kekPath('two'), 'WRIT_KEK_FILE').kek;
    try {
      expect(x509Record(broker.ca).id).toBe(first.x509);
      const rows = await sealedRows(broker);
      expect(rows.map((r) => r.kekId)).toEqual([two.id, two.id]);
      expect(rows.every((r) => r.resealedAt !== null)).toBe(true);
      const event = await broker.db.prisma.auditEvent.findFirst({ where: { type: 'kek.rotated' } });
      expect(event?.details).toMatchObject({ kek: two.id, resealed: 2 });
    } finally {
      await broker.shutdown();
    }
    broker = await start({ WRIT_KEK_FILE: kekPath('two') });
    expect(broker.jwtKey.kid).toBe(first.kid);
    await broker.shutdown();
    const err = await refusal(start({ WRIT_KEK_FILE: kekPath('one') }));
    expect(err.setting).toBe('WRIT_KEK_FILE');
  });

  it('a lost KEK: a new KEK with WRIT_CA_REPLACE=true makes new authorities; the old ones retire (still published) and their sealed keys are deleted', async () => {
    const broker = await start({ WRIT_KEK_FILE: kekPath('after-loss'), WRIT_CA_REPLACE: 'true' });
    try {
      expect(x509Record(broker.ca).id).not.toBe(first.x509);
      expect(broker.jwtKey.kid).not.toBe(first.kid);
      const rows = await sealedRows(broker);
      expect(rows.map((r) => r.authorityId).sort()).toEqual([x509Record(broker.ca).id, broker.jwtKey.kid].sort());
      const old = await broker.db.prisma.authority.findUnique({ where: { id: first.x509 } });
      expect(old?.retiredAt).not.toBeNull();
      const retired = await broker.db.prisma.auditEvent.findMany({ where: { type: 'bundle.authority_retired' } });
      expect(retired.map((e) => (e.details as { authority: string }).authority).sort()).toEqual([first.x509, first.kid].sort());
    } finally {
      await broker.shutdown();
    }
  });

  it('WRIT_CA_REPLACE=true is idempotent with a KEK: a later start with the flag (the next pod of a rolling upgrade) keeps the replacement', async () => {
    const first = await start({ WRIT_KEK_FILE: kekPath('after-loss') });
    const ids = { x509: x509Record(first.ca).id, kid: first.jwtKey.kid };
    await first.shutdown();
    const again = await start({ WRIT_KEK_FILE: kekPath('after-loss'), WRIT_CA_REPLACE: 'true' });
    try {
      expect(x509Record(again.ca).id).toBe(ids.x509);
      expect(again.jwtKey.kid).toBe(ids.kid);
      expect(await again.db.prisma.authority.count({ where: { retiredAt: null } })).toBe(2);
    } finally {
      await again.shutdown();
    }
  });

  it('a lost KEK while a rotation is prepared: WRIT_CA_REPLACE=true still recovers, and the prepared authorities retire with the old ones', async () => {
    const s = await createTestStore();
    try {
      const before = await start({ WRIT_KEK_FILE: kekPath('prepared-lost') }, s);
      const prepared = await before.rotator.rotate(3600);
      await before.shutdown();
      const broker = await start({ WRIT_KEK_FILE: kekPath('prepared-new'), WRIT_CA_REPLACE: 'true' }, s);
      const replacement = x509Record(broker.ca).id;
      try {
        expect(broker.rotator.activatesAt).toBeUndefined();
        for (const id of [prepared.x509Authority, prepared.jwtAuthority]) {
          const row = await broker.db.prisma.authority.findUnique({ where: { id }, include: { key: true } });
          expect(row?.retiredAt).not.toBeNull();
          expect(row?.activatesAt).not.toBeNull();
          expect(row?.key).toBeNull(); // sealed under the lost KEK, and never to sign
        }
      } finally {
        await broker.shutdown();
      }
      const again = await start({ WRIT_KEK_FILE: kekPath('prepared-new') }, s);
      expect(x509Record(again.ca).id).toBe(replacement);
      await again.shutdown();
    } finally {
      await s.drop();
    }
  });

  it('a broker without the KEK on a database whose keys are sealed refuses, saying to set WRIT_KEK_FILE', async () => {
    const err = await refusal(start({}));
    expect(err.setting).toBe('WRIT_KEK_FILE');
    expect(err.message).toContain('set WRIT_KEK_FILE');
  });
});

/** A plain SQL connection to the test store (PostgreSQL), or, embedded, a broker's Prisma client. */
async function reopen(): Promise<{ query: (sql: string, params: unknown[]) => Promise<unknown>; end: () => Promise<void> }> {
  if (store.databaseUrl) {
    const { Client } = await import('pg');
    const client = new Client({ connectionString: store.databaseUrl });
    await client.connect();
    return { query: (sql, params) => client.query(sql, params), end: () => client.end() };
  }
  // Embedded: the database opens in one process at a time; a broker that fails the KEK check never opened it for long.
  const { openDatabase } = await import('../../src/db');
  const db = await openDatabase({ databaseUrl: undefined, dataDir: join(store.dir, 'data'), clock: { now: () => new Date() }, random: { bytes: (n) => randomBytes(n), uuid: () => crypto.randomUUID() }, logger });
  return { query: (sql, params) => db.prisma.$executeRawUnsafe(sql, ...params), end: () => db.close() };
}

describe('moving to a KEK, and an upstream CA with a KEK', () => {
  it('a CA kept in WRIT_CA_DIR before the KEK was set is sealed into the database at the first start with the KEK', async () => {
    const s = await createTestStore();
    try {
      const caDir = join(s.dir, 'files');
      const before = await start({ WRIT_CA_DIR: caDir }, s);
      const ids = { x509: x509Record(before.ca).id, kid: before.jwtKey.kid };
      await before.shutdown();
      const broker = await start({ WRIT_CA_DIR: caDir, WRIT_KEK_FILE: kekPath('move') }, s);
      try {
        expect(x509Record(broker.ca).id).toBe(ids.x509);
        expect(broker.jwtKey.kid).toBe(ids.kid);
        expect((await sealedRows(broker)).map((r) => r.authorityId).sort()).toEqual([ids.x509, ids.kid].sort());
        expect(await broker.db.prisma.auditEvent.count({ where: { type: 'authority_key.sealed' } })).toBe(2);
      } finally {
        await broker.shutdown();
      }
      // From now on any replica with the KEK loads them, without the files.
      const replica = await start({ WRIT_KEK_FILE: kekPath('move') }, s);
      expect(x509Record(replica.ca).id).toBe(ids.x509);
      await replica.shutdown();
    } finally {
      await s.drop();
    }
  });

  it('an operator-provided intermediate stays in its files; only the JWT key is sealed, and every start loads the same one', async () => {
    const s = await createTestStore();
    const pki = mkdtempSync(join(tmpdir(), 'writ-kek-upstream-'));
    try {
      opensslCaChain(pki, { intSan: 'URI:spiffe://kek.test' });
      const caDir = join(pki, 'secret');
      mkdirSync(caDir);
      writeFileSync(join(caDir, 'ca.crt'), readFileSync(join(pki, 'int.crt'), 'utf8') + readFileSync(join(pki, 'root.crt'), 'utf8'));
      copyFileSync(join(pki, 'int.key'), join(caDir, 'ca.key'));
      const a = await start({ WRIT_CA_DIR: caDir, WRIT_KEK_FILE: kekPath('upstream') }, s);
      let kid: string;
      try {
        expect(a.ca.chain).toHaveLength(1);
        kid = a.jwtKey.kid;
        expect((await sealedRows(a)).map((r) => r.authorityId)).toEqual([kid]);
        expect(readdirSync(caDir).sort()).toEqual(['ca.crt', 'ca.key']);
      } finally {
        await a.shutdown();
      }
      const b = await start({ WRIT_CA_DIR: caDir, WRIT_KEK_FILE: kekPath('upstream') }, s);
      expect(b.jwtKey.kid).toBe(kid);
      expect(b.ca.certificate.subject).toBe('CN=Operator Intermediate');
      await b.shutdown();
      // A replica without the Secret mounted: the KEK is right; WRIT_CA_DIR is what to fix.
      const err = await refusal(start({ WRIT_KEK_FILE: kekPath('upstream') }, s));
      expect(err.setting).toBe('WRIT_CA_DIR');
      expect(err.message).toContain('operator-provided CA is mounted in WRIT_CA_DIR');
    } finally {
      await s.drop();
    }
  });
});

(usingPostgres() ? describe : describe.skip)('replicas on one PostgreSQL', () => {
  it('two replicas starting at once with one KEK make exactly one CA', async () => {
    const s = await createTestStore();
    try {
      const [a, b] = await Promise.all([start({ WRIT_KEK_FILE: kekPath('race') }, s), start({ WRIT_KEK_FILE: kekPath('race') }, s)]);
      try {
        expect(x509Record(a.ca).id).toBe(x509Record(b.ca).id);
        expect(a.jwtKey.kid).toBe(b.jwtKey.kid);
        expect(await authorityCount(a)).toBe(2);
        expect(await a.db.prisma.auditEvent.count({ where: { type: 'ca.created' } })).toBe(1);
      } finally {
        await Promise.all([a.shutdown(), b.shutdown()]);
      }
    } finally {
      await s.drop();
    }
  });

  it('a rotation prepared before another replica replaced the CA (a lost KEK, WRIT_CA_REPLACE=true) never activates; the replica that cannot open the replacement fails closed', async () => {
    const s = await createTestStore();
    const clock = new ManualClock(Date.now());
    const at = (env: Record<string, string>) =>
      startBroker(testConfig(s, { WRIT_ADMIN_TOKEN: ADMIN, WRIT_TRUST_DOMAIN: 'kek.test', WRIT_CA_DIR: join(s.dir, `certs-${randomBytes(4).toString('hex')}`), ...env }), { logger, clock });
    try {
      const a = await at({ WRIT_KEK_FILE: kekPath('stale') });
      const prepared = await a.rotator.rotate(60);
      const b = await at({ WRIT_KEK_FILE: kekPath('stale-replaced'), WRIT_CA_REPLACE: 'true' });
      try {
        const replacement = x509Record(b.ca).id;
        expect(replacement).not.toBe(prepared.x509Authority);
        clock.advance(61);
        await a.tick();
        await b.tick();
        expect(x509Record(b.ca).id).toBe(replacement);
        // A still holds the old KEK: it must not activate its stale rotation, and cannot sign with the replacement.
        expect(() => a.ca).toThrow(/does not hold the CA that signs now/);
        expect((await a.readiness()).ready).toBe(false);
        expect((await b.readiness()).ready).toBe(true);
        const rows = await b.db.prisma.authority.findMany({ where: { id: { in: [replacement, prepared.x509Authority] } } });
        expect(rows.find((r) => r.id === replacement)).toMatchObject({ retiredAt: null, activatesAt: null });
        expect(rows.find((r) => r.id === prepared.x509Authority)?.retiredAt).not.toBeNull();
      } finally {
        await Promise.all([a.shutdown(), b.shutdown()]);
      }
    } finally {
      await s.drop();
    }
  });

  it('KEK rotation during a rolling update: a rotation prepared by a replica with only the old KEK is sealed again by one that has both', async () => {
    const s = await createTestStore();
    try {
      const old = await start({ WRIT_KEK_FILE: kekPath('roll-old') }, s);
      const both = await start({ WRIT_KEK_FILE: kekPath('roll-new'), WRIT_KEK_PREVIOUS_FILE: kekPath('roll-old') }, s);
      const fresh = readKek(kekPath('roll-new'), 'WRIT_KEK_FILE').kek.id;
      try {
        const prepared = await old.rotator.rotate(3600); // sealed under the old KEK: the only one this replica has
        const sealedUnder = async () => (await sealedRows(both)).filter((r) => [prepared.x509Authority, prepared.jwtAuthority].includes(r.authorityId)).map((r) => r.kekId);
        expect(await sealedUnder()).not.toContain(fresh);
        // The replica with both KEKs hears of the prepared rotation, loads it, and seals it again under the new KEK.
        const deadline = Date.now() + 2000;
        while ((await sealedUnder()).some((id) => id !== fresh) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        expect(await sealedUnder()).toEqual([fresh, fresh]);
      } finally {
        await Promise.all([old.shutdown(), both.shutdown()]);
      }
      // Once the rollout is done the old KEK is not needed: the prepared rotation loads with the new one alone.
      const after = await start({ WRIT_KEK_FILE: kekPath('roll-new') }, s);
      expect(after.rotator.activatesAt).toBeDefined();
      await after.shutdown();
    } finally {
      await s.drop();
    }
  });

  it('without a KEK, a second replica with its own WRIT_CA_DIR refuses to start, saying what to configure', async () => {
    const s = await createTestStore();
    try {
      const a = await start({}, s);
      try {
        const err = await refusal(start({}, s));
        expect(err.setting).toBe('WRIT_CA_DIR');
        expect(err.message).toContain('Several replicas need WRIT_KEK_FILE');
        expect(err.message).toContain('operator-provided CA');
      } finally {
        await a.shutdown();
      }
    } finally {
      await s.drop();
    }
  });
});
