import { linkSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { processAlive } from '../core/process';

/**
 * Publishes `data` at `path` only if nothing is there yet, atomically: the file appears
 * whole or not at all, and of two processes racing, exactly one wins. Returns whether
 * this call created the file.
 */
export function publishExclusive(path: string, data: string, mode: number): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** Reads a file, or returns undefined when it does not exist. Other errors propagate. */
export function readIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const TEMPORARY = /^.+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * Removes temporaries that a process died leaving behind (they may hold private keys).
 * Those of running processes, this one included, are theirs to finish.
 */
export function removeStaleTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = TEMPORARY.exec(name);
    if (m && !processAlive(Number(m[1]))) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        /* gone already */
      }
    }
  }
}
