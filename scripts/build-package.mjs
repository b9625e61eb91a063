// Builds the package in the current directory (packages/sdk or packages/mcp) from the broker's
// sources: its tsconfig.json names one entry point under src/, and tsc emits that file and what
// it imports, nothing else, so a package ships exactly its import closure. Run by `npm pack`
// (prepack) and by the root `npm run build`; never by a consumer's install.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
const dir = process.argv[2] ?? process.cwd();
rmSync(join(dir, 'dist'), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
