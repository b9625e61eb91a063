import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/core/clock';
import { systemRandom } from '../../src/core/random';
import { Client } from 'pg';
import pino from 'pino';
import { loadMigrations, migrate, MIGRATION_LOCK_KEY, MigrationError, openDatabase, type SqlSession } from '../../src/db';
import { MIGRATIONS_DIR } from '../../src/db/migrate';
import { createTestStore, usingPostgres, type TestStore } from '../support/database';
import { openSessions } from '../support/sessions';

const deps = { clock: systemClock, random: systemRandom };
let store: TestStore;
let sessions: SqlSession[];
let close: () => Promise<void>;

beforeAll(async () => {
  store = await createTestStore();
  ({ sessions, close } = await openSessions(store, 2));
});
afterAll(async () => {
  await close();
  await store.drop();
});

describe('migrator (Prisma migration layout and history)', () => {
  // On PostgreSQL the two run at once on two connections; the embedded database has a
  // single connection and serves one process (its lock file is tested elsewhere), so there they run in turn.
  it('applies each migration exactly once when two replicas migrate', async () => {
    const migrations = loadMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    const results =
      store.kind === 'postgresql'
        ? await Promise.all(sessions.map((s) => migrate(s, migrations, deps)))
        : [await migrate(sessions[0]!, migrations, deps), await migrate(sessions[1]!, migrations, deps)];
    const applied = results.flatMap((r) => r.applied);
    expect(applied.sort()).toEqual(migrations.map((m) => m.name).sort());
    const rows = await sessions[0]!.query<{ migration_name: string; n: number }>(
      'SELECT migration_name, count(*)::int AS n FROM "_prisma_migrations" GROUP BY migration_name ORDER BY migration_name',
    );
    expect(rows).toEqual(migrations.map((m) => ({ migration_name: m.name, n: 1 })));
  });

  it('records rows as `prisma migrate deploy` does: SHA-256 checksum of migration.sql, finished, one step', async () => {
    const [m] = loadMigrations();
    const [row] = await sessions[0]!.query<Record<string, unknown>>('SELECT * FROM "_prisma_migrations" WHERE migration_name = $1', [m!.name]);
    const fileSha = createHash('sha256').update(readFileSync(join(MIGRATIONS_DIR, m!.name, 'migration.sql'))).digest('hex');
    expect(row).toMatchObject({ checksum: fileSha, applied_steps_count: 1, rolled_back_at: null, logs: null });
    expect(row!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(row!.finished_at).toBeInstanceOf(Date);
  });

  it('is a no-op on the next start', async () => {
    const r = await migrate(sessions[0]!, loadMigrations(), deps);
    expect(r.applied).toEqual([]);
    expect(r.alreadyApplied).toEqual(loadMigrations().map((m) => m.name));
  });

  it('refuses to start when an applied migration was edited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const [m] = loadMigrations(dir);
    writeFileSync(join(dir, m!.name, 'migration.sql'), m!.sql + '\n-- edited\n');
    await expect(migrate(sessions[0]!, loadMigrations(dir), deps)).rejects.toThrow(new MigrationError(`migration ${m!.name} was modified after it was applied (checksum differs)`));
  });

  it('applies a new migration in a transaction: a failing one leaves no trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const bad = join(dir, '29990101000000_broken');
    cpSync(join(dir, loadMigrations(dir)[0]!.name), bad, { recursive: true });
    writeFileSync(join(bad, 'migration.sql'), 'CREATE TABLE "half_done" (id INT);\nSELECT no_such_function();\n');
    await expect(migrate(sessions[0]!, loadMigrations(dir), deps)).rejects.toThrow(/migration 29990101000000_broken failed/);
    const tables = await sessions[0]!.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'");
    expect(tables).toEqual([]);
    const history = await sessions[0]!.query("SELECT 1 FROM \"_prisma_migrations\" WHERE migration_name = '29990101000000_broken'");
    expect(history).toEqual([]);
  });

  (usingPostgres() ? it : it.skip)('refuses a database whose encoding is not UTF8, naming DATABASE_URL, before migrating it', async () => {
    const admin = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    const name = `writ_latin1_${process.pid}_${Date.now()}`;
    await admin.query(`CREATE DATABASE ${name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    try {
      const url = new URL(process.env.TEST_DATABASE_URL!);
      url.pathname = `/${name}`;
      const dir = mkdtempSync(join(tmpdir(), 'writ-latin1-'));
      await expect(openDatabase({ databaseUrl: url.toString(), dataDir: dir, clock: systemClock, random: systemRandom, logger: pino({ level: 'silent' }) })).rejects.toMatchObject({
        setting: 'DATABASE_URL',
        message: expect.stringMatching(/encoding is LATIN1; Writ needs UTF8/),
      });
      const migrated = new Client({ connectionString: url.toString() });
      await migrated.connect();
      expect((await migrated.query("SELECT to_regclass('public._prisma_migrations') AS t")).rows[0].t).toBeNull();
      await migrated.end();
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });

  (usingPostgres() ? it : it.skip)('gives up, naming DATABASE_URL, when another process holds the migration lock too long', async () => {
    const [holder, waiter] = sessions as [SqlSession, SqlSession];
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await expect(migrate(waiter, loadMigrations(), { ...deps, lockTimeoutMs: 300 })).rejects.toMatchObject({
        name: 'MigrationError',
        setting: 'DATABASE_URL',
        message: `another process has held the migration lock (pg_advisory_lock ${MIGRATION_LOCK_KEY}) for 0 s`,
      });
    } finally {
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });

  it('keeps the audit trail append-only', async () => {
    const s = sessions[0]!;
    await s.query(`INSERT INTO audit_event (at, type, prev_hash, hash) VALUES (now(), 'test', $1, $2)`, ['0'.repeat(64), 'a'.repeat(64)]);
    await expect(s.query(`UPDATE audit_event SET type = 'tampered'`)).rejects.toThrow(/append-only/);
    await expect(s.query(`DELETE FROM audit_event`)).rejects.toThrow(/append-only/);
    await expect(s.query(`TRUNCATE audit_event`)).rejects.toThrow(/append-only/);
  });
});
