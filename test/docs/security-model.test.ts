import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { DEFAULT_JWT_SVID_TTL, DEFAULT_X509_SVID_TTL } from '../../src/attestation/entries';
import { loadConfig } from '../../src/config/load';
import { parseDuration } from '../../src/core/duration';

/**
 * docs/security-model.md maps framework controls to Writ mechanisms and to the tests that
 * prove them. This keeps the document honest: every "Proven by" names an existing test file
 * and a describe/it title that is literally in it, every framework of the issue has rows,
 * control IDs carry their published names, and the lifetimes are the configured defaults.
 */

const ROOT = join(__dirname, '..', '..');
const DOC_PATH = 'docs/security-model.md';
const doc = readFileSync(join(ROOT, DOC_PATH), 'utf8');

const FRAMEWORKS = ['OWASP Agentic Top 10 (2026)', 'OWASP NHI Top 10 (2025)', 'CSA MAESTRO', 'NIST AI RMF GOVERN'] as const;

/** OWASP Top 10 for Agentic Applications 2026, as published. */
const ASI: Record<string, string> = {
  ASI01: 'Agent Goal Hijack',
  ASI02: 'Tool Misuse and Exploitation',
  ASI03: 'Identity and Privilege Abuse',
  ASI04: 'Agentic Supply Chain Vulnerabilities',
  ASI05: 'Unexpected Code Execution',
  ASI06: 'Memory & Context Poisoning',
  ASI07: 'Insecure Inter-Agent Communication',
  ASI08: 'Cascading Failures',
  ASI09: 'Human-Agent Trust Exploitation',
  ASI10: 'Rogue Agents',
};

/** OWASP Non-Human Identities Top 10 2025, as published. */
const NHI: Record<string, string> = {
  NHI1: 'Improper Offboarding',
  NHI2: 'Secret Leakage',
  NHI3: 'Vulnerable Third-Party NHI',
  NHI4: 'Insecure Authentication',
  NHI5: 'Overprivileged NHI',
  NHI6: 'Insecure Cloud Deployment Configurations',
  NHI7: 'Long-Lived Secrets',
  NHI8: 'Environment Isolation',
  NHI9: 'NHI Reuse',
  NHI10: 'Human Use of NHI',
};

/** CSA MAESTRO layers. */
const MAESTRO: Record<string, string> = {
  L1: 'Foundation Models',
  L2: 'Data Operations',
  L3: 'Agent Frameworks',
  L4: 'Deployment and Infrastructure',
  L5: 'Evaluation and Observability',
  L6: 'Security and Compliance',
  L7: 'Agent Ecosystem',
};

interface Table {
  header: string[];
  rows: string[][];
}

/** Markdown tables: runs of lines starting with "|"; the second line is the delimiter row. */
function tables(md: string): Table[] {
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
  const out: Table[] = [];
  let block: string[] = [];
  const flush = () => {
    if (block.length >= 2) out.push({ header: cells(block[0]!), rows: block.slice(2).map(cells) });
    block = [];
  };
  for (const line of md.split('\n')) {
    if (line.trim().startsWith('|')) block.push(line);
    else flush();
  }
  flush();
  return out;
}

function tableWith(header: string[]): Table {
  const found = tables(doc).filter((t) => t.header.join('|') === header.join('|'));
  if (found.length !== 1) throw new Error(`${DOC_PATH} must have exactly one table headed | ${header.join(' | ')} |, found ${found.length}`);
  for (const row of found[0]!.rows) {
    if (row.length !== header.length) throw new Error(`a row of the "${header[0]}" table has ${row.length} cells, not ${header.length}: ${row.join(' | ').slice(0, 120)}`);
  }
  return found[0]!;
}

const mapping = tableWith(['Framework', 'Control', 'Writ mechanism', 'Proven by']);
const notCovered = tableWith(['Framework', 'Control', 'Not covered by Writ', 'Whose responsibility']);
const footholds = tableWith(['Foothold', 'Can', 'Cannot', 'For how long', 'How to end it']);
const lifetimes = tableWith(['Credential', 'Setting', 'Default', 'Bounds and early end']);

interface Reference {
  control: string;
  file: string;
  name: string;
  postgres: boolean;
}

/** One reference: `path` "title", optionally marked *(PostgreSQL)*; several are separated by <br>. */
const REFERENCE = /^`([^`]+)` "([^"]+)"( \*\(PostgreSQL\)\*)?$/;

const references: Reference[] = mapping.rows.flatMap(([, control, , provenBy]) =>
  provenBy!.split('<br>').map((part) => {
    const m = REFERENCE.exec(part.trim());
    if (!m) throw new Error(`${control}: "Proven by" part is not \`file\` "test name": ${part}`);
    return { control: control!, file: m[1]!, name: m[2]!, postgres: m[3] !== undefined };
  }),
);

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Whether `source` has a describe/it/test call (or a wrapper such as describePg, it.skip,
 * it.each) whose title is exactly `name`, as a '…', "…" or `…` literal (escaped quotes allowed).
 */
function hasTitle(source: string, name: string): boolean {
  return (["'", '"', '`'] as const).some((q) => {
    const literal = name.replace(/\\/g, '\\\\').replaceAll(q, `\\${q}`);
    return new RegExp(`\\(\\s*${q}${escapeRegExp(literal)}${q}\\s*,`).test(source);
  });
}

