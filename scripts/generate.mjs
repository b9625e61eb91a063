// Generates the Prisma client into src/db/generated.
// `prisma generate` asks for the schema engine binary but does not run it; the
// engine cannot be downloaded here, so point it at any existing executable.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
const cli = require.resolve('prisma/build/index.js');
const r = spawnSync(process.execPath, [cli, 'generate', '--schema', 'prisma/schema.prisma'], {
  env,
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (r.status !== 0) {
  console.error('prisma generate failed');
  process.exit(r.status ?? 1);
}
