import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliFailure } from './errors';
import { writeSecret } from './secrets';

const dir = mkdtempSync(join(tmpdir(), 'writ-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--token-file: a credential goes to a new 0600 file, never to stdout', () => {
  it('writes the token to the file (mode 0600) and names the file instead of the token', () => {
    const file = join(dir, 'join.token');
    writeFileSync(file, 'old', { mode: 0o644 });
    expect(writeSecret({ token: 'secret-value', expires_at: 'x' }, 'token', file)).toEqual({ expires_at: 'x', token_file: file });
    expect(readFileSync(file, 'utf8')).toBe('secret-value\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('leaves no temporary copy of the token behind when the file cannot be put in place', () => {
    const target = join(dir, 'taken');
    mkdirSync(join(target, 'inside'), { recursive: true });
    expect(() => writeSecret({ token: 'secret-value' }, 'token', target)).toThrow(CliFailure);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
