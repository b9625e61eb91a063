import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CertificateAuthority } from './authority';
import { CaError } from './errors';
import {
  CA_CERT_FILE,
  CA_KEY_FILE,
  JWT_KEY_FILE,
  generateJwtSigningKeyPem,
  generateRootCa,
  parseCertificateAuthority,
  parseJwtSigningKey,
  publishCaFile,
  readCaFile,
  type CaStoreOptions,
  type JwtSigningKey,
} from './store';

/**
 * CA key slots in WRIT_CA_DIR, as SPIRE's CA manager keeps them: the active slot
 * (ca.crt, ca.key, jwt-signing.key) signs; the prepared slot (ca.next.crt,
 * ca.next.key, jwt-signing.next.key) is published in the bundle ahead of time and
 * becomes active at rotation. Activation renames the prepared files over the active
 * ones under a marker file; a start after a crash midway finishes it.
 */
export const NEXT_CA_CERT_FILE = 'ca.next.crt';
export const NEXT_CA_KEY_FILE = 'ca.next.key';
export const NEXT_JWT_KEY_FILE = 'jwt-signing.next.key';
/** Present while an activation runs: a start that finds it finishes the activation. */
export const ACTIVATING_MARKER = 'ca.activating';

/** The authorities of one slot. */
export interface AuthoritySlot {
  readonly ca: CertificateAuthority;
  readonly jwtKey: JwtSigningKey;
}

type SlotOptions = Pick<CaStoreOptions, 'dir' | 'trustDomain' | 'caTtl' | 'clock' | 'random'>;

const paths = (dir: string) => ({
  cert: join(resolve(dir), NEXT_CA_CERT_FILE),
  key: join(resolve(dir), NEXT_CA_KEY_FILE),
  jwt: join(resolve(dir), NEXT_JWT_KEY_FILE),
  activeCert: join(resolve(dir), CA_CERT_FILE),
  activeKey: join(resolve(dir), CA_KEY_FILE),
  activeJwt: join(resolve(dir), JWT_KEY_FILE),
  marker: join(resolve(dir), ACTIVATING_MARKER),
});

const removeIfPresent = (path: string) => {
  if (existsSync(path)) unlinkSync(path);
};

/** Finishes an activation that stopped between its renames; returns whether there was one. */
export function recoverInterruptedActivation(dir: string): boolean {
  const p = paths(dir);
  if (!existsSync(p.marker)) return false;
  renameRemaining(p);
  return true;
}

function renameRemaining(p: ReturnType<typeof paths>): void {
  for (const [from, to] of [[p.key, p.activeKey], [p.cert, p.activeCert], [p.jwt, p.activeJwt]] as const) {
    if (existsSync(from)) renameSync(from, to);
  }
  unlinkSync(p.marker);
}

/** The prepared slot, if there is a whole one. A partial one (a prepare that stopped midway) is removed. */
export async function loadPreparedSlot(opts: SlotOptions): Promise<AuthoritySlot | undefined> {
  const p = paths(opts.dir);
  const [cert, key, jwt] = [readCaFile(p.cert), readCaFile(p.key), readCaFile(p.jwt)];
  if (!cert || !key || !jwt) {
    // Files are written before the bundle names them, so a partial slot was never published.
    [p.cert, p.key, p.jwt].forEach(removeIfPresent);
    return undefined;
  }
  return { ca: await parseCertificateAuthority(cert.toString('utf8'), key, opts), jwtKey: await parseJwtSigningKey(jwt, NEXT_JWT_KEY_FILE) };
}

/** Generates new authorities into the prepared slot. */
export async function writePreparedSlot(opts: SlotOptions): Promise<AuthoritySlot> {
  const p = paths(opts.dir);
  const root = await generateRootCa(opts);
  publishCaFile(p.jwt, generateJwtSigningKeyPem(), 0o600);
  publishCaFile(p.key, root.keyPem, 0o600);
  publishCaFile(p.cert, root.certPem, 0o644);
  const slot = await loadPreparedSlot(opts);
  if (!slot) throw new Error('the prepared CA slot vanished while it was written');
  return slot;
}

/** Makes the prepared slot the active one, under the marker so that a crash midway is finished at the next start. */
export function activatePreparedSlot(dir: string): void {
  const p = paths(dir);
  writeFileSync(p.marker, String(process.pid), { mode: 0o600 });
  renameRemaining(p);
}

/** The active slot as it is on disk now (after a rotation elsewhere, say); never generates. */
export async function loadActiveSlot(opts: SlotOptions): Promise<AuthoritySlot> {
  const p = paths(opts.dir);
  const [cert, key, jwt] = [readCaFile(p.activeCert), readCaFile(p.activeKey), readCaFile(p.activeJwt)];
  if (!cert || !key || !jwt) throw new CaError(`the active CA files in ${resolve(opts.dir)} are incomplete`, { setting: 'WRIT_CA_DIR' });
  return { ca: await parseCertificateAuthority(cert.toString('utf8'), key, opts), jwtKey: await parseJwtSigningKey(jwt, JWT_KEY_FILE) };
}