describe('security model document', () => {
  it('has Proven by references in every row of the control mapping', () => {
    expect(mapping.rows.length).toBeGreaterThan(0);
    for (const [framework, control, mechanism, provenBy] of mapping.rows) {
      expect({ framework, control, mechanism: mechanism!.length > 0, provenBy: provenBy!.length > 0 }).toEqual({ framework, control, mechanism: true, provenBy: true });
    }
  });

  it.each(references.map((r) => [`${r.file} "${r.name}"`, r] as const))('%s exists, and names a test in that file', (_label, ref) => {
    expect(isAbsolute(ref.file)).toBe(false);
    expect(normalize(ref.file).startsWith('..')).toBe(false);
    expect(ref.file).toMatch(/\.test\.ts$/);
    const path = join(ROOT, ref.file);
    if (!existsSync(path)) throw new Error(`${ref.control}: ${ref.file} does not exist`);
    const source = readFileSync(path, 'utf8');
    if (!hasTitle(source, ref.name)) throw new Error(`${ref.control}: ${ref.file} has no describe/it named "${ref.name}" (renamed or removed?)`);
    if (ref.postgres) expect(source).toContain('usingPostgres');
  });

  it('has at least one mapping row for each framework of the issue, and no other framework', () => {
    for (const t of [mapping, notCovered]) {
      for (const [framework] of t.rows) expect(FRAMEWORKS).toContain(framework);
    }
    for (const f of FRAMEWORKS) expect(mapping.rows.filter(([framework]) => framework === f).length).toBeGreaterThan(0);
  });

  it('names controls as the frameworks publish them', () => {
    /** The control cell starts with the item's ID and its published name. */
    const published = (control: string, ids: Record<string, string>, id: RegExp) => {
      const found = id.exec(control)?.[0];
      const name = found !== undefined && ids[found] !== undefined ? `${found} ${ids[found]}` : `(an ID of ${Object.keys(ids).join(', ')})`;
      expect(control.slice(0, name.length)).toBe(name);
    };
    for (const [table, rows] of [['mapping', mapping.rows], ['not covered', notCovered.rows]] as const) {
      for (const [framework, control] of rows as string[][]) {
        if (framework === 'OWASP Agentic Top 10 (2026)') published(control!, ASI, /^ASI\d\d\b/);
        else if (framework === 'OWASP NHI Top 10 (2025)') published(control!, NHI, /^NHI\d{1,2}\b/);
        else if (framework === 'CSA MAESTRO') {
          const layers = [...control!.matchAll(/\b(L\d) ([A-Z][A-Za-z ]*?)(?=[:,]|$)/g)];
          expect(layers.length).toBeGreaterThan(0);
          for (const [, layer, name] of layers) expect(`${layer} ${name}`).toBe(`${layer} ${MAESTRO[layer!]}`);
        } else expect(control).toMatch(table === 'mapping' ? /^GOVERN [1-6]\.[1-7] \S/ : /^GOVERN [1-6]/);
      }
    }
  });

  it('accounts for every OWASP Agentic and NHI item: mapped, or listed as not covered', () => {
    const controls = [...mapping.rows, ...notCovered.rows].map((r) => r[1]!).join('\n');
    const missing = [...Object.keys(ASI), ...Object.keys(NHI)].filter((id) => !new RegExp(`\\b${id}\\b`).test(controls));
    expect(missing).toEqual([]);
  });

  it('describes each foothold of the issue', () => {
    const names = footholds.rows.map((r) => r[0]!.toLowerCase());
    for (const foothold of ['stolen x.509-svid', 'stolen task token', 'compromised connector', 'compromised replica', 'read access to the database']) {
      expect(names.filter((n) => n.includes(foothold))).toHaveLength(1);
    }
    for (const row of footholds.rows) for (const cell of row) expect(cell.length).toBeGreaterThan(0);
  });

  it('states the lifetimes Writ is configured with by default', () => {
    const config = loadConfig({});
    const defaults: Record<string, number> = {
      x509_svid_ttl: DEFAULT_X509_SVID_TTL,
      jwt_svid_ttl: DEFAULT_JWT_SVID_TTL,
      WRIT_X509_SVID_MAX_TTL: config.x509SvidMaxTtl,
      WRIT_JWT_SVID_MAX_TTL: config.jwtSvidMaxTtl,
      WRIT_ACCESS_TOKEN_TTL: config.accessTokenTtl,
      WRIT_ACCESS_TOKEN_MAX_TTL: config.accessTokenMaxTtl,
      WRIT_CA_TTL: config.caTtl,
      WRIT_CA_ROTATION_OVERLAP: config.caRotationOverlap,
      WRIT_BUNDLE_REFRESH_HINT: config.bundleRefreshHint,
      WRIT_LEASE_RETENTION: config.leaseRetention,
    };
    const stated: Record<string, number | undefined> = {};
    for (const [, setting, value] of lifetimes.rows) {
      const name = /`([^`]+)`/.exec(setting!)?.[1];
      if (name === undefined || !(name in defaults)) continue;
      stated[name] = parseDuration(/`([^`]+)`/.exec(value!)?.[1] ?? '');
    }
    expect(stated).toEqual(defaults);
    expect(config.maxChainDepth).toBe(2);
    expect(doc).toContain('`WRIT_MAX_CHAIN_DEPTH` (2 hops)');
  });
});
