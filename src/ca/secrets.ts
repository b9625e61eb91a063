/**
 * Secrets Writ keeps for others (the token vault's client secrets and refresh tokens), sealed
 * like the CA's keys: AES-256-GCM under the key-encryption key (WRIT_KEK_FILE) when there is one,
 * else under a secrets key in WRIT_CA_DIR (`secrets.key`, 0600, created at first start, as the
 * CA's key files are). Each sealed value is bound to what it belongs to (additional
 * authenticated data), so a row's ciphertext cannot be moved to another row. Never logged.
 * During a KEK rotation (WRIT_KEK_PREVIOUS_FILE), or on the first start with a KEK of a
 * deployment that had none (WRIT_CA_DIR's secrets key), it opens under those keys too, and the
 * vault seals what it finds under them again (TokenVault.resealSecrets).
 *
 * ```ts
 * const sealed = sealer.seal(`grant:${id}:refresh_token`, Buffer.from(refreshToken));
 * const refreshToken = sealer.open(`grant:${id}:refresh_token`, sealed).toString();
 * ```
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Random } from '../core/random';
import { CaError } from './errors';
import { gcmOpen, gcmSeal, readKek, type Kek } from './kek';

/** A value sealed under a key, as a row stores it. */
export interface SealedSecret {
  readonly kekId: string;
  /** The 96-bit GCM nonce (NIST SP 800-38D §8.2.2: random, never reused with this key). */
  readonly nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  readonly ciphertext: Uint8Array;
}

const aad = (binding: string) => Buffer.from(`writ sealed secret v1\0${binding}`, 'utf8');

/** Seals and opens secrets under the current key (opening also with the key it replaces, during a KEK rotation). */
export class SecretSealer {
  constructor(
    private readonly keks: readonly [Kek, ...Kek[]],
    private readonly random: Random,
  ) {}

  /** The key new values are sealed under. */
  get kekId(): string {
    return this.keks[0].id;
  }

  /** True while this sealer also opens values under another key (a KEK rotation, or a move from WRIT_CA_DIR's secrets key to a KEK): they are to be sealed again. */
  get rotating(): boolean {
    return this.keks.length > 1;
  }

  /** True when this sealer holds the key `kekId` names. */
  holds(kekId: string): boolean {
    return this.keks.some((k) => k.id === kekId);
  }

  seal(binding: string, plaintext: Uint8Array): SealedSecret {
    return gcmSeal(this.keks[0], aad(binding), plaintext, this.random);
  }

  /** Throws CaError when no key known here sealed it, or it does not authenticate for `binding` (altered, or another row's). */
  open(binding: string, sealed: SealedSecret): Buffer {
    const kek = this.keks.find((k) => k.id === sealed.kekId);
    if (!kek) throw new CaError(`a secret in the database is sealed under ${sealed.kekId}, which this replica does not hold (it holds ${this.keks.map((k) => k.id).join(', ')})`, { setting: 'WRIT_KEK_FILE' });
    let opened: Buffer | undefined;
    try {
      opened = gcmOpen(kek, aad(binding), sealed);
    } catch (e) {
      throw new CaError(`a sealed secret does not authenticate under ${kek.id}: it was altered, or belongs to another row`, { setting: kek.setting, cause: e });
    }
    if (!opened) throw new CaError('a sealed secret in the database is malformed', { setting: kek.setting });
    return opened;
  }
}

/** WRIT_CA_DIR's secrets key when the directory holds one (a deployment moving to a KEK: what it sealed is sealed again under the KEK). */
export function existingSecretsKey(caDir: string): Kek | undefined {
  const path = join(caDir, 'secrets.key');
  return existsSync(path) ? readKek(path, 'WRIT_CA_DIR').kek : undefined;
}

/** The secrets key of WRIT_CA_DIR when there is no KEK: read, or created (32 random bytes, base64, mode 0600). */
export function loadOrCreateSecretsKey(caDir: string, random: Random): Kek {
  const path = join(caDir, 'secrets.key');
  if (!existsSync(path)) {
    try {
      writeFileSync(path, `${Buffer.from(random.bytes(32)).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CaError(`cannot create ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { setting: 'WRIT_CA_DIR', cause: e });
    }
  }
  return readKek(path, 'WRIT_CA_DIR').kek;
}
