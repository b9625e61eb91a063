import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../config/errors';

/** The file name of the generated bootstrap admin token, kept until its first use. */
export const BOOTSTRAP_TOKEN_FILE = 'bootstrap-admin-token';

/**
 * Where a generated bootstrap admin token is kept until its first use, and the setting
 * naming that directory: the embedded database's WRIT_DATA_DIR; with DATABASE_URL (no data
 * directory is used) WRIT_CA_DIR, which holds the broker's other local secrets.
 */
export function bootstrapTokenLocation(settings: { readonly databaseUrl: string | undefined; readonly dataDir: string; readonly caDir: string }): { path: string; setting: string } {
  return settings.databaseUrl
    ? { path: join(settings.caDir, BOOTSTRAP_TOKEN_FILE), setting: 'WRIT_CA_DIR' }
    : { path: join(settings.dataDir, BOOTSTRAP_TOKEN_FILE), setting: 'WRIT_DATA_DIR' };
}

/** A token written beside its final path; `keep` moves it there, `discard` removes it. */
export interface StagedTokenFile {
  readonly path: string;
  keep(): void;
  discard(): void;
}

/**
 * Writes `token` to a file only its owner can read (0600), under a name of its own so that
 * replicas sharing the directory never overwrite each other's; nothing is stored until it
 * is written, so a token that was shown is never one that no file holds.
 */
export function stageTokenFile(location: { path: string; setting: string }, token: string, unique: string): StagedTokenFile {
  const staging = `${location.path}.${unique}.tmp`;
  try {
    mkdirSync(dirname(location.path), { recursive: true, mode: 0o700 });
    writeFileSync(staging, `${token}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(staging, 0o600); // whatever the umask
  } catch (err) {
    rmSync(staging, { force: true });
    throw new ConfigError(location.setting, `cannot write the bootstrap admin token to ${location.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  return {
    path: location.path,
    keep: () => renameSync(staging, location.path),
    discard: () => rmSync(staging, { force: true }),
  };
}

/** Whether the token file is there (the generated token has not been used yet). */
export const tokenFileExists = (path: string): boolean => existsSync(path);

/** Deletes the token file; true when this call deleted it (false when it was already gone). */
export function removeTokenFile(path: string): boolean {
  try {
    rmSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
