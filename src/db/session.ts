import type { PGlite } from '@electric-sql/pglite';
import type { ClientBase } from 'pg';

/** One database connection, as the migrator and other raw-SQL callers need it. */
export interface SqlSession {
  query<T extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of one or more statements (simple query protocol). */
  exec(sql: string): Promise<void>;
}

export function pgSession(client: ClientBase): SqlSession {
  return {
    query: async <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
    exec: async (sql) => {
      await client.query(sql);
    },
  };
}

export function pgliteSession(db: PGlite): SqlSession {
  return {
    query: async <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
    exec: async (sql) => {
      await db.exec(sql);
    },
  };
}
