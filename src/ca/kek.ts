import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { sha256 } from '../core/hash';
import type { Random } from '../core/random';
import { CaError } from './errors';

/** The settings that name a key-encryption key file. */
export type KekSetting = 'WRIT_KEK_FILE' | 'WRIT_KEK_PREVIOUS_FILE' | 'WRIT_CA_DIR';

/** A key-encryption key: 32 bytes for AES-256-GCM, known to the database only by its id. */
export interface Kek {
  /** A one-way identifier of the key (a hash; the key cannot be derived from it). */
  readonly id: string;
  readonly key: KeyObject;
  /** The setting it was read from, for messages. */
  readonly setting: KekSetting;
}

/** A private key sealed under a KEK, as one authority_key row stores it. */
export interface SealedKey {
  readonly kekId: string;
  /** The 96-bit GCM nonce (NIST SP 800-38D §8.2.2: random, never reused with this key). */
  readonly nonce: Uint8Array;
  /** AES-256-GCM ciphertext of the PKCS#8 DER private key, followed by the 16-byte tag. */
  readonly ciphertext: Uint8Array;
}

/** What a sealed key belongs to; bound into the ciphertext as additional authenticated data. */
export interface AuthorityBinding {
  readonly trustDomain: string;
  readonly use: 'x509-svid' | 'jwt-svid';
  /** x509: SHA-256 of the CA certificate DER (hex); jwt: the key ID. */
  readonly authorityId: string;
}

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** The AAD: a sealed key opens only for the authority it was sealed for, so rows cannot be swapped. */
const aad = (b: AuthorityBinding) => Buffer.from(`writ authority key v1\0${b.trustDomain}\0${b.use}\0${b.authorityId}`, 'utf8');

export const kekId = (key: Uint8Array): string => 'kek-' + sha256(Buffer.concat([Buffer.from('writ kek id\0'), key]), 'hex').slice(0, 16);

/** Reads a KEK file: 32 random bytes, base64 (`openssl rand -base64 32`). Throws CaError naming the setting. */
export function readKek(path: string, setting: KekSetting): { kek: Kek; warnings: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CaError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { setting, cause: e });
  }
  const warnings: string[] = [];
  // Kubernetes mounts Secret files 0644 unless told otherwise: worth fixing, not worth refusing to start.
  if (statSync(path).mode & 0o004) warnings.push(`${path} is readable by every user of this host (mode ${(statSync(path).mode & 0o777).toString(8)}); 0400 is safer`);
  const trimmed = text.trim();
  const bytes = BASE64.test(trimmed) ? Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64') : undefined;
  if (!bytes || bytes.length !== KEY_BYTES) {
    throw new CaError(`${path} must hold ${KEY_BYTES} random bytes, base64-encoded (openssl rand -base64 32)${bytes ? `; it holds ${bytes.length} bytes` : ''}`, { setting });
  }
  return { kek: { id: kekId(bytes), key: createSecretKey(bytes), setting }, warnings };
}

/** AES-256-GCM under `kek` with a fresh random nonce: the ciphertext with its 16-byte tag appended. */
export function gcmSeal(kek: Kek, additionalData: Buffer, plaintext: Uint8Array, random: Random): SealedKey {
  const nonce = random.bytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek.key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData);
  return { kekId: kek.id, nonce, ciphertext: Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]) };
}

/** Opens what {@link gcmSeal} sealed; undefined when the nonce or body is malformed; throws when it does not authenticate. */
export function gcmOpen(kek: Kek, additionalData: Buffer, sealed: Pick<SealedKey, 'nonce' | 'ciphertext'>): Buffer | undefined {
  const body = Buffer.from(sealed.ciphertext);
  if (sealed.nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', kek.key, sealed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(additionalData);
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
}

/** Seals a private key (PKCS#8 DER) for one authority under the KEK with AES-256-GCM. */
export function sealKey(kek: Kek, binding: AuthorityBinding, plaintext: Uint8Array, random: Random): SealedKey {
  return gcmSeal(kek, aad(binding), plaintext, random);
}

/**
 * Opens a sealed key with whichever of `keks` sealed it. Throws CaError naming the KEK's
 * setting when none of them did, or when the ciphertext does not authenticate (altered,
 * or sealed for another authority).
 */
export function openKey(keks: readonly Kek[], binding: AuthorityBinding, sealed: SealedKey): Buffer {
  const kek = keks.find((k) => k.id === sealed.kekId);
  const what = `the ${binding.use === 'x509-svid' ? 'CA' : 'JWT signing'} key ${binding.authorityId.slice(0, 16)}… in the database`;
  if (!kek) {
    throw new CaError(
      `${what} is sealed under KEK ${sealed.kekId}, but WRIT_KEK_FILE holds ${keks[0]?.id ?? 'no KEK'}: give every replica the KEK the keys were sealed with (during a KEK rotation, name the old one in WRIT_KEK_PREVIOUS_FILE); Writ never makes a new CA for a KEK it does not recognise`,
      { setting: 'WRIT_KEK_FILE' },
    );
  }
  let opened: Buffer | undefined;
  try {
    opened = gcmOpen(kek, aad(binding), sealed);
  } catch (e) {
    throw new CaError(`${what} does not authenticate under the KEK in ${kek.setting}: it was altered, or sealed for another authority`, { setting: kek.setting, cause: e });
  }
  if (!opened) throw new CaError(`${what} is malformed`, { setting: kek.setting });
  return opened;
}
