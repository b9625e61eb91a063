/**
 * writ dev's SaaS (src/dev/saas.ts, oidc-provider as a SaaS authorization server with its API)
 * in its own process, from dist, for the same reason as dev-op-process.ts. The child reports the
 * notes posted to its API on request (`notes()`), over its stdin/stdout.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { SaasNote } from '../../src/dev/saas';

const SAAS = resolve(__dirname, '../../dist/dev/saas.js');
const KEYS = resolve(__dirname, '../../dist/dev/keys.js');

const SCRIPT = `
const { randomBytes } = require('node:crypto');
const { createInterface } = require('node:readline');
const { startDevSaas } = require(${JSON.stringify(SAAS)});
const { newSigningKey } = require(${JSON.stringify(KEYS)});
const spec = JSON.parse(process.env.WRIT_TEST_SAAS);
(async () => {
  const users = new Map(spec.users.map((name) => [name, { name, groups: [] }]));
  const saas = await startDevSaas({ host: spec.host || '127.0.0.1', port: 0, users, keys: { signing: [await newSigningKey()], cookies: [randomBytes(32).toString('base64url')] }, clientSecret: spec.clientSecret, redirectUris: spec.redirectUris, accessTokenTtl: spec.accessTokenTtl, jwtClientJwks: spec.jwtClientJwks });
  process.stdout.write(JSON.stringify({ issuer: saas.issuer, api: saas.api }) + '\\n');
  createInterface({ input: process.stdin }).on('line', () => process.stdout.write(JSON.stringify({ notes: saas.notes }) + '\\n'));
  process.on('SIGTERM', () => saas.close().then(() => process.exit(0)));
})().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
`;

export interface DevSaasProcess {
  readonly issuer: string;
  readonly api: string;
  /** What the API has recorded so far. */
  notes(): Promise<SaasNote[]>;
  close(): Promise<void>;
}

export function startDevSaasProcess(spec: { users: string[]; clientSecret: string; redirectUris: string[]; accessTokenTtl?: number; host?: '127.0.0.1' | 'localhost'; jwtClientJwks?: { keys: Record<string, unknown>[] } }): Promise<DevSaasProcess> {
  if (!existsSync(SAAS)) throw new Error(`${SAAS} is missing: run npm run -s build first`);
  const child = spawn(process.execPath, ['-e', SCRIPT], { env: { PATH: process.env.PATH, WRIT_TEST_SAAS: JSON.stringify(spec) }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = () => new Promise<string>((r) => waiting.push(r));
  return new Promise((resolvePromise, reject) => {
    child.once('exit', (code) => reject(new Error(`the SaaS exited (${code}) before it listened: ${stderr}`)));
    void next().then((line) => {
      const { issuer, api } = JSON.parse(line) as { issuer: string; api: string };
      resolvePromise({
        issuer,
        api,
        notes: async () => {
          const answer = next();
          child.stdin.write('notes\n');
          return (JSON.parse(await answer) as { notes: SaasNote[] }).notes;
        },
        close: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
