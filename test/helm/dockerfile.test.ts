import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CHART, ROOT } from '../support/helm';

/**
 * The image, checked without a container engine: what the runtime stage installs and copies
 * is what the compiled broker loads, and it runs as the user the chart expects.
 */
const DIST = join(ROOT, 'dist');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
// Instructions, with line continuations joined.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages: string[][] = [];
for (const line of instructions) {
  if (/^FROM\s/i.test(line)) stages.push([]);
  stages[stages.length - 1]?.push(line);
}
const [build, runtime] = [stages[0]!, stages[stages.length - 1]!];
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages as Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;

/** The bare module specifiers the compiled code requires (static or dynamic). */
function requiredModules(dir: string, found = new Map<string, string>()): Map<string, string> {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, d.name);
    if (d.isDirectory()) requiredModules(path, found);
    else if (d.name.endsWith('.js')) {
      for (const m of readFileSync(path, 'utf8').matchAll(/\b(?:require|import)\(\s*["']([^"'.][^"']*)["']\s*\)/g)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        if (!found.has(spec)) found.set(spec, path);
      }
    }
  }
  return found;
}

const packageOf = (spec: string) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

describe('Dockerfile', () => {
  beforeAll(() => {
    if (!existsSync(join(DIST, 'main.js'))) throw new Error('dist/main.js is missing: run `npm run build` (npm test does)');
  });

  it('the runtime stage installs production packages only, without running install scripts', () => {
    const ci = runtime.find((l) => /\bnpm ci\b/.test(l))!;
    expect(ci).toBeDefined();
    for (const flag of ['--omit=dev', '--omit=optional', '--ignore-scripts']) expect(ci).toContain(flag);
  });

  it('every package dist/ requires is one the runtime stage installs, and resolves here', () => {
    const modules = requiredModules(DIST);
    expect(modules.size).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const [spec, file] of modules) {
      const entry = lock[`node_modules/${packageOf(spec)}`];
      // npm ci --omit=dev --omit=optional leaves out dev, optional and devOptional packages.
      if (!entry || entry.dev || entry.optional || entry.devOptional) missing.push(`${spec} (${relative(ROOT, file)})`);
      else createRequire(file).resolve(spec);
    }
    expect(missing).toEqual([]);
    // What the broker cannot start without: the Prisma query compiler and Cedar's WebAssembly.
    expect([...modules.keys()]).toEqual(expect.arrayContaining(['@prisma/client/runtime/query_compiler_fast_bg.postgresql.wasm-base64.js', '@cedar-policy/cedar-wasm/nodejs']));
  });

  it('the runtime stage copies dist/ (with the generated Prisma client) and prisma/migrations where dist/ reads them', () => {
    expect(runtime).toEqual(expect.arrayContaining([expect.stringMatching(/^COPY --from=build \/app\/dist \.\/dist$/), expect.stringMatching(/^COPY --from=build \/app\/prisma \.\/prisma$/)]));
    expect(runtime).toContain('WORKDIR /app');
    // The client is generated into src/db/generated and compiled with src/.
    expect(existsSync(join(DIST, 'db', 'generated', 'client.js'))).toBe(true);
    // dist/db/migrate.js reads <app>/prisma/migrations.
    const { MIGRATIONS_DIR } = require(join(DIST, 'db', 'migrate.js')) as { MIGRATIONS_DIR: string };
    expect(MIGRATIONS_DIR).toBe(join(ROOT, 'prisma', 'migrations'));
    // The build stage generates the client (npm run build) after copying the schema.
    const copiesPrisma = build.findIndex((l) => /^COPY prisma \.\/prisma$/.test(l));
    expect(copiesPrisma).toBeGreaterThan(-1);
    expect(build.findIndex((l) => l === 'RUN npm run build')).toBeGreaterThan(copiesPrisma);
  });

  it('.dockerignore keeps out host builds and secrets, not what the build stage copies', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', 'dist', '.git', 'src/db/generated', '**/*.key']) expect(ignored).toContain(p);
    const sources = build.filter((l) => /^COPY\s/.test(l) && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'scripts', 'prisma', 'src']));
    for (const s of sources) expect({ s, ignored: ignored.filter((p) => !p.includes('*') && (s === p || s.startsWith(`${p}/`))) }).toEqual({ s, ignored: [] });
  });

  it('runs as the chart\'s uid and gid, listening on every interface, as npm start does', () => {
    const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    const { runAsUser, runAsGroup, fsGroup } = values.podSecurityContext;
    expect(runtime).toContain(`USER ${runAsUser}:${runAsGroup}`);
    expect(fsGroup).toBe(runAsGroup);
    expect(runtime.join('\n')).toMatch(/\bWRIT_HOST=0\.0\.0\.0\b/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const start = (pkg.scripts.start as string).split('&&').pop()!.trim().split(/\s+/);
    const cmd = runtime.find((l) => l.startsWith('CMD '));
    expect(JSON.parse(cmd!.slice(4))).toEqual(start);
  });
});
