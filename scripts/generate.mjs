// Generates the Prisma client into src/db/generated when prisma/schema.prisma is newer
// than it (run by `npm install` and `npm run build`; `--force` always generates).
// `prisma generate` asks for the schema engine binary but does not run it; the engine
// cannot be downloaded on every machine, so point it at any existing executable.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';

const SCHEMA = 'prisma/schema.prisma';
const OUTPUT = 'src/db/generated/client.ts';
const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
};
if (!process.argv.includes('--force') && mtime(OUTPUT) > mtime(SCHEMA)) process.exit(0);

const require = createRequire(import.meta.url);
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
const cli = require.resolve('prisma/build/index.js');
const r = spawnSync(process.execPath, [cli, 'generate', '--schema', SCHEMA], { env, encoding: 'utf8' });
if (r.status !== 0) {
  process.stderr.write(r.stdout + r.stderr);
  console.error('prisma generate failed');
  process.exit(r.status ?? 1);
}
