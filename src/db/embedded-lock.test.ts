import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireEmbeddedLock } from './embedded-lock';

const lockIn = () => join(mkdtempSync(join(tmpdir(), 'writ-lock-')), 'writ.lock');

describe('embedded database lock', () => {
  it('holds our pid while held, and is gone once released', () => {
    const path = lockIn();
    const release = acquireEmbeddedLock(path);
    expect(readFileSync(path, 'utf8')).toBe(String(process.pid));
    release();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a second holder in the same process', () => {
    const path = lockIn();
    const release = acquireEmbeddedLock(path);
    expect(() => acquireEmbeddedLock(path)).toThrow('the embedded database is already open in this process');
    release();
    acquireEmbeddedLock(path)();
  });

  it('refuses while another live process holds it', () => {
    const path = lockIn();
    writeFileSync(path, String(process.ppid));
    expect(() => acquireEmbeddedLock(path)).toThrow(`in use by another Writ process (pid ${process.ppid})`);
    expect(readFileSync(path, 'utf8')).toBe(String(process.ppid));
  });

  it('takes over a lock whose owner no longer runs', () => {
    const path = lockIn();
    writeFileSync(path, '999999');
    const release = acquireEmbeddedLock(path);
    expect(readFileSync(path, 'utf8')).toBe(String(process.pid));
    expect(existsSync(`${path}.break`)).toBe(false);
    release();
  });

  it('takes over a lock left by an earlier incarnation with our pid (containers reuse pids)', () => {
    const path = lockIn();
    writeFileSync(path, String(process.pid));
    acquireEmbeddedLock(path)();
  });
});
