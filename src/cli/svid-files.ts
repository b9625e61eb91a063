import { randomBytes, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pemBlocks } from './csr';
import { CliFailure } from './errors';
import { SVID_FILES, readText } from './context';

/** What /v1/attest and /v1/svid/renew answer. */
export interface IssuedSvid {
  spiffe_id: string;
  /** PEM chain, leaf first. */
  svid: string;
  expires_at: string;
  /** PEM trust bundle. */
  bundle: string;
}

/** Where the P12 password comes from: `--p12-password-file`, else WRIT_P12_PASSWORD. Never echoed. */
export function p12Password(file: string | undefined): string | undefined {
  if (file !== undefined) {
    const text = readText(file, 'PKCS#12 password file').split(/\r?\n/)[0]!;
    if (text === '') throw new CliFailure(`the PKCS#12 password file ${file} is empty`);
    return text;
  }
  const env = process.env.WRIT_P12_PASSWORD;
  return env === undefined || env === '' ? undefined : env;
}

/** Writes `data` to a new temporary file beside `path` with `mode`, flushed to disk; returns its name. */
function stage(path: string, data: string | Buffer, mode: number): string {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    if (typeof data === 'string') writeSync(fd, data);
    else writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Writes an SVID directory: `key.pem` (0600), `svid.pem`, `bundle.pem`, and `svid.p12`
 * (0600) when a password is given. Every file is staged and flushed first, then each is
 * renamed into place, so no reader or crash ever sees a partly written file; the bundle
 * goes first (it only grows), the key and its certificate last, one right after the other.
 */
export async function writeSvidDir(dir: string, issued: IssuedSvid, key: KeyObject, keyPem: string, p12?: { password: string }): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: [kind: keyof typeof SVID_FILES, data: string | Buffer, mode: number][] = [
    ['bundle', issued.bundle, 0o644],
    ['key', keyPem, 0o600],
    ['svid', issued.svid, 0o644],
  ];
  if (p12) {
    const { toPkcs12 } = await import('./pkcs12');
    const data = toPkcs12({ key, chain: pemBlocks(issued.svid), bundle: pemBlocks(issued.bundle), password: p12.password, friendlyName: issued.spiffe_id });
    files.push(['p12', data, 0o600]);
  }
  const staged: [tmp: string, path: string][] = [];
  try {
    for (const [kind, data, mode] of files) staged.push([stage(join(dir, SVID_FILES[kind]), data, mode), join(dir, SVID_FILES[kind])]);
    for (const [tmp, path] of staged) renameSync(tmp, path);
  } catch (err) {
    // Staged files not yet in place (the new private key among them) do not stay behind.
    for (const [tmp] of staged) rmSync(tmp, { force: true });
    throw new CliFailure(`cannot write to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return Object.fromEntries(files.map(([kind]) => [kind, join(dir, SVID_FILES[kind])]));
}

/** Refuses to overwrite an identity unless asked: a second attestation into the same directory is usually a mistake. */
export function refuseExisting(dir: string, force: boolean): void {
  if (force) return;
  const present = [SVID_FILES.key, SVID_FILES.svid].filter((f) => existsSync(join(dir, f)));
  if (present.length > 0) throw new CliFailure(`${dir} already holds an SVID (${present.join(', ')}); use --force to replace it, or writ svid renew`);
}
