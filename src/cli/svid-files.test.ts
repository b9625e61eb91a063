import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliFailure } from './errors';
import { p12Password, writeSvidDir } from './svid-files';

const work = mkdtempSync(join(tmpdir(), 'writ-svid-files-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const issued = { spiffe_id: 'spiffe://ex.test/a', svid: 'SVID PEM\n', expires_at: '2026-01-01T00:00:00Z', bundle: 'BUNDLE PEM\n' };

describe('writ attest and svid renew: the SVID directory', () => {
  it('leaves no temporary file (the new private key above all) when a file cannot be put in place', async () => {
    const dir = join(work, 'blocked');
    mkdirSync(join(dir, 'key.pem', 'inside'), { recursive: true }); // key.pem is a directory: its rename fails
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(writeSvidDir(dir, issued, privateKey, 'KEY PEM\n')).rejects.toThrow(CliFailure);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('--p12-password-file: the password is the first line', () => {
  it('ignores what follows the first line', () => {
    const file = join(work, 'pw');
    for (const text of ['correct horse\n', 'correct horse\r\n', 'correct horse\n\n', 'correct horse\nsecond line\n']) {
      writeFileSync(file, text);
      expect(p12Password(file)).toBe('correct horse');
    }
  });
});
