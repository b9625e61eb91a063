/**
 * The token vault's providers from the configuration (WRIT_VAULT_PROVIDERS / vault_providers): the
 * secret named by a file, read at start and sealed; registered once, brought up to date at the
 * next start, and a start that cannot read the file stops naming the setting.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type Broker } from '../../src/broker';
import { ConfigError } from '../../src/config/errors';
import { testConfig } from '../support/config';
import { createTestStore, type TestStore } from '../support/database';

let store: TestStore;
let broker: Broker | undefined;
const SECRET = 'the notes client secret';
const providers = (scopes: string[], file = 'notes.secret') => JSON.stringify([{ id: 'notes', issuer: 'https://auth.notes.example', client_id: 'writ', client_secret_file: join(store.dir, file), scopes, revoke_on: ['account'] }]);

beforeAll(async () => {
  store = await createTestStore();
  writeFileSync(join(store.dir, 'notes.secret'), `${SECRET}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

it('registers the configured provider with its secret sealed, updates it at the next start, and refuses a start without its file', async () => {
  broker = await startBroker(testConfig(store, { WRIT_VAULT_PROVIDERS: providers(['notes:read']) }));
  const row = await broker.db.prisma.downstreamProvider.findUniqueOrThrow({ where: { id: 'notes' } });
  expect([row.createdBy, row.scopes, row.revokeOn]).toEqual(['config', ['notes:read'], ['account']]);
  expect(Buffer.from(row.secretCiphertext).includes(Buffer.from(SECRET))).toBe(false);
  // The secrets key of WRIT_CA_DIR (no KEK here) is 0600, and holds no secret in clear either.
  expect(readFileSync(join(store.dir, 'certs', 'secrets.key'), 'utf8')).not.toContain(SECRET);
  await broker.shutdown();
  broker = undefined;

  broker = await startBroker(testConfig(store, { WRIT_VAULT_PROVIDERS: providers(['notes:read', 'notes:write']) }));
  expect((await broker.db.prisma.downstreamProvider.findUniqueOrThrow({ where: { id: 'notes' } })).scopes).toEqual(['notes:read', 'notes:write']);
  const events = await broker.db.prisma.auditEvent.findMany({ where: { type: { startsWith: 'provider.' } }, orderBy: { seq: 'asc' } });
  expect(events.map((e) => [e.type, e.actor])).toEqual([['provider.created', 'config'], ['provider.updated', 'config']]);
  await broker.shutdown();
  broker = undefined;

  // Unchanged: nothing written.
  broker = await startBroker(testConfig(store, { WRIT_VAULT_PROVIDERS: providers(['notes:read', 'notes:write']) }));
  expect(await broker.db.prisma.auditEvent.count({ where: { type: { startsWith: 'provider.' } } })).toBe(2);
  await broker.shutdown();
  broker = undefined;

  rmSync(join(store.dir, 'missing.secret'), { force: true });
  await expect(startBroker(testConfig(store, { WRIT_VAULT_PROVIDERS: providers(['notes:read'], 'missing.secret') }))).rejects.toEqual(expect.objectContaining({ constructor: ConfigError, setting: 'vault_providers', message: expect.stringContaining('notes: cannot read') }));
});

it('refuses a secret given inline, or a provider named twice, naming the setting', () => {
  const refusal = (value: unknown): ConfigError => {
    try {
      testConfig(store, { WRIT_VAULT_PROVIDERS: JSON.stringify(value) });
    } catch (err) {
      return err as ConfigError;
    }
    throw new Error('accepted');
  };
  expect(refusal([{ id: 'n', issuer: 'https://a.example', client_id: 'w', client_secret: 'inline', scopes: ['s'] }])).toMatchObject({ setting: expect.stringMatching(/^WRIT_VAULT_PROVIDERS/), message: expect.stringContaining('client_secret') });
  const one = { id: 'n', issuer: 'https://a.example', client_id: 'w', client_secret_file: '/x', scopes: ['s'] };
  expect(refusal([one, one])).toMatchObject({ setting: 'WRIT_VAULT_PROVIDERS', message: 'each provider id once' });
});
