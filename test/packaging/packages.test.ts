/**
 * What a new user gets from the packages, with nothing published: `npm pack` of the broker,
 * `@writ/sdk` and `@writ/mcp`; each tarball installed into an empty project of its own (the
 * registry serves only third-party dependencies); the broker started there with `writ serve`;
 * an MCP server and a connector run from their projects against it.
 *
 * - No package builds anything in a consumer's install: no install-time scripts in a packed
 *   manifest, and `dist` shipped in the tarball (built by `npm run build`, which `npm test` runs
 *   first; `prepack` builds it for a real `npm pack`).
 * - The connector's project holds `@writ/sdk` and nothing else; the MCP server's dependency tree,
 *   apart from the MCP SDK and Express it chose (`@writ/mcp`'s peers), holds no Prisma, PGlite,
 *   Cedar, Express or pg.
 *
 * Packaging does not depend on the database: the PostgreSQL pass of CI skips this file.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { TestIdentityProvider } from '../support/fixture';
import { usingPostgres } from '../support/database';
import { httpsRequest } from '../support/https';
import { spawnWrit, type WritProcess } from '../support/process';

const ROOT = resolve(__dirname, '../..');
const CONSUMER = join(__dirname, 'consumer');
const run = promisify(execFile);
const TD = 'pkg.test';
const IDP = 'https://idp.pkg.test';
const MCP_SERVER_ID = `spiffe://${TD}/mcp/issues`;
const CONNECTOR_ID = `spiffe://${TD}/agent/assistant`;
/** Packages none of Writ's client packages may pull in (their peers aside). */
const FORBIDDEN = [/^prisma$/, /^@prisma\//, /^@electric-sql\//, /^pglite/, /^@cedar-policy\//, /^express$/, /^pg$/, /^pg-/];

const POLICIES = `
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };
`;

const describeOnce = usingPostgres() ? describe.skip : describe;
jest.setTimeout(240_000);

let work: string;
const tarballs: Record<'broker' | 'sdk' | 'mcp', string> = { broker: '', sdk: '', mcp: '' };

/** npm in `cwd`, offline-first: only third-party dependencies come from the registry. */
const npm = (cwd: string, args: readonly string[]) =>
  run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, maxBuffer: 64 << 20 });

/** An empty project in `work/<name>` with the given tarballs (and registry packages) installed. */
async function project(name: string, install: readonly string[]): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true }));
  await npm(dir, ['install', ...install]);
  return dir;
}

/** Every package installed in a project: name → the names it depends on (dependencies and optional ones, not peers). */
function installedTree(dir: string): Map<string, string[]> {
  const tree = new Map<string, string[]>();
  const visit = (nm: string) => {
    if (!existsSync(nm)) return;
    for (const entry of readdirSync(nm)) {
      if (entry.startsWith('.')) continue;
      if (entry.startsWith('@')) {
        for (const scoped of readdirSync(join(nm, entry))) read(join(nm, entry, scoped));
      } else read(join(nm, entry));
    }
  };
  const read = (pkgDir: string) => {
    const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { name: string; dependencies?: object; optionalDependencies?: object };
    tree.set(manifest.name, [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.optionalDependencies ?? {})]);
    visit(join(pkgDir, 'node_modules'));
  };
  visit(join(dir, 'node_modules'));
  return tree;
}

/** The transitive dependencies of `name` in an installed tree (itself excluded). */
function closure(tree: Map<string, string[]>, name: string): Set<string> {
  const seen = new Set<string>();
  const walk = (n: string) => {
    for (const d of tree.get(n) ?? []) if (!seen.has(d)) (seen.add(d), walk(d));
  };
  walk(name);
  return seen;
}

const forbiddenIn = (names: Iterable<string>) => [...names].filter((n) => FORBIDDEN.some((re) => re.test(n)));

/** Runs a consumer script with node in `cwd`; resolves with its first stdout line parsed as JSON. */
function startScript(cwd: string, script: string, env: Record<string, string>): { child: ChildProcess; first: Promise<any>; stderr: () => string } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const child = spawn(process.execPath, [script], { cwd, env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const first = new Promise((res, rej) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) res(JSON.parse(out.slice(0, nl)));
    });
    child.on('exit', (code) => rej(new Error(`${script} exited with ${code}: ${err}`)));
  });
  return { child, first, stderr: () => err };
}

