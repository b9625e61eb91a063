import { createHash } from 'node:crypto';
import { checksumMatches } from './migrate';

const sql = 'CREATE TABLE "a" (\n    "id" INT\n);\n';
const hex = (text: string) => createHash('sha256').update(text).digest('hex');

describe('migration checksums as `prisma migrate` compares them', () => {
  it('match the SHA-256 of migration.sql', () => {
    expect(checksumMatches(hex(sql), sql)).toBe(true);
    expect(checksumMatches(hex(sql + ' '), sql)).toBe(false);
  });

  it('match across LF and CRLF checkouts', () => {
    const crlf = sql.replace(/\n/g, '\r\n');
    expect(checksumMatches(hex(crlf), sql)).toBe(true);
    expect(checksumMatches(hex(sql), crlf)).toBe(true);
  });

  it('match the unpadded hex that older Prisma versions recorded', () => {
    const digest = createHash('sha256').update(sql).digest();
    const unpadded = [...digest].map((b) => b.toString(16)).join('');
    expect(unpadded.length).toBeLessThan(64); // this digest has a byte below 0x10
    expect(checksumMatches(unpadded, sql)).toBe(true);
  });
});
