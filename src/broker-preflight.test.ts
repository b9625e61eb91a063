import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkListeners, checkPolicyFile, preflight } from './broker-preflight';
import { ConfigError, loadConfig } from './config';
import { ManualClock } from './core/clock';

const dir = mkdtempSync(join(tmpdir(), 'writ-preflight-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const clock = new ManualClock(Date.now());

/** The ConfigError `run` throws, as "setting: reason". */
async function failure(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return `${(err as ConfigError).setting}: ${(err as ConfigError).message}`;
  }
  throw new Error('expected a ConfigError');
}

const listening = async (): Promise<{ server: Server; port: number }> => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
};
const close = (s: Server) => new Promise((r) => s.close(r));

describe('checkPolicyFile', () => {
  it('counts the policies of a valid file', async () => {
    const path = file('ok.cedar', '@id("a") permit(principal, action, resource);\n@id("b") forbid(principal, action, resource) when { context.chain_depth > 5 };\n');
    expect(await checkPolicyFile(path)).toEqual({ path, policyIds: ['a', 'b'] });
  });

  it('refuses a file Cedar cannot parse or that the schema refuses, and one it cannot read', async () => {
    const bad = file('bad.cedar', 'permit(principal, action, resource) when { principal.nonsense };\n');
    expect(await failure(() => checkPolicyFile(bad))).toMatch(/^WRIT_POLICY_FILE: .*bad\.cedar is not a valid policy set: /);
    expect(await failure(() => checkPolicyFile(file('garbage.cedar', 'allow everything')))).toMatch(/^WRIT_POLICY_FILE: .*garbage\.cedar is not a valid policy set: /);
    expect(await failure(() => checkPolicyFile(join(dir, 'missing.cedar')))).toBe(`WRIT_POLICY_FILE: cannot read ${join(dir, 'missing.cedar')}: ENOENT`);
  });
});

describe('checkListeners', () => {
  it('binds and releases both ports', async () => {
    const { server, port } = await listening();
    await close(server);
    await checkListeners({ host: '127.0.0.1', port, opsHost: '127.0.0.1', opsPort: 0 });
    const again = createServer();
    await new Promise<void>((r) => again.listen(port, '127.0.0.1', r)); // released
    await close(again);
  });

  it('names the setting whose port is taken, or given to both', async () => {
    const { server, port } = await listening();
    try {
      expect(await failure(() => checkListeners({ host: '127.0.0.1', port, opsHost: '127.0.0.1', opsPort: 0 }))).toBe(`WRIT_PORT: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      expect(await failure(() => checkListeners({ host: '127.0.0.1', port: 0, opsHost: '127.0.0.1', opsPort: port }))).toBe(`WRIT_OPS_PORT: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      await close(server);
    }
    expect(await failure(() => checkListeners({ host: '127.0.0.1', port, opsHost: '127.0.0.1', opsPort: port }))).toBe(`WRIT_OPS_PORT: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
  });
});

describe('preflight', () => {
  const env = { WRIT_PORT: '0', WRIT_OPS_PORT: '0' };

  it('names the structured setting whose JWKS or CA file is unusable', async () => {
    const jwks = file('jwks.json', 'not json');
    const provider = (jwks_file: string) => JSON.stringify([{ issuer: 'https://t.test', jwks_file, audience: 'writ' }]);
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_IDENTITY_PROVIDERS: provider(jwks) }), { clock }))).toMatch(/^identity_providers: .*jwks\.json/);
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_SIGNAL_TRANSMITTERS: provider(jwks) }), { clock }))).toMatch(/^signal_transmitters: .*jwks\.json/);
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_OIDC_ISSUERS: provider(jwks) }), { clock }))).toMatch(/jwks\.json/);
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_X509POP: JSON.stringify({ ca_bundle_file: join(dir, 'nope.pem') }) }), { clock }))).toMatch(/^x509pop.*ca_bundle_file/);
  });

  it('refuses an unsigned webhook, and approvers at an identity provider Writ does not trust', async () => {
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_APPROVAL_WEBHOOK_URL: 'https://hooks.example.com/writ' }), { clock }))).toBe(
      'approval_webhook_secret: WRIT_APPROVAL_WEBHOOK_URL needs WRIT_APPROVAL_WEBHOOK_SECRET: webhooks are always signed',
    );
    expect(await failure(() => preflight(loadConfig({ ...env, WRIT_APPROVAL_ISSUER: 'https://idp.example.com' }), { clock }))).toBe('approval_issuer: https://idp.example.com is not one of the identity providers (WRIT_IDENTITY_PROVIDERS)');
    expect(() => loadConfig({ ...env, WRIT_APPROVAL_WEBHOOK_SECRET: 'short' })).toThrow(/at least 32 characters/);
  });

  it('builds what the configuration enables, and nothing when it enables nothing', async () => {
    const checked = await preflight(loadConfig(env), { clock });
    expect(checked.attestors).toEqual([]);
    expect(checked.policyFile).toBeUndefined();
    expect(checked.signalReceiver.issuers).toEqual([]);
  });
});
