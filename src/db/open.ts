import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, Client } from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import { acquireEmbeddedLock } from './embedded-lock';
import { DatabaseUnavailable } from './errors';
import { PrismaClient } from './generated/client';
import { appliedMigrations, loadMigrations, migrate, type Migration, type MigrationResult } from './migrate';
import { pgliteSession, pgSession, type SqlSession } from './session';

export type Readiness = { ready: true } | { ready: false; reason: string };

/** Writ's storage: the Prisma client over PostgreSQL or the embedded PGlite, migrated. */
export interface Database {
  readonly prisma: PrismaClient;
  readonly kind: 'postgresql' | 'embedded';
  readonly migrations: MigrationResult;
  /** Whether the database answers and every migration this build carries is applied. */
  readiness(): Promise<Readiness>;
  /** False once closed: nothing read from it before may be trusted any more. */
  readonly open: boolean;
  /**
   * PostgreSQL's pool for raw statements on hot paths (the group commit's one statement), without
   * Prisma's client runtime in between: a tenth of the token exchange's CPU in the profiles
   * (bench/README.md). The embedded database has none: there, statements go through Prisma, which
   * orders them with its transactions on PGlite's single connection.
   */
  readonly sql?: Pick<SqlSession, 'query'>;
  /** PostgreSQL's connection pool, for metrics (the embedded database has none). */
  connections?(): { readonly total: number; readonly idle: number; readonly waiting: number };
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgresql:// URL; undefined opens the embedded database in dataDir. */
  databaseUrl?: string | undefined;
  dataDir: string;
  clock: Clock;
  random: Random;
  logger: Logger;
  migrationsDir?: string;
  /** Milliseconds to wait for a connection before giving up. */
  connectTimeoutMs?: number;
}

const READINESS_TIMEOUT_MS = 2000;

/** Why PostgreSQL at `url` could not be used, in one line: host, port and database, never the credentials. */
export function describeConnectError(url: string, err: unknown): string {
  const u = new URL(url);
  const where = `${u.hostname || 'localhost'}:${u.port || 5432}/${decodeURIComponent(u.pathname.slice(1)) || '(default)'}`;
  const e = err as NodeJS.ErrnoException & { code?: string };
  const reason = e.code && /^[A-Z]+$/.test(e.code) ? e.code : (e.message ?? String(err));
  return `cannot connect to PostgreSQL at ${where}: ${reason}`;
}

/** Opens, checks and migrates the configured database. Throws DatabaseUnavailable or MigrationError. */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const migrationList = loadMigrations(opts.migrationsDir);
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, migrationList, opts) : openEmbedded(migrationList, opts);
}

async function openPostgres(url: string, migrationList: Migration[], opts: DatabaseOptions): Promise<Database> {
  const timeout = opts.connectTimeoutMs ?? 5000;
  const client = new Client({ connectionString: url, connectionTimeoutMillis: timeout });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new DatabaseUnavailable(describeConnectError(url, err), { setting: 'DATABASE_URL', cause: err });
  }
  let migrations: MigrationResult;
  try {
    // The audit chain is hashed inside PostgreSQL over the UTF-8 of each event: another
    // encoding would refuse some events or store a chain that no longer verifies.
    const { rows } = await client.query<{ server_encoding: string }>('SHOW server_encoding');
    const encoding = rows[0]?.server_encoding ?? 'unknown';
    if (encoding !== 'UTF8') throw new DatabaseUnavailable(`the database's encoding is ${encoding}; Writ needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')`, { setting: 'DATABASE_URL' });
    migrations = await migrate(pgSession(client), migrationList, opts);
  } finally {
    await client.end().catch(() => undefined);
  }
  const pool = new Pool({ connectionString: url, connectionTimeoutMillis: timeout, max: 10 });
  // An idle client losing its connection must not crash the process; the next query fails closed.
  pool.on('error', (err) => opts.logger.warn({ err: { message: err.message } }, 'database connection lost'));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const connections = () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount });
  const sql: Pick<SqlSession, 'query'> = { query: async <T extends Record<string, unknown>>(text: string, params?: unknown[]) => (await pool.query(text, params)).rows as T[] };
  return database('postgresql', prisma, migrations, migrationList, async () => {
    await prisma.$disconnect();
    await pool.end();
  }, connections, sql);
}

/**
 * PostgreSQL settings of the embedded database. Its buffer pool lives in PGlite's WebAssembly
 * heap, which never shrinks: 32 MB of shared buffers instead of the default took a broker
 * restarted on its data from about 390 MB to about 260–290 MB RSS (`scripts/embedded-memory.sh`), with room for
 * Writ's working set (leases, audit, caches in front of them).
 */
const EMBEDDED_POSTGRESQL_CONF = ['shared_buffers = 32MB'];

async function openEmbedded(migrationList: Migration[], opts: DatabaseOptions): Promise<Database> {
  const dir = resolve(opts.dataDir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new DatabaseUnavailable(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code}`, { setting: 'WRIT_DATA_DIR', cause: err });
  }
  const release = acquireEmbeddedLock(join(dir, 'writ.lock'));
  let pglite: PGlite;
  let migrations: MigrationResult;
  try {
    pglite = await PGlite.create(join(dir, 'pglite'), { postgresqlconf: EMBEDDED_POSTGRESQL_CONF });
    migrations = await migrate(pgliteSession(pglite), migrationList, opts);
  } catch (err) {
    release();
    if (err instanceof Error && err.name === 'MigrationError') throw err;
    throw new DatabaseUnavailable(`cannot open the embedded database in ${dir}: ${(err as Error).message}`, { setting: 'WRIT_DATA_DIR', cause: err });
  }
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return database('embedded', prisma, migrations, migrationList, async () => {
    await prisma.$disconnect();
    await pglite.close();
    release();
  });
}

function database(
  kind: Database['kind'],
  prisma: PrismaClient,
  migrations: MigrationResult,
  migrationList: readonly Migration[],
  closeAll: () => Promise<void>,
  connections?: Database['connections'],
  sql?: Database['sql'],
): Database {
  const session: Pick<SqlSession, 'query'> = {
    query: async <T extends Record<string, unknown>>(sql: string) => prisma.$queryRawUnsafe<T[]>(sql),
  };
  let closed: Promise<void> | undefined;
  return {
    prisma,
    kind,
    migrations,
    ...(connections && { connections }),
    ...(sql && { sql }),
    get open() {
      return closed === undefined;
    },
    async readiness() {
      if (closed) return { ready: false, reason: 'database closed' };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('database did not answer in time')), READINESS_TIMEOUT_MS);
      });
      try {
        const applied = await Promise.race([appliedMigrations(session), timeout]);
        const missing = migrationList.find((m) => !applied.has(m.name));
        return missing ? { ready: false, reason: `migration ${missing.name} not applied` } : { ready: true };
      } catch (err) {
        return { ready: false, reason: `database unreachable: ${(err as Error).message}` };
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closed ??= closeAll();
      return closed;
    },
  };
}
