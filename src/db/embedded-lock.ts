import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { processAlive } from '../core/process';
import { DatabaseUnavailable } from './errors';

/** Lock files this process holds: a second open from the same process is refused too. */
const held = new Set<string>();

const fail = (message: string, cause?: unknown) => new DatabaseUnavailable(message, { setting: 'WRIT_DATA_DIR', cause });

/**
 * Takes the embedded database's lock file, which holds the owner's pid. The embedded
 * database serves one process; a second Writ on the same directory would corrupt it.
 * The file appears whole (written aside, then linked into place), so a reader never
 * sees it empty. A lock whose owner no longer runs is broken and taken.
 */
export function acquireEmbeddedLock(path: string): () => void {
  if (held.has(path)) throw fail('the embedded database is already open in this process; it serves one broker only');
  const mine = String(process.pid);
  for (let attempt = 0; attempt < 5; attempt++) {
    if (attempt > 0) pause(20);
    const tmp = `${path}.${mine}.${randomBytes(6).toString('hex')}`;
    try {
      writeFileSync(tmp, mine, { mode: 0o600, flag: 'wx' });
      linkSync(tmp, path);
      held.add(path);
      return () => {
        held.delete(path);
        try {
          if (readFileSync(path, 'utf8') === mine) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(`cannot create ${path}: ${(err as NodeJS.ErrnoException).code}`, err);
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        /* not created */
      }
    }
    let owner: number;
    try {
      owner = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue; // moved aside by another process just now: try again
    }
    // Our own pid in the file is a previous incarnation's (containers reuse pids); `held` covers this one.
    if (owner !== process.pid && processAlive(owner)) {
      throw fail(`the embedded database is in use by another Writ process (pid ${owner}); it serves one process only, set DATABASE_URL to run replicas`);
    }
    breakStaleLock(path, owner);
  }
  throw fail(`cannot take the lock ${path}: another process keeps taking it`);
}

/** A `.break` file older than this was left by a process that died while breaking a lock. */
const BREAK_STALE_MS = 10_000;

/**
 * Removes a lock left by `staleOwner`, under a second exclusive file so that of
 * processes finding the same stale lock only one breaks it, and none removes a lock
 * that a live process took in the meantime.
 */
function breakStaleLock(path: string, staleOwner: number): void {
  const breaker = `${path}.break`;
  try {
    writeFileSync(breaker, String(process.pid), { mode: 0o600, flag: 'wx' });
  } catch {
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAK_STALE_MS) unlinkSync(breaker);
    } catch {
      /* gone */
    }
    return; // someone else is breaking it; the caller looks again
  }
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === staleOwner) unlinkSync(path);
  } catch {
    /* already gone */
  } finally {
    unlinkSync(breaker);
  }
}

/** Blocks this thread briefly; start-up has nothing else to do meanwhile. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
