/**
 * `writ dev`: the broker on the embedded database, with a local OpenID Provider for its
 * identity provider, a local SaaS ("Acme Notes", src/dev/saas.ts) registered as the token
 * vault's provider `notes`, a sample Cedar policy and a fixed admin token, everything kept in one
 * directory (./.writ-dev by default). Writ is configured against the provider exactly as
 * against a production one: its issuer under `identity_providers`, with `discovery: true` (the
 * broker reads `jwks_uri` from the provider's discovery document, OIDC Discovery §4). Never for production: refused when
 * NODE_ENV=production, and nothing else starts it.
 *
 * ```ts
 * const dev = await startDev({ dir: '.writ-dev', port: 8443, opsPort: 9090, opPort: 9400, saasPort: 9401, env: process.env });
 * console.log(dev.exports.WRIT_SERVER); await dev.close();
 * ```
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { startBroker, type Broker } from '../broker';
import { loadConfig } from '../config';
import { loadOrCreateKeys } from './keys';
import { DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID, freePort, startDevOp, type DevOp, type OidcProviderClass } from './op';
import { SAAS_SCOPES, SAAS_VAULT_CLIENT_ID, startDevSaas, type DevSaas } from './saas';
import { SAMPLE_POLICY, SAMPLE_USERS } from './samples';
import { readUsers } from './users';

/** `writ dev` was asked to run where it must not. */
export class DevRefused extends Error {}

/** Refuses production: `writ dev` trusts a password-less identity provider. */
export function refuseProduction(env: NodeJS.ProcessEnv): void {
  if ((env.NODE_ENV ?? '').trim().toLowerCase() === 'production') {
    throw new DevRefused('writ dev is for development only and refuses to start with NODE_ENV=production (its identity provider signs in anyone without a password); run writ serve');
  }
}

/** Settings of the environment `writ dev` passes to the broker; the rest (database, CA, admin token, identity providers, policy, config file) are its own. */
export const DEV_PASSED_SETTINGS = ['WRIT_HOST', 'WRIT_OPS_HOST', 'WRIT_TRUST_DOMAIN', 'WRIT_LOG_LEVEL', 'WRIT_ACCESS_TOKEN_TTL', 'WRIT_ACCESS_TOKEN_MAX_TTL'] as const;

export interface DevOptions {
  /** Where the database, the CA, the keys, the users and the policy are kept. */
  readonly dir: string;
  readonly port: number;
  readonly opsPort: number;
  readonly opPort: number;
  /** The dev SaaS's port (http, on localhost: another host than the provider's, so each keeps its own cookies). */
  readonly saasPort: number;
  readonly env: NodeJS.ProcessEnv;
  readonly logger?: Logger;
  readonly Provider?: OidcProviderClass;
}

/** What to export in a shell to use the dev broker. */
export interface DevExports {
  readonly WRIT_SERVER: string;
  readonly WRIT_CA: string;
  readonly WRIT_ADMIN_TOKEN: string;
  readonly WRIT_DEV_OP: string;
  readonly WRIT_DEV_SAAS: string;
}

export interface Dev {
  readonly broker: Broker;
  readonly op: DevOp;
  readonly saas: DevSaas;
  readonly exports: DevExports;
  readonly files: { readonly users: string; readonly policy: string; readonly adminToken: string; readonly saasClientSecret: string };
  close(): Promise<void>;
}

/** Writes `text` to `path` unless the file exists (the user may have edited it). */
function ensureFile(path: string, text: string, mode = 0o644): void {
  if (!existsSync(path)) writeFileSync(path, text, { mode, flag: 'wx' });
}

/** The admin token kept in the dev directory (mode 0600), made on first start. */
function adminToken(path: string): string {
  ensureFile(path, `writ_dev_${randomBytes(24).toString('base64url')}\n`, 0o600);
  return readFileSync(path, 'utf8').trim();
}

