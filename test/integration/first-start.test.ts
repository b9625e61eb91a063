import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { Client } from 'pg';
import { BOOTSTRAP_TOKEN_FILE } from '../../src/admin';
import { startBroker, type Broker } from '../../src/broker';
import { ConfigError, type Config } from '../../src/config';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';

const silent = pino({ level: 'silent' });
const stores: TestStore[] = [];
const running: Broker[] = [];

afterAll(async () => {
  for (const b of running) await b.shutdown();
  for (const s of stores) await s.drop();
});

/** A terminal that records what the broker writes for the operator. */
const terminal = (isTTY: boolean) => {
  const lines: string[] = [];
  return { isTTY, write: (text: string) => void lines.push(text), text: () => lines.join('') };
};

const freshStore = async () => {
  const s = await createTestStore();
  stores.push(s);
  return s;
};

/** Starts a broker recording what it shows: the generated tokens, and the terminal's text. */
async function start(config: Config, tty = false) {
  const shown: { token: string; file: string }[] = [];
  const term = terminal(tty);
  const broker = await startBroker(config, { logger: silent, terminal: term, showAdminToken: (token, file) => void shown.push({ token, file }) });
  running.push(broker);
  return { broker, shown, term };
}

async function stop(broker: Broker) {
  await broker.shutdown();
  running.splice(running.indexOf(broker), 1);
}

