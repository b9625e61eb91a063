/**
 * Helpers for the CLI tests: runs the built `writ` command (dist/cli/main.js) as its own
 * process, starts a broker in this process for it to talk to, and checks the shapes of refusals.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { testConfig } from './config';
import { createTestStore, type TestStore } from './database';

/** The built CLI (npm test builds first). */
export const CLI = resolve(__dirname, '../../dist/cli/main.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --output json). */
  json<T = any>(): T;
}

/**
 * Runs `node dist/cli/main.js …` as its own process, asynchronously: the broker under test
 * runs in this process, so a synchronous spawn would deadlock it. Only PATH and `env` are
 * passed on, so nothing from the outer environment (an admin token, say) leaks in.
 */
export function writ(args: readonly string[], env: Record<string, string | undefined> = {}, opts: { input?: string; cwd?: string } = {}): Promise<Run> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run -s build first`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolvePromise({
        code,
        stdout,
        stderr,
        json: () => {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`not JSON (exit ${code}): ${stdout} ${stderr}`);
          }
        },
      }),
    );
    child.stdin.end(opts.input ?? '');
  });
}

/** A broker in this process, and the environment that points the CLI at it as an admin. */
export interface CliBroker {
  broker: Broker;
  store: TestStore;
  /** A scratch directory for the test's files. */
  work: string;
  caFile: string;
  adminToken: string;
  /** WRIT_SERVER, WRIT_CA and WRIT_ADMIN_TOKEN. */
  env: Record<string, string>;
  /** WRIT_SERVER and WRIT_CA only (no credential). */
  anonymous: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts a broker configured by `env`, which may first put files (a JWKS, say) in the scratch directory. */
export async function startCliBroker(env: (work: string) => Record<string, string> = () => ({})): Promise<CliBroker> {
  const work = mkdtempSync(join(tmpdir(), 'writ-cli-'));
  const store = await createTestStore();
  const config = testConfig(store, env(work));
  let adminToken = '';
  const broker = await startBroker(config, { showAdminToken: (t) => void (adminToken = t) });
  const caFile = join(config.caDir, 'ca.crt');
  const anonymous = { WRIT_SERVER: broker.apiUrl, WRIT_CA: caFile };
  return {
    broker,
    store,
    work,
    caFile,
    adminToken,
    anonymous,
    env: { ...anonymous, WRIT_ADMIN_TOKEN: adminToken },
    stop: async () => {
      await broker.shutdown();
      await store.drop();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** What a refusal must look like: exit 1 (3 when the broker could not be reached), one line on stderr, nothing on stdout. */
export function expectRefused(run: Run, text?: string | RegExp, code = 1): void {
  expect({ code: run.code, stdout: run.stdout }).toEqual({ code, stdout: '' });
  expect(run.stderr.endsWith('\n')).toBe(true);
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^writ: /);
  if (text !== undefined) expect(run.stderr).toMatch(text);
}

/** What a usage error must look like: exit 2, the error and the command's usage on stderr. */
export function expectUsage(run: Run, command: string, text?: string | RegExp): void {
  expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 2, stdout: '' });
  expect(run.stderr).toContain(`Usage: ${command} `);
  if (text !== undefined) expect(run.stderr).toMatch(text);
}
