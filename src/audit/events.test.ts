import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { AUDIT_EVENTS, AUDIT_EVENT_TYPES, isAuditEventType } from './events';

const ROOT = join(__dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' || name === 'node_modules' || name === 'testdata' ? [] : sources(path);
    return /\.ts$/.test(name) && !/\.test\.ts$/.test(name) ? [path] : [];
  });
}

/** An event type as source code writes it: `type: 'x.y'`, or a `['x.y', …]` pair handed to an appender. */
const WRITTEN = [/\btype: '([a-z_]+(?:\.[a-z_]+)+)'/g, /\[\s*'([a-z_]+\.[a-z_]+)',\s*result\./g];
const production = sources(join(ROOT, 'src')).filter((f) => !f.endsWith(join('audit', 'events.ts')));
const texts = new Map(production.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8')]));

describe('the audit event table (src/audit/events.ts)', () => {
  it('lists every event type with what it records, its subject and actor, and its detail fields', () => {
    const table = AUDIT_EVENT_TYPES.map((type) => {
      const d = AUDIT_EVENTS[type] as { records: string; subject?: string; actor?: string; details: readonly string[] };
      return { type, records: d.records, subject: d.subject ?? null, actor: d.actor ?? null, details: [...d.details] };
    });
    expect(table.length).toBe(51);
    for (const row of table) {
      expect(row.records.length).toBeGreaterThan(10);
      expect(new Set(row.details).size).toBe(row.details.length);
    }
    expect(table.map((r) => r.type)).toEqual(expect.arrayContaining(['token.issued', 'token.refused', 'svid.issued', 'signal.received', 'revocation', 'task.ended', 'ca.rotation_activated']));
  });

  it('defines every event type written anywhere in src/', () => {
    const undefinedTypes: string[] = [];
    for (const [file, text] of texts) {
      for (const pattern of WRITTEN) {
        for (const m of text.matchAll(pattern)) if (!isAuditEventType(m[1]!)) undefinedTypes.push(`${file}: ${m[1]}`);
      }
    }
    expect(undefinedTypes).toEqual([]);
  });

  it('defines no event type that nothing in src/ writes', () => {
    const all = [...texts.values()].join('\n');
    const unwritten = AUDIT_EVENT_TYPES.filter((type) => !all.includes(`'${type}'`));
    expect(unwritten).toEqual([]);
  });

  it('defines every event type the tests look for', () => {
    const tests = [join(ROOT, 'test', 'integration'), join(ROOT, 'test', 'interop')].flatMap((dir) => readdirSync(dir).filter((n) => n.endsWith('.ts')).map((n) => join(dir, n)));
    const looked: string[] = [];
    for (const file of tests) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:where: \{ type: |auditCount\()'([^']+)'/g)) if (!isAuditEventType(m[1]!)) looked.push(`${relative(ROOT, file)}: ${m[1]}`);
    }
    expect(looked).toEqual([]);
  });
});
