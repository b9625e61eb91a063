export { describeConnectError, openDatabase, type Database, type DatabaseOptions, type Readiness } from './open';
export { migrate, loadMigrations, appliedMigrations, MIGRATION_LOCK_KEY, type Migration, type MigrationResult } from './migrate';
export { pgSession, pgliteSession, type SqlSession } from './session';
export { DatabaseUnavailable, MigrationError } from './errors';
export { PrismaClient, Prisma } from './generated/client';
export { ReadCache, neverFresh, whileOpen, type Freshness } from './read-cache';