/** Starts the provider and the SaaS, then the broker configured against them. */
export async function startDev(options: DevOptions): Promise<Dev> {
  refuseProduction(options.env);
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = { users: join(dir, 'users.yaml'), policy: join(dir, 'policy.cedar'), adminToken: join(dir, 'admin-token'), saasClientSecret: join(dir, 'saas-client-secret') };
  ensureFile(files.users, SAMPLE_USERS);
  ensureFile(files.policy, SAMPLE_POLICY);
  const users = readUsers(files.users);
  const port = options.port === 0 ? await freePort() : options.port;
  const issuer = `https://localhost:${port}`;
  const keys = await loadOrCreateKeys(join(dir, 'op-keys.json'));
  const host = options.env.WRIT_DEV_OP_HOST ?? '127.0.0.1';
  const provider = options.Provider ? { Provider: options.Provider } : {};
  const op = await startDevOp({ host, port: options.opPort, users, keys, consoleRedirectUris: [`${issuer}/console/callback`], ...provider });
  let saas: DevSaas | undefined;
  try {
    // The SaaS knows Writ's vault as its OAuth client by this secret; Writ reads it from the file and seals it.
    ensureFile(files.saasClientSecret, `${randomBytes(24).toString('base64url')}\n`, 0o600);
    const clientSecret = readFileSync(files.saasClientSecret, 'utf8').trim();
    saas = await startDevSaas({ host: 'localhost', port: options.saasPort, users, keys: await loadOrCreateKeys(join(dir, 'saas-keys.json')), clientSecret, redirectUris: [`${issuer}/v1/vault/callback`], ...provider });
    const token = adminToken(files.adminToken);
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(DEV_PASSED_SETTINGS.filter((k) => options.env[k] !== undefined).map((k) => [k, options.env[k]])),
      WRIT_PORT: String(port),
      WRIT_OPS_PORT: String(options.opsPort),
      WRIT_DATA_DIR: join(dir, 'data'),
      WRIT_CA_DIR: join(dir, 'certs'),
      WRIT_POLICY_FILE: files.policy,
      WRIT_ADMIN_TOKEN: token,
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: op.issuer, discovery: true, audience: DEV_CLIENT_ID, algorithms: ['ES256'] }]),
      // People sign in to Writ itself with the provider's second client (writ login --dev, approvals).
      WRIT_ADMIN_AUDIENCE: DEV_CONSOLE_CLIENT_ID,
      WRIT_VAULT_PROVIDERS: JSON.stringify([{ id: 'notes', issuer: saas.issuer, client_id: SAAS_VAULT_CLIENT_ID, client_secret_file: files.saasClientSecret, scopes: SAAS_SCOPES, resource: saas.api }]),
    };
    const config = loadConfig(env);
    const broker = await startBroker(config, options.logger ? { logger: options.logger } : {});
    const running = saas;
    return {
      broker,
      op,
      saas: running,
      files,
      exports: { WRIT_SERVER: issuer, WRIT_CA: join(config.caDir, 'ca.crt'), WRIT_ADMIN_TOKEN: token, WRIT_DEV_OP: op.issuer, WRIT_DEV_SAAS: running.issuer },
      close: async () => {
        await broker.shutdown();
        await running.close();
        await op.close();
      },
    };
  } catch (err) {
    await saas?.close();
    await op.close();
    throw err;
  }
}

const shellQuote = (s: string): string => (/^[A-Za-z0-9_./:@=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** What `writ dev` prints once it is up: where things are, what to export, what to try next. */
export function banner(dev: Pick<Dev, 'exports' | 'files'>, users: readonly string[], writ = 'writ'): string {
  const e = dev.exports;
  return [
    `writ dev: broker ${e.WRIT_SERVER}, OpenID Provider ${e.WRIT_DEV_OP} (users ${users.join(', ')} from ${dev.files.users}; policy ${dev.files.policy})`,
    `writ dev: SaaS "Acme Notes" ${e.WRIT_DEV_SAAS} (API ${e.WRIT_DEV_SAAS}/api/notes), the token vault's provider "notes" (${SAAS_SCOPES.join(', ')})`,
    'writ dev: in another shell:',
    `export WRIT_SERVER=${shellQuote(e.WRIT_SERVER)} WRIT_CA=${shellQuote(e.WRIT_CA)} WRIT_ADMIN_TOKEN=${shellQuote(e.WRIT_ADMIN_TOKEN)} WRIT_DEV_OP=${shellQuote(e.WRIT_DEV_OP)} WRIT_DEV_SAAS=${shellQuote(e.WRIT_DEV_SAAS)}`,
    `ID_TOKEN=$(${writ} dev id-token alice)   # in a checkout: node dist/cli/main.js; then the README's "Exchange a task token" (scripts/exchange-task.sh)`,
    '',
  ].join('\n');
}