/** The public tables of a PostgreSQL store (none: no migration ran), or whether the embedded data directory exists. */
async function databaseTouched(store: TestStore, config: Config): Promise<boolean> {
  if (!store.databaseUrl) return existsSync(config.dataDir);
  const client = new Client({ connectionString: store.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'");
    return rows[0]!.n > 0;
  } finally {
    await client.end();
  }
}

/** Starts a broker expecting a ConfigError; returns it as the one line main.ts prints ("setting: reason"). */
async function refusal(config: Config, shown: string[]): Promise<string> {
  const term = terminal(true);
  const err = await startBroker(config, { logger: silent, terminal: term, showAdminToken: (t) => void shown.push(t) }).then(
    (b) => {
      running.push(b);
      throw new Error('the broker started');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect(term.text()).toBe('');
  return `${(err as ConfigError).setting}: ${(err as ConfigError).message}`;
}

/** Nothing a first start creates: no CA directory, no database, no token file; no token shown. */
async function expectNothingCreated(store: TestStore, config: Config, shown: string[]) {
  expect(existsSync(config.caDir)).toBe(false);
  expect(await databaseTouched(store, config)).toBe(false);
  expect(existsSync(join(config.dataDir, BOOTSTRAP_TOKEN_FILE))).toBe(false);
  expect(existsSync(join(config.caDir, BOOTSTRAP_TOKEN_FILE))).toBe(false);
  expect(shown).toEqual([]);
}

const tokenPath = (config: Config) => join(config.databaseUrl ? config.caDir : config.dataDir, BOOTSTRAP_TOKEN_FILE);

describe('a first start with a bad input changes nothing and fails with one line', () => {
  it('a policy file Cedar refuses; once fixed, the next start generates and keeps the token', async () => {
    const store = await freshStore();
    mkdirSync(join(store.dir, 'in'));
    const policy = join(store.dir, 'in', 'policy.cedar');
    writeFileSync(policy, 'permit(principal, action, resource) when { principal.nonsense };\n');
    const config = testConfig(store, { WRIT_POLICY_FILE: policy });
    const shown: string[] = [];
    const line = await refusal(config, shown);
    expect(line).toMatch(new RegExp(`^WRIT_POLICY_FILE: ${policy.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a valid policy set: `));
    expect(line).not.toContain('\n');
    await expectNothingCreated(store, config, shown);

    // The fixed start is the first one that creates anything: it shows the token, and a file keeps it.
    writeFileSync(policy, 'permit(principal, action, resource);\n');
    const first = await start(config);
    expect(first.shown).toHaveLength(1);
    expect(first.shown[0]!.file).toBe(tokenPath(config));
    expect(readFileSync(tokenPath(config), 'utf8')).toBe(`${first.shown[0]!.token}\n`);
    expect(statSync(tokenPath(config)).mode & 0o777).toBe(0o600);
    await stop(first.broker);
  });

  it('a JWKS file that is not a JWKS', async () => {
    const store = await freshStore();
    mkdirSync(join(store.dir, 'in'));
    const jwks = join(store.dir, 'in', 'idp.json');
    writeFileSync(jwks, '{"keys": "not a list"}');
    const config = testConfig(store, { WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: 'https://idp.test', jwks_file: jwks, audience: 'writ' }]) });
    const shown: string[] = [];
    const line = await refusal(config, shown);
    expect(line).toMatch(/^identity_providers: .*idp\.json/);
    expect(line).not.toContain('\n');
    await expectNothingCreated(store, config, shown);
  });

  it.each(['WRIT_PORT', 'WRIT_OPS_PORT'])('%s taken by another process', async (setting) => {
    const store = await freshStore();
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const config = testConfig(store, { [setting]: String(port) });
      const shown: string[] = [];
      expect(await refusal(config, shown)).toBe(`${setting}: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      await expectNothingCreated(store, config, shown);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('a DATABASE_URL that does not answer (nothing listens there)', async () => {
    const store = await freshStore();
    const closed: Server = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const config = { ...testConfig(store), databaseUrl: `postgresql://writ:s3cret@127.0.0.1:${port}/writ` };
    const shown: string[] = [];
    const line = await refusal(config, shown);
    expect(line).toBe(`DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:${port}/writ: ECONNREFUSED`);
    expect(line).not.toContain('s3cret');
    expect(existsSync(config.caDir)).toBe(false);
    expect(shown).toEqual([]);
  });

  it('one port given to both listeners', async () => {
    const store = await freshStore();
    const probe: Server = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const config = testConfig(store, { WRIT_PORT: String(port), WRIT_OPS_PORT: String(port) });
    const shown: string[] = [];
    expect(await refusal(config, shown)).toBe(`WRIT_OPS_PORT: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    await expectNothingCreated(store, config, shown);
  });
});

describe('the generated bootstrap admin token is never lost', () => {
  let store: TestStore;
  let config: Config;
  let token: string;
  const admin = (broker: Broker, bearer: string) =>
    httpsRequest(`${broker.apiUrl}/v1/admin/entries`, { ca: readFileSync(join(config.caDir, 'ca.crt'), 'utf8'), headers: { authorization: `Bearer ${bearer}` } });
  const deletions = (broker: Broker) => broker.db.prisma.auditEvent.count({ where: { type: 'admin_credential.file_deleted' } });

  beforeAll(async () => {
    store = await freshStore();
    config = testConfig(store);
  });

  it('is written to a 0600 file on generation; each later start says where it is, and shows no token', async () => {
    const first = await start(config);
    expect(first.shown.map((s) => s.file)).toEqual([tokenPath(config)]);
    token = first.shown[0]!.token;
    expect(statSync(tokenPath(config)).mode & 0o777).toBe(0o600);
    await stop(first.broker);

    const second = await start(config);
    expect(second.shown).toEqual([]);
    expect(second.term.text()).toBe(`writ: the bootstrap admin token has not been used yet; it is in ${tokenPath(config)} (its first use deletes the file)\n`);
    expect(second.term.text()).not.toContain(token);

    // A wrong token is no use: the file stays.
    expect((await admin(second.broker, 'writ_admin_wrong-token-of-enough-length')).status).toBe(401);
    await second.broker.admin.settled();
    expect(existsSync(tokenPath(config))).toBe(true);

    // The first successful use deletes the file, audited once.
    expect((await admin(second.broker, readFileSync(tokenPath(config), 'utf8').trim())).status).toBe(200);
    await second.broker.admin.settled();
    expect(existsSync(tokenPath(config))).toBe(false);
    expect(await deletions(second.broker)).toBe(1);
    expect((await admin(second.broker, token)).status).toBe(200);
    await second.broker.admin.settled();
    expect(await deletions(second.broker)).toBe(1);
    const [event] = await second.broker.db.prisma.auditEvent.findMany({ where: { type: 'admin_credential.file_deleted' } });
    expect(event).toMatchObject({ actor: 'writ', details: { path: tokenPath(config) } });
    await stop(second.broker);

    // Used: later starts say nothing of it, and the token still works.
    const third = await start(config);
    expect(third.term.text()).toBe('');
    expect((await admin(third.broker, token)).status).toBe(200);
    await stop(third.broker);
  });

  it('WRIT_ADMIN_TOKEN overrides the stored hash: the generated token no longer works', async () => {
    const override = 'an-operator-chosen-admin-token';
    const b = await start({ ...config, adminToken: override });
    expect(b.term.text()).toBe('');
    expect((await admin(b.broker, override)).status).toBe(200);
    expect((await admin(b.broker, token)).status).toBe(401);
    await stop(b.broker);
  });
});

describe('the start-up summary', () => {
  it('is written after listening only when the terminal is a TTY', async () => {
    const store = await freshStore();
    const config = testConfig(store);
    const tty = await start(config, true);
    const text = tty.term.text();
    expect(text).toContain(`  API:     ${tty.broker.apiUrl}\n`);
    expect(text).toContain(`  bundle:  ${tty.broker.apiUrl}/v1/bundle\n`);
    expect(text).toContain(`  ops:     ${tty.broker.opsUrl}/readyz`);
    expect(text).toContain('no policy: every exchange is denied');
    expect(text).toContain('identity providers: none: every exchange is refused');
    expect(text).toContain(`admin token: in ${tokenPath(config)} until its first use`);
    expect(text).toContain('"Connect a workload"');
    expect(text).not.toContain(tty.shown[0]!.token);
    await stop(tty.broker);

    const notTty = await start(config, false);
    expect(notTty.term.text()).not.toContain('writ is running');
    await stop(notTty.broker);
  });
});
