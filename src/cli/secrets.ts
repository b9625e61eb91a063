import { randomBytes } from 'node:crypto';
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { CliFailure } from './errors';

/**
 * Secrets the CLI handles, and where they may appear.
 *
 * Only commands whose purpose is to hand out a credential print one, on stdout and nowhere
 * else: `join-token create` (the join token), `exchange` (the access token) and `jwt-svid`
 * (the JWT-SVID). Each also takes `--token-file FILE`, which writes the credential to a new
 * mode-0600 file instead and prints only that file's name. The admin token, private keys,
 * the PKCS#12 password and subject tokens are never printed, and no error message carries them.
 */
export function writeSecret<T extends object>(answer: T, field: keyof T & string, file: string | undefined): Record<string, unknown> {
  const view: Record<string, unknown> = Object.fromEntries(Object.entries(answer));
  if (file === undefined) return view;
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, `${String(answer[field])}\n`);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true }); // no stray copy of the secret
    throw new CliFailure(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  delete view[field];
  return { ...view, [`${field}_file`]: file };
}
