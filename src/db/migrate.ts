import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import { MigrationError } from './errors';
import type { SqlSession } from './session';
import { sha256 } from '../core/hash';


/** A migration in Prisma's layout: prisma/migrations/<timestamp>_<name>/migration.sql. */
export interface Migration {
  readonly name: string;
  readonly sql: string;
  /** SHA-256 of migration.sql, hex: what `prisma migrate` records as the checksum. */
  readonly checksum: string;
}

export interface MigrationResult {
  readonly applied: readonly string[];
  readonly alreadyApplied: readonly string[];
}

/** The advisory lock key that `prisma migrate` takes, so Writ and the Prisma CLI never migrate at once. */
export const MIGRATION_LOCK_KEY = 72707369;

export const MIGRATIONS_DIR = resolve(__dirname, '../../prisma/migrations');

/** Prisma's own history table, created exactly as `prisma migrate deploy` creates it. */
const CREATE_HISTORY = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** Reads the migrations this build carries, in the order they apply. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  if (!existsSync(dir)) throw new MigrationError(`migrations directory ${dir} is missing`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: sha256(sql).toString('hex') };
    });
}

interface HistoryRow extends Record<string, unknown> {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Applies pending migrations inside the advisory lock, each in its own transaction with
 * its history row, so replicas starting at once apply each migration exactly once.
 * Refuses to go on when an applied migration was edited or an earlier one failed.
 */
export async function migrate(
  session: SqlSession,
  migrations: readonly Migration[],
  deps: { clock: Clock; random: Random; lockTimeoutMs?: number },
): Promise<MigrationResult> {
  await takeLock(session, deps.lockTimeoutMs ?? LOCK_TIMEOUT_MS);
  try {
    await session.exec(CREATE_HISTORY);
    const history = await session.query<HistoryRow>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at',
    );
    const applied: string[] = [];
    const alreadyApplied: string[] = [];
    for (const m of migrations) {
      const rows = history.filter((r) => r.migration_name === m.name && r.rolled_back_at === null);
      if (rows.some((r) => r.finished_at === null)) {
        throw new MigrationError(`migration ${m.name} failed earlier and was not resolved; fix the database, then mark it with \`prisma migrate resolve\``);
      }
      const done = rows.find((r) => r.finished_at !== null);
      if (done) {
        if (!checksumMatches(done.checksum, m.sql)) throw new MigrationError(`migration ${m.name} was modified after it was applied (checksum differs)`);
        alreadyApplied.push(m.name);
        continue;
      }
      const startedAt = deps.clock.now();
      await session.exec('BEGIN');
      try {
        await session.exec(m.sql);
        await session.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
           VALUES ($1, $2, $3, $4, NULL, NULL, $5, 1)`,
          [deps.random.uuid(), m.checksum, deps.clock.now(), m.name, startedAt],
        );
        await session.exec('COMMIT');
      } catch (err) {
        await session.exec('ROLLBACK').catch(() => undefined);
        throw new MigrationError(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.name);
    }
    return { applied, alreadyApplied };
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}

/** How long to wait for another process's migration before giving up (Prisma waits 10 s; migrations can take longer). */
const LOCK_TIMEOUT_MS = 60_000;

/** Takes the migration lock, polling so that a stuck holder cannot hang start-up forever. */
async function takeLock(session: SqlSession, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY]);
    if (row?.locked) return;
    if (Date.now() >= deadline) {
      throw new MigrationError(`another process has held the migration lock (pg_advisory_lock ${MIGRATION_LOCK_KEY}) for ${Math.round(timeoutMs / 1000)} s`, { setting: 'DATABASE_URL' });
    }
    await sleep(100);
  }
}

/**
 * Whether a recorded checksum is that of `sql`, accepting what `prisma migrate` accepts:
 * the file with LF or CRLF line endings, and the unpadded hex of older Prisma versions.
 */
export function checksumMatches(recorded: string, sql: string): boolean {
  const lf = sql.replace(/\r\n/g, '\n');
  const variants = [sql, lf, lf.replace(/\n/g, '\r\n')].map((text) => sha256(text));
  return variants.some((d) => d.toString('hex') === recorded || (recorded.length !== 64 && [...d].map((b) => b.toString(16)).join('') === recorded));
}

/** Names of the migrations the database records as applied. */
export async function appliedMigrations(session: Pick<SqlSession, 'query'>): Promise<Set<string>> {
  const rows = await session.query<{ migration_name: string }>(
    'SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
  );
  return new Set(rows.map((r) => r.migration_name));
}
