import { PGlite } from '@electric-sql/pglite';
import { Client } from 'pg';
import { pgliteSession, pgSession, type SqlSession } from '../../src/db';
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
