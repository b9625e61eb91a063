/**
 * writ dev's OpenID Provider (oidc-provider) in its own process, from dist: for tests that need
 * it besides test/dev and test/integration/identity-provider. oidc-provider is ESM-only, and a
 * dynamic import of it from more than a couple of test files in one jest worker resolves against
 * a torn-down module registry; in a child process it loads as dist loads it (require(esm)).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const OP = resolve(__dirname, '../../dist/dev/op.js');
const KEYS = resolve(__dirname, '../../dist/dev/keys.js');

const SCRIPT = `
const { randomBytes } = require('node:crypto');
const { startDevOp } = require(${JSON.stringify(OP)});
const { newSigningKey } = require(${JSON.stringify(KEYS)});
const spec = JSON.parse(process.env.WRIT_TEST_OP);
(async () => {
  const users = new Map(Object.entries(spec.users).map(([name, groups]) => [name, { name, groups }]));
  const op = await startDevOp({ host: '127.0.0.1', port: 0, users, keys: { signing: [await newSigningKey()], cookies: [randomBytes(32).toString('base64url')] }, consoleRedirectUris: spec.consoleRedirectUris });
  process.stdout.write(JSON.stringify({ issuer: op.issuer }) + '\\n');
  process.on('SIGTERM', () => op.close().then(() => process.exit(0)));
})().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
`;

export interface DevOpProcess {
  readonly issuer: string;
  close(): Promise<void>;
}

/** Starts the provider with `users` (name → groups); resolves once it listens. */
export function startDevOpProcess(spec: { users: Record<string, string[]>; consoleRedirectUris?: string[] }): Promise<DevOpProcess> {
  if (!existsSync(OP)) throw new Error(`${OP} is missing: run npm run -s build first`);
  const child = spawn(process.execPath, ['-e', SCRIPT], { env: { PATH: process.env.PATH, WRIT_TEST_OP: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolvePromise, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const line = out.split('\n')[0];
      if (out.includes('\n')) {
        const { issuer } = JSON.parse(line!) as { issuer: string };
        resolvePromise({
          issuer,
          close: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`the provider exited (${code}) before it listened: ${stderr}`)));
  });
}
