import { createHash, type BinaryToTextEncoding } from 'node:crypto';

/** SHA-256 (FIPS 180-4) of text (as UTF-8) or bytes: the raw digest. */
export function sha256(data: string | Uint8Array): Buffer;
/** SHA-256 (FIPS 180-4) of text (as UTF-8) or bytes, encoded. */
export function sha256(data: string | Uint8Array, encoding: BinaryToTextEncoding): string;
export function sha256(data: string | Uint8Array, encoding?: BinaryToTextEncoding): Buffer | string {
  const hash = createHash('sha256').update(data);
  return encoding ? hash.digest(encoding) : hash.digest();
}
