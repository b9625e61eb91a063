import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Client } from 'pg';
import pino from 'pino';
import { systemClock, systemRandom, type Clock } from '../../src/core';
import { openDatabase, pgliteSession, pgSession, type Database, type SqlSession } from '../../src/db';
import type { TestStore } from './database';

/** Opens `n` raw connections to the test store's database (one PGlite shared, when embedded). */
export async function openSessions(store: TestStore, n: number): Promise<{ sessions: SqlSession[]; close: () => Promise<void> }> {
  if (store.databaseUrl) {
    const clients = await Promise.all(
      Array.from({ length: n }, async () => {
        const c = new Client({ connectionString: store.databaseUrl });
        await c.connect();
        return c;
      }),
    );
    return { sessions: clients.map(pgSession), close: async () => void (await Promise.all(clients.map((c) => c.end()))) };
  }
  const db = await PGlite.create();
  return { sessions: Array.from({ length: n }, () => pgliteSession(db)), close: () => db.close() };
}

/** The broker's database on the test store, migrated, without a broker (for domain tests that need real SQL). */
export function openTestDatabase(store: TestStore, clock: Clock = systemClock): Promise<Database> {
  return openDatabase({ databaseUrl: store.databaseUrl, dataDir: join(store.dir, 'data'), clock, random: systemRandom, logger: pino({ level: 'silent' }) });
}
