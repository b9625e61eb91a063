/**
 * `writ login --device` (issue 19): the RFC 8628 device authorization grant against a real
 * OpenID Provider (writ dev's oidc-provider), the person confirming the code in the provider's
 * own pages; the broker names where to sign in (GET /v1/sign-in) and decides the role.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID } from '../../src/dev/op';
import { approveDeviceCode } from '../../src/dev/id-token';
import { CLI, writ } from '../support/cli';
import { testConfig } from '../support/config';
import { startDevOpProcess, type DevOpProcess } from '../support/dev-op-process';
import { createTestStore, type TestStore } from '../support/database';


let op: DevOpProcess;
let store: TestStore;
let broker: Broker;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  op = await startDevOpProcess({ users: { sam: ['secops'] } });
  store = await createTestStore();
  broker = await startBroker(
    testConfig(store, {
      WRIT_TRUST_DOMAIN: 'login.test',
      WRIT_ADMIN_TOKEN: 'a-bootstrap-token-of-some-length',
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
      WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
      WRIT_ADMIN_ROLES: JSON.stringify([{ role: 'operator', issuer: op.issuer, group: 'secops' }]),
    }),
  );
  dir = mkdtempSync(join(tmpdir(), 'writ-login-device-'));
  env = { WRIT_SERVER: broker.apiUrl, WRIT_CA: join(store.dir, 'certs', 'ca.crt'), WRIT_SESSION_FILE: join(dir, 'session.json') };
});
afterAll(async () => {
  await broker?.shutdown();
  await op?.close();
  await store?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('asks the broker where people sign in (GET /v1/sign-in), and refuses a provider it does not name', async () => {
  const answer = await writ(['login', '--device', '--issuer', 'https://nowhere.test'], env);
  expect([answer.code, answer.stderr]).toEqual([2, expect.stringContaining(`--issuer is one of ${op.issuer}`)]);
});

it('signs in with a code confirmed at the provider, keeps the token 0600, and the broker gives the role', async () => {
  const child = spawn(process.execPath, [CLI, 'login', '--device', '-o', 'json'], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  const code = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      const m = /check the code ([A-Z0-9-]+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('close', () => reject(new Error(`writ login exited first: ${stderr}`)));
  });
  expect(stderr).toMatch(new RegExp(`open ${op.issuer.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/device\\?user_code=`));
  await approveDeviceCode({ issuer: op.issuer, userCode: code, username: 'sam' });
  const exit = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect([exit, JSON.parse(stdout)]).toEqual([0, expect.objectContaining({ user: 'sam', issuer: op.issuer })]);
  expect(statSync(env.WRIT_SESSION_FILE!).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(env.WRIT_SESSION_FILE!, 'utf8')).server).toBe(broker.apiUrl);
  // An operator now: may read leases and revoke, not rotate the CA.
  expect((await writ(['leases', '-o', 'json'], env)).code).toBe(0);
  const rotate = await writ(['ca', 'rotate'], env);
  expect([rotate.code, rotate.stderr]).toEqual([1, expect.stringContaining('this needs the admin role')]);
  expect(existsSync(env.WRIT_SESSION_FILE!)).toBe(true);
}, 60_000);
