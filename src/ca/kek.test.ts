import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemRandom } from '../core/random';
import { CaError } from './errors';
import { kekId, openKey, readKek, sealKey, type AuthorityBinding, type Kek } from './kek';

const dir = mkdtempSync(join(tmpdir(), 'writ-kek-'));
const kekFile = (name: string, content: string, mode = 0o600) => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
};
const newKek = (name: string, setting: Kek['setting'] = 'WRIT_KEK_FILE') => readKek(kekFile(name, randomBytes(32).toString('base64') + '\n'), setting).kek;

const binding: AuthorityBinding = { trustDomain: 'kek.test', use: 'x509-svid', authorityId: 'a'.repeat(64) };
const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' });

const refusal = (fn: () => unknown): CaError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CaError);
    return e as CaError;
  }
  throw new Error('expected a CaError');
};

describe('key-encryption key file (WRIT_KEK_FILE)', () => {
  it('reads 32 bytes of base64 (openssl rand -base64 32), standard or URL-safe, and names the KEK by a hash', () => {
    const raw = randomBytes(32);
    const a = readKek(kekFile('std', raw.toString('base64') + '\n'), 'WRIT_KEK_FILE').kek;
    const b = readKek(kekFile('url', raw.toString('base64url')), 'WRIT_KEK_FILE').kek;
    expect(a.id).toBe(b.id);
    expect(a.id).toBe(kekId(raw));
    expect(a.id).toMatch(/^kek-[0-9a-f]{16}$/);
    expect(a.id).not.toContain(raw.toString('hex').slice(0, 16));
    expect(Buffer.from(a.key.export()).equals(raw)).toBe(true);
  });

  it.each([
    ['too short', randomBytes(16).toString('base64'), 'it holds 16 bytes'],
    ['too long', randomBytes(48).toString('base64'), 'it holds 48 bytes'],
    ['not base64', 'this is not a key, just words!', '32 random bytes, base64'],
    ['empty', '', '32 random bytes, base64'],
  ])('refuses a file that is %s, naming the setting', (name, content, message) => {
    const err = refusal(() => readKek(kekFile(name.replace(/ /g, '-'), content), 'WRIT_KEK_PREVIOUS_FILE'));
    expect(err.setting).toBe('WRIT_KEK_PREVIOUS_FILE');
    expect(err.message).toContain(message);
  });

  it('refuses an unreadable path, naming the setting', () => {
    const err = refusal(() => readKek(join(dir, 'missing'), 'WRIT_KEK_FILE'));
    expect(err.setting).toBe('WRIT_KEK_FILE');
    expect(err.message).toContain('ENOENT');
  });

  it('warns when every user of the host can read the file', () => {
    const path = kekFile('open', randomBytes(32).toString('base64'), 0o644);
    expect(readKek(path, 'WRIT_KEK_FILE').warnings[0]).toContain('0400 is safer');
    expect(readKek(kekFile('closed', randomBytes(32).toString('base64'), 0o400), 'WRIT_KEK_FILE').warnings).toEqual([]);
  });
});

describe('sealed authority keys (AES-256-GCM envelope)', () => {
  const kek = newKek('seal');

  it('seals under the KEK with a fresh 96-bit nonce and opens to the same PKCS#8 key', () => {
    const a = sealKey(kek, binding, pkcs8, systemRandom);
    const b = sealKey(kek, binding, pkcs8, systemRandom);
    expect(a.kekId).toBe(kek.id);
    expect(a.nonce).toHaveLength(12);
    expect(Buffer.from(a.nonce).equals(Buffer.from(b.nonce))).toBe(false);
    expect(a.ciphertext).toHaveLength(pkcs8.length + 16);
    expect(Buffer.from(a.ciphertext).includes(pkcs8.subarray(-32))).toBe(false); // no plaintext key bytes at rest
    expect(openKey([kek], binding, a).equals(pkcs8)).toBe(true);
  });

  it('binds the ciphertext to its authority: opened for another authority, use or trust domain, it does not authenticate', () => {
    const sealed = sealKey(kek, binding, pkcs8, systemRandom);
    for (const other of [{ ...binding, authorityId: 'b'.repeat(64) }, { ...binding, use: 'jwt-svid' as const }, { ...binding, trustDomain: 'other.test' }]) {
      const err = refusal(() => openKey([kek], other, sealed));
      expect(err.message).toContain('sealed for another authority');
      expect(err.setting).toBe('WRIT_KEK_FILE');
    }
  });

  it('refuses an altered ciphertext, nonce or tag', () => {
    const sealed = sealKey(kek, binding, pkcs8, systemRandom);
    const flip = (bytes: Uint8Array, i: number) => {
      const copy = Buffer.from(bytes);
      copy[i] = copy[i]! ^ 1;
      return copy;
    };
    refusal(() => openKey([kek], binding, { ...sealed, ciphertext: flip(sealed.ciphertext, 3) }));
    refusal(() => openKey([kek], binding, { ...sealed, ciphertext: flip(sealed.ciphertext, sealed.ciphertext.length - 1) }));
    refusal(() => openKey([kek], binding, { ...sealed, nonce: flip(sealed.nonce, 0) }));
    refusal(() => openKey([kek], binding, { ...sealed, ciphertext: Buffer.from(sealed.ciphertext).subarray(0, 10) }));
  });

  it('a key sealed under another KEK is refused naming WRIT_KEK_FILE and both KEK ids', () => {
    const other = newKek('other');
    const sealed = sealKey(other, binding, pkcs8, systemRandom);
    const err = refusal(() => openKey([kek], binding, sealed));
    expect(err.setting).toBe('WRIT_KEK_FILE');
    expect(err.message).toContain(other.id);
    expect(err.message).toContain(kek.id);
  });

  it('opens with whichever of the given KEKs sealed it (a KEK rotation in progress)', () => {
    const previous = newKek('previous', 'WRIT_KEK_PREVIOUS_FILE');
    const sealed = sealKey(previous, binding, pkcs8, systemRandom);
    expect(openKey([kek, previous], binding, sealed).equals(pkcs8)).toBe(true);
  });
});