describeOnce('the packed packages, installed into empty projects', () => {
  let broker: WritProcess | undefined;
  const servers: ChildProcess[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'writ-packages-'));
    const packs = join(work, 'tarballs');
    mkdirSync(packs);
    // `npm test` built dist and the packages' dist (npm run build); --ignore-scripts so that this
    // test does not rebuild them under other test files running now.
    const { stdout } = await npm(ROOT, ['pack', '--ignore-scripts', '--json', '--pack-destination', packs, '--workspaces', '--include-workspace-root']);
    for (const p of JSON.parse(stdout) as { name: string; filename: string }[]) {
      const key = p.name === 'writ' ? 'broker' : p.name === '@writ/sdk' ? 'sdk' : p.name === '@writ/mcp' ? 'mcp' : undefined;
      if (key) tarballs[key] = join(packs, p.filename);
    }
  });

  afterAll(async () => {
    for (const s of servers) s.kill('SIGTERM');
    if (broker) {
      broker.child.kill('SIGTERM');
      await broker.exit;
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('packs the broker, @writ/sdk and @writ/mcp with dist and no install-time scripts', async () => {
    for (const [name, tgz] of Object.entries(tarballs)) {
      expect([name, existsSync(tgz)]).toEqual([name, true]);
      const { stdout: listing } = await run('tar', ['-tzf', tgz]);
      const files = listing.split('\n');
      const manifest = JSON.parse((await run('tar', ['-xOzf', tgz, 'package/package.json'])).stdout) as { scripts?: Record<string, string>; main: string };
      // npm runs preinstall, install and postinstall in a consumer's install (and prepare for git dependencies only).
      expect([name, Object.keys(manifest.scripts ?? {}).filter((s) => /^(pre|post)?install$/.test(s))]).toEqual([name, []]);
      expect([name, files.includes(`package/${manifest.main.replace(/^\.\//, '')}`)]).toEqual([name, true]);
      expect([name, files.filter((f) => /\.test\.|\/test\/|\.ts$/.test(f) && !f.endsWith('.d.ts'))]).toEqual([name, []]);
    }
  });

  it('installs the broker from its tarball and `writ serve` starts it', async () => {
    const dir = await project('broker', [tarballs.broker]);
    const idp = await TestIdentityProvider.create(work, IDP);
    writeFileSync(join(work, 'writ.cedar'), POLICIES);
    const { stdout: version } = await run('npx', ['--no', '--', 'writ', '--version'], { cwd: dir });
    expect(version.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    broker = spawnWrit(
      dir,
      {
        WRIT_TRUST_DOMAIN: TD,
        WRIT_DATA_DIR: join(dir, 'data'),
        WRIT_CA_DIR: join(dir, 'certs'),
        WRIT_POLICY_FILE: join(work, 'writ.cedar'),
        WRIT_IDENTITY_PROVIDERS: JSON.stringify([idp.trusted]),
        WRIT_ISSUER: `https://writ.${TD}`,
      },
      [join(dir, 'node_modules/.bin/writ'), 'serve'],
    );
    const { apiUrl } = await broker.ready;
    const ca = readFileSync(join(dir, 'certs/ca.crt'), 'utf8');
    expect((await httpsRequest(`${apiUrl}/v1/bundle`, { ca })).status).toBe(200);
    brokerState = { apiUrl, ca, caFile: join(dir, 'certs/ca.crt'), idp, adminToken: /admin token .*: (\S+)/.exec(broker.stderr())![1]! };
  });

  it('@writ/sdk installs alone and @writ/mcp with only jose and zod besides its peers', async () => {
    const connector = await project('connector', [tarballs.sdk]);
    expect([...installedTree(connector).keys()]).toEqual(['@writ/sdk']);
    for (const f of ['connector.cjs', 'common.cjs']) copyFileSync(join(CONSUMER, f), join(connector, f));

    const mcp = await project('mcp-v1', [tarballs.sdk, tarballs.mcp, '@modelcontextprotocol/sdk@1.32.2', 'express@5.3.0']);
    const tree = installedTree(mcp);
    const own = closure(tree, '@writ/mcp');
    expect(forbiddenIn(own)).toEqual([]);
    expect([...own].sort()).toEqual(['jose', 'zod']);
    expect(forbiddenIn(closure(tree, '@writ/sdk'))).toEqual([]);
    for (const f of ['mcp-server-v1.cjs', 'common.cjs']) copyFileSync(join(CONSUMER, f), join(mcp, f));

    // SDK v2 alone: nothing of @writ/mcp may need SDK 1.x, at run time or in its types.
    const mcpV2 = await project('mcp-v2', [tarballs.sdk, tarballs.mcp, '@modelcontextprotocol/server@2.4.0', '@modelcontextprotocol/node@2.1.2', 'zod@4', 'express@5.3.0']);
    const treeV2 = installedTree(mcpV2);
    expect(treeV2.has('@modelcontextprotocol/sdk')).toBe(false);
    expect([...closure(treeV2, '@writ/mcp')].sort()).toEqual(['jose', 'zod']);
    for (const f of ['mcp-server-v2.cjs', 'common.cjs']) copyFileSync(join(CONSUMER, f), join(mcpV2, f));
    projects = { connector, mcp, mcpV2 };
  });

  it("@writ/mcp's type declarations name no MCP SDK package (a consumer has v1 or v2)", async () => {
    const { stdout } = await run('tar', ['-xOzf', tarballs.mcp, '--wildcards', 'package/dist/*.d.ts']);
    expect(stdout.length).toBeGreaterThan(1000);
    expect(stdout.match(/from ['"]@modelcontextprotocol\/[^'"]*['"]/g) ?? []).toEqual([]);
  });

  it.each([
    ['SDK 1.x', 'mcp', 'mcp-server-v1.cjs', MCP_SERVER_ID, CONNECTOR_ID],
    ['SDK v2', 'mcpV2', 'mcp-server-v2.cjs', `${MCP_SERVER_ID}-v2`, `${CONNECTOR_ID}-v2`],
  ] as const)('a connector (@writ/sdk) calls an MCP server (@writ/mcp, %s) with a task token from the installed broker', async (_sdk, where, script, serverId, connectorId) => {
    const { apiUrl, ca, caFile, idp, adminToken } = brokerState!;
    const admin = async (path: string, body: unknown) => {
      const res = await httpsRequest(`${apiUrl}${path}`, { ca, method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect([path, res.status]).toEqual([path, 201]);
      return JSON.parse(res.body) as Record<string, string>;
    };
    const joinToken = async (spiffeId: string) => (await admin('/v1/admin/join-tokens', { entry_id: (await admin('/v1/admin/entries', { spiffe_id: spiffeId, metadata: { owner: 'platform' } })).id })).token!;
    const common = { WRIT_SERVER: apiUrl, WRIT_CA: caFile, WRIT_ISSUER: `https://writ.${TD}` };

    const mcp = startScript(projects![where], script, { ...common, JOIN_TOKEN: await joinToken(serverId) });
    servers.push(mcp.child);
    const { url, spiffeId } = await mcp.first;
    expect(spiffeId).toBe(serverId);
    await admin('/v1/admin/resources', {
      uri: url,
      spiffe_id: serverId,
      tools: [
        { name: 'list_issues', actions: ['read'], classification: 'internal' },
        { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
      ],
    });

    const connector = startScript(projects!.connector, 'connector.cjs', {
      ...common,
      JOIN_TOKEN: await joinToken(connectorId),
      ID_TOKEN: await idp.idToken(),
      RESOURCE: url,
      MCP_SERVER_ID: serverId,
    });
    const seen = await connector.first;
    expect(seen.listed).toEqual(['list_issues']);
    expect(seen.called).toBe(`1 open issue, for alice via ${connectorId}`);
    expect(seen.ungranted.status).toBe(403);
    expect(seen.ungranted.challenge).toMatch(/^Bearer .*error="insufficient_scope"/);
    expect(seen.ended).toBeGreaterThanOrEqual(1);
    expect(seen.afterEnd.status).toBe(401);
    expect(seen.afterEnd.challenge).toMatch(/error="invalid_token"/);
  });
});

let brokerState: { apiUrl: string; ca: string; caFile: string; idp: TestIdentityProvider; adminToken: string } | undefined;
let projects: { connector: string; mcp: string; mcpV2: string } | undefined;
