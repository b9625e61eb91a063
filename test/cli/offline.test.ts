import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTestStore } from '../support/database';
import { brokerEnv } from '../support/process';
import { CLI, expectRefused, expectUsage, writ } from '../support/cli';

const work = mkdtempSync(join(tmpdir(), 'writ-cli-offline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('writ policy validate: offline, against the Cedar schema', () => {
  it('accepts a valid policy set with no broker and no credentials', async () => {
    const file = resolve(__dirname, '../../src/policy/testdata/writ.cedar');
    const run = await writ(['policy', 'validate', file]);
    expect(run).toMatchObject({ code: 0, stdout: `${file}: valid\n`, stderr: '' });
    expect((await writ(['policy', 'validate', file, '-o', 'json'])).json()).toEqual({ file, ok: true });
  });

  it('lists Cedar\'s errors (one per line, naming the policy) and exits 1', async () => {
    const file = join(work, 'bad.cedar');
    writeFileSync(file, '@id("typo")\npermit (principal, action == Writ::Action::"raed", resource);\n');
    const run = await writ(['policy', 'validate', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^.*bad\.cedar: typo, line 2, .*"raed".*$/m);
    expect(run.stderr).toBe(`writ: ${file} is not a valid policy set (1 error)\n`);
    const json = await writ(['policy', 'validate', file, '--output', 'json']);
    expect(json.code).toBe(1);
    expect(json.json()).toEqual({ file, ok: false, errors: [expect.stringContaining('typo')] });
    writeFileSync(file, 'permit (principal, action, resource) when {');
    expect((await writ(['policy', 'validate', file])).code).toBe(1);
    expectRefused(await writ(['policy', 'validate', join(work, 'missing.cedar')]), /cannot read the policy file .*ENOENT/);
    expectUsage(await writ(['policy', 'validate']), 'writ policy validate', /missing required argument 'file'/);
  });
});

describe('the command line itself', () => {
  it('prints help and the version with exit 0, and a usage error with exit 2', async () => {
    const help = await writ(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['serve', 'entry', 'join-token', 'attest', 'svid', 'jwt-svid', 'exchange', 'task', 'revoke', 'leases', 'connector', 'policy', 'audit', 'introspect', 'status', 'ca']) expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(help.stdout).toContain('Exit status: 0 done; 1 refused');
    const version = await writ(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: `${JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')).version}\n` });

    for (const args of [['help'], ['help', 'entry'], ['entry', '--help']]) expect(await writ(args)).toMatchObject({ code: 0, stdout: expect.stringContaining('Usage: writ') });

    expect((await writ([])).code).toBe(2);
    expectUsage(await writ(['bogus']), 'writ', /unknown command 'bogus'/);
    // --help does not make an unknown command valid: the error and the usage, exit 2.
    expectUsage(await writ(['bogus', '--help']), 'writ', /unknown command 'bogus'/);
    expectUsage(await writ(['entry', 'bogus', '--help']), 'writ entry', /unknown command 'bogus'/);
    expect(await writ(['audit', 'tail', '--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('Usage: writ audit tail') });
    expectUsage(await writ(['audit']), 'writ audit');
    expectUsage(await writ(['revoke', '--jti', 'nope', '--reason', 'x']), 'writ revoke', /expected a UUID/);
    expectUsage(await writ(['entry', 'list', '--server', 'http://localhost:8443', '--token', 'x'.repeat(20)]), 'writ entry list', /must be an https:\/\/ URL/);
    expectUsage(await writ(['leases'], { WRIT_ADMIN_TOKEN: '' }), 'writ leases', /need a credential/);
  });

  it('reports an unreachable broker in one line (exit 3, not a refusal), without echoing the admin token', async () => {
    const token = 'a-secret-admin-token-value';
    const run = await writ(['entry', 'list', '--server', 'https://127.0.0.1:9'], { WRIT_ADMIN_TOKEN: token });
    expectRefused(run, /cannot reach https:\/\/127\.0\.0\.1:9: .*ECONNREFUSED/, 3);
    expect(run.stderr).not.toContain(token);
  });

  it('says so when --server names a plain HTTP listener such as the ops port', async () => {
    const plain = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const run = await writ(['entry', 'list', '--server', `https://127.0.0.1:${(plain.address() as AddressInfo).port}`], { WRIT_ADMIN_TOKEN: 'x'.repeat(20) });
      expectRefused(run, /does not speak TLS: is it the ops port/, 3);
    } finally {
      plain.close();
    }
  });
});

describe('writ serve', () => {
  it('runs the broker as npm start does, serves the CLI, and drains on SIGTERM with exit 0', async () => {
    const store = await createTestStore();
    const adminToken = 'serve-test-admin-token-0123456789';
    const child = spawn(process.execPath, [CLI, 'serve'], {
      env: { PATH: process.env.PATH, WRIT_PORT: '0', WRIT_OPS_PORT: '0', WRIT_ADMIN_TOKEN: adminToken, ...brokerEnv(store.dir, store.databaseUrl) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const exit = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const apiUrl = await new Promise<string>((res, rej) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /"msg":"writ listening"/.test(out) && /"api":"([^"]+)"/.exec(out);
          if (m) res(m[1]!);
        });
        void exit.then((code) => rej(new Error(`writ serve exited with ${code}: ${stderr}`)));
      });
      const list = await writ(['entry', 'list', '-o', 'json'], { WRIT_SERVER: apiUrl, WRIT_CA: join(store.dir, 'certs', 'ca.crt'), WRIT_ADMIN_TOKEN: adminToken });
      expect(list.json()).toEqual({ entries: [] });
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(stderr).toContain('SIGTERM received, shutting down');
    } finally {
      child.kill('SIGKILL');
      await store.drop();
    }
  });
});
