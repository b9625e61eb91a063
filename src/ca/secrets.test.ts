import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemRandom } from '../core/random';
import { CaError } from './errors';
import { readKek } from './kek';
import { loadOrCreateSecretsKey, SecretSealer } from './secrets';

const dir = mkdtempSync(join(tmpdir(), 'writ-secrets-'));
const newKek = (name: string) => {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(32).toString('base64'), { mode: 0o600 });
  return readKek(path, 'WRIT_KEK_FILE').kek;
};
const secret = Buffer.from('a refresh token of the SaaS');

describe('SecretSealer', () => {
  const kek = newKek('current');
  const sealer = new SecretSealer([kek], systemRandom);

  it('opens what it sealed, for the same binding only', () => {
    const sealed = sealer.seal('grant:1:refresh_token', secret);
    expect(sealed.kekId).toBe(kek.id);
    expect(Buffer.from(sealed.ciphertext).includes(secret)).toBe(false);
    expect(sealer.open('grant:1:refresh_token', sealed)).toEqual(secret);
    expect(() => sealer.open('grant:2:refresh_token', sealed)).toThrow(CaError);
  });

  it('refuses a ciphertext altered by one bit, and a fresh nonce for every seal', () => {
    const sealed = sealer.seal('b', secret);
    const altered = Buffer.from(sealed.ciphertext);
    altered[0] = altered[0]! ^ 1;
    expect(() => sealer.open('b', { ...sealed, ciphertext: altered })).toThrow(/does not authenticate/);
    expect(Buffer.from(sealer.seal('b', secret).nonce).equals(Buffer.from(sealed.nonce))).toBe(false);
  });

  it('opens with the key being replaced during a KEK rotation, seals under the new one, and names a key it lacks', () => {
    const next = newKek('next');
    const sealedBefore = sealer.seal('c', secret);
    const rotated = new SecretSealer([next, kek], systemRandom);
    expect(rotated.open('c', sealedBefore)).toEqual(secret);
    expect(rotated.seal('c', secret).kekId).toBe(next.id);
    expect(() => new SecretSealer([next], systemRandom).open('c', sealedBefore)).toThrow(new RegExp(`sealed under ${kek.id}`));
  });
});

describe('loadOrCreateSecretsKey', () => {
  it('creates WRIT_CA_DIR/secrets.key once, 0600, and reads the same key after', () => {
    const ca = mkdtempSync(join(tmpdir(), 'writ-secrets-ca-'));
    const first = loadOrCreateSecretsKey(ca, systemRandom);
    expect(statSync(join(ca, 'secrets.key')).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(join(ca, 'secrets.key'), 'utf8').trim(), 'base64')).toHaveLength(32);
    expect(loadOrCreateSecretsKey(ca, systemRandom).id).toBe(first.id);
  });
});
