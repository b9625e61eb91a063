import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config';
import type { TestStore } from './database';

/** A broker configuration on ephemeral ports, storing everything under the test store. */
export function testConfig(store: TestStore, env: Record<string, string> = {}): Config {
  return loadConfig({
    WRIT_PORT: '0',
    WRIT_OPS_PORT: '0',
    WRIT_DATA_DIR: join(store.dir, 'data'),
    WRIT_CA_DIR: join(store.dir, 'certs'),
    WRIT_LOG_LEVEL: 'silent',
    ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {}),
    ...env,
  });
}
