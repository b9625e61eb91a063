import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

/**
 * Where a test file keeps its state. With TEST_DATABASE_URL set (a PostgreSQL server
 * the tests may create databases on), each call creates a fresh database; otherwise
 * the broker's embedded database lives in a fresh temporary directory. Either way no
 * two test files ever see each other's rows.
 */
export interface TestStore {
  /** A fresh database URL, or undefined for the embedded database. */
  readonly databaseUrl: string | undefined;
  /** A fresh directory for WRIT_DATA_DIR and WRIT_CA_DIR. */
  readonly dir: string;
  readonly kind: 'postgresql' | 'embedded';
  drop(): Promise<void>;
}

export const usingPostgres = (): boolean => Boolean(process.env.TEST_DATABASE_URL);

async function adminQuery(sql: string): Promise<void> {
  const client = new Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function createTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-test-'));
  if (!usingPostgres()) {
    return { databaseUrl: undefined, dir, kind: 'embedded', drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  // Named after the run's database, so a run's cleanup finds whatever a crashed test left.
  const url = new URL(process.env.TEST_DATABASE_URL!);
  const base = decodeURIComponent(url.pathname.slice(1)) || 'writ';
  const name = `${base}_${randomBytes(6).toString('hex')}`.slice(0, 63);
  await adminQuery(`CREATE DATABASE "${name}"`);
  url.pathname = `/${name}`;
  return {
    databaseUrl: url.toString(),
    dir,
    kind: 'postgresql',
    drop: async () => {
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
