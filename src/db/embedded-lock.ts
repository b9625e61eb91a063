import { openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { DatabaseUnavailable } from './errors';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Lock files this process holds: a second open from the same process is refused too. */
const held = new Set<string>();

/**
 * Takes the embedded database's lock file, which holds the owner's pid. The embedded
 * database serves one process; a second Writ on the same directory would corrupt it.
 * A lock left by a process that no longer runs is taken over.
 */
export function acquireEmbeddedLock(path: string): () => void {
  if (held.has(path)) {
    throw new DatabaseUnavailable('the embedded database is already open in this process; it serves one broker only', { setting: 'WRIT_DATA_DIR' });
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      held.add(path);
      return () => {
        held.delete(path);
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DatabaseUnavailable(`cannot create ${path}: ${(err as NodeJS.ErrnoException).code}`, { setting: 'WRIT_DATA_DIR', cause: err });
      }
      const owner = Number(readFileSync(path, 'utf8').trim());
      // Our own pid in the file is a previous incarnation's (containers reuse pids); `held` covers this one.
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new DatabaseUnavailable(
          `the embedded database is in use by another Writ process (pid ${owner}); it serves one process only, set DATABASE_URL to run replicas`,
          { setting: 'WRIT_DATA_DIR' },
        );
      }
      unlinkSync(path);
    }
  }
  throw new DatabaseUnavailable(`cannot take the lock ${path}`, { setting: 'WRIT_DATA_DIR' });
}
