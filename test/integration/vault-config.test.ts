/**
 * The token vault's providers from the configuration (WRIT_VAULT_PROVIDERS / vault_providers): the
 * secret named by a file, read at start and sealed; registered once, brought up to date at the
 * next start, and a start that cannot read the file stops naming the setting. What the vault
 * sealed is sealed again when a deployment moves to a KEK and when the KEK is rotated, so the
 * old key can be destroyed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readKek } from '../../src/ca/kek';
import { loadOrCreateSecretsKey, SecretSealer } from '../../src/ca/secrets';
import { systemRandom } from '../../src/core/random';
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

it('seals the vault\'s secrets again under a KEK when a deployment moves to one, and under the new KEK when it is rotated', async () => {
  const kek = (name: string) => {
    const path = join(store.dir, `${name}.kek`);
    writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    return path;
  };
  // A database of its own: its CA moves into the database with the KEK.
  const own = await createTestStore();
  const caDir = join(own.dir, 'certs');
  const config = (env: Record<string, string>) => testConfig(own, { WRIT_VAULT_PROVIDERS: providers(['notes:read']), ...env });
  // Without a KEK: the provider's secret, and a user's grant, sealed under WRIT_CA_DIR's secrets key.
  broker = await startBroker(config({}));
  const filesKey = loadOrCreateSecretsKey(caDir, systemRandom);
  const grantId = randomUUID();
  const refreshToken = `rt-${randomBytes(16).toString('hex')}`;
  const sealedGrant = new SecretSealer([filesKey], systemRandom).seal(`grant:${grantId}:refresh_token`, Buffer.from(refreshToken));
  await broker.db.prisma.downstreamGrant.create({ data: { id: grantId, providerId: 'notes', subjectIssuer: 'https://idp.example', subject: 'alice', scopes: ['notes:read'], tokenKekId: sealedGrant.kekId, tokenNonce: Uint8Array.from(sealedGrant.nonce), tokenCiphertext: Uint8Array.from(sealedGrant.ciphertext), createdAt: new Date() } });
  expect((await broker.db.prisma.downstreamProvider.findUniqueOrThrow({ where: { id: 'notes' } })).secretKekId).toBe(filesKey.id);
  await broker.shutdown();
  broker = undefined;

  const kekIds = async () => {
    const provider = await broker!.db.prisma.downstreamProvider.findUniqueOrThrow({ where: { id: 'notes' } });
    const grant = await broker!.db.prisma.downstreamGrant.findUniqueOrThrow({ where: { id: grantId } });
    return { provider, grant, ids: [provider.secretKekId, grant.tokenKekId] };
  };
  const opensWith = async (path: string) => {
    const only = new SecretSealer([readKek(path, 'WRIT_KEK_FILE').kek], systemRandom);
    const { provider, grant } = await kekIds();
    return [
      only.open('provider:notes:client_credential', { kekId: provider.secretKekId, nonce: provider.secretNonce, ciphertext: provider.secretCiphertext }).toString(),
      only.open(`grant:${grantId}:refresh_token`, { kekId: grant.tokenKekId, nonce: grant.tokenNonce, ciphertext: grant.tokenCiphertext }).toString(),
    ];
  };
  const resealed = () => broker!.db.prisma.auditEvent.findMany({ where: { type: 'vault.resealed' }, orderBy: { seq: 'asc' } });

  // The first start with a KEK (WRIT_CA_DIR still mounted): sealed again under the KEK.
  const one = kek('one');
  broker = await startBroker(config({ WRIT_KEK_FILE: one }));
  const first = readKek(one, 'WRIT_KEK_FILE').kek.id;
  expect((await kekIds()).ids).toEqual([first, first]);
  expect(await opensWith(one)).toEqual([SECRET, refreshToken]);
  expect((await resealed()).map((e) => e.details)).toEqual([{ kek: first, providers: 1, grants: 1, releases: 0 }]);
  await broker.shutdown();
  broker = undefined;

  // KEK rotation: the new KEK, and the one it replaces.
  const two = kek('two');
  broker = await startBroker(config({ WRIT_KEK_FILE: two, WRIT_KEK_PREVIOUS_FILE: one }));
  const second = readKek(two, 'WRIT_KEK_FILE').kek.id;
  expect((await kekIds()).ids).toEqual([second, second]);
  expect(await resealed()).toHaveLength(2);
  await broker.shutdown();
  broker = undefined;

  // The old KEK and the secrets key destroyed: everything opens under the new KEK alone, and nothing is sealed again.
  rmSync(join(caDir, 'secrets.key'));
  broker = await startBroker(config({ WRIT_KEK_FILE: two }));
  expect(await opensWith(two)).toEqual([SECRET, refreshToken]);
  expect(() => new SecretSealer([readKek(one, 'WRIT_KEK_FILE').kek], systemRandom).open('provider:notes:client_credential', { kekId: second, nonce: Uint8Array.of(), ciphertext: Uint8Array.of() })).toThrow(/sealed under/);
  expect(await resealed()).toHaveLength(2);
  await broker.shutdown();
  broker = undefined;
  await own.drop();
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
