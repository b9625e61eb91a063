import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

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

/** Replaces `path` atomically with `data`. */
export function publishReplace(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  renameSync(tmp, path);
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
