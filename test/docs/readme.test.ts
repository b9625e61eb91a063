import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { CONFIG_ENV_NAMES, CONFIG_FILE_KEYS } from '../../src/config';

/**
 * The README is the first hour of every new user: its Configuration table names every setting
 * the loader reads (environment variable and file key), as one table, and no link in it or in
 * the other documents points at a file that is not there.
 */

const ROOT = join(__dirname, '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The lines of a `## ` section of the README, up to the next `## ` heading. */
function section(title: string): string[] {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => l === `## ${title}`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

describe('README: the Configuration table', () => {
  const lines = section('Configuration');
  const first = lines.findIndex((l) => l.startsWith('| variable |'));
  const rows: string[] = [];
  for (let i = first + 2; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(lines[i]!);
  const cell = (row: string, n: number) => row.split('|')[n + 1]!;
  const named = (n: number) => new Set(rows.flatMap((r) => [...cell(r, n).matchAll(/`([^`]+)`/g)].map((m) => m[1]!)));

  it('is one table: no row of it stands apart after a blank line', () => {
    expect(first).toBeGreaterThanOrEqual(0);
    const stray = lines.slice(first + 2 + rows.length).filter((l) => /^\| `/.test(l));
    expect(stray).toEqual([]);
  });

  it('names every environment variable the loader reads', () => {
    const documented = named(0);
    const missing = CONFIG_ENV_NAMES.filter((name) => name !== 'WRIT_CONFIG' && !documented.has(name));
    expect(missing).toEqual([]);
    expect(lines.join('\n')).toContain('`WRIT_CONFIG`');
  });

  it('names every config file key the loader accepts', () => {
    const documented = named(1);
    expect(CONFIG_FILE_KEYS.filter((key) => !documented.has(key))).toEqual([]);
  });

  it('names no variable the loader does not read', () => {
    const known = new Set(CONFIG_ENV_NAMES);
    expect([...named(0)].filter((name) => /^[A-Z][A-Z0-9_]+$/.test(name) && !known.has(name))).toEqual([]);
  });
});

describe('documents: every relative link points at a file', () => {
  const documents = ['README.md', 'bench/README.md', 'packages/sdk/README.md', 'packages/mcp/README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it.each(documents)('%s', (doc) => {
    const text = readFileSync(join(ROOT, doc), 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // an anchor, or http(s):, mailto:
      const path = normalize(join(dirname(join(ROOT, doc)), target));
      if (!path.startsWith(ROOT) || !existsSync(path)) broken.push(m[1]!);
    }
    expect(broken).toEqual([]);
  });
});
