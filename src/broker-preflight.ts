import { createServer, type Server } from 'node:net';
import { Client } from 'pg';
import { OidcAttestor, X509PopAttestor, type Attestor } from './attestation';
import { ConfigError, type Config } from './config';
import { describeConnectError } from './db';
import type { Clock } from './core';
import { PolicyEngine, withPolicyFile } from './policy';
import { SetReceiver } from './signals';
import { IdentityProviders } from './tokens';

/** What start-up checked and built from the configuration before it changed anything. */
export interface Preflight {
  /** The oidc and x509pop attestors the configuration enables (or those given). */
  readonly attestors: readonly Attestor[];
  readonly identityProviders: IdentityProviders;
  readonly signalReceiver: SetReceiver;
  /** WRIT_POLICY_FILE, parsed and validated against the schema: its path and the ids of its policies. */
  readonly policyFile: { readonly path: string; readonly policyIds: readonly string[] } | undefined;
}

/** Builds something from configuration now, so that a bad file stops start-up naming the setting. */
function configured<T>(setting: string, build: () => T): T {
  try {
    return build();
  } catch (err) {
    throw err instanceof ConfigError ? err : new ConfigError(setting, (err as Error).message, err);
  }
}

/** WRIT_POLICY_FILE read, parsed and validated by Cedar against the Writ schema (strict), as seeding it will. */
export function checkPolicyFile(path: string): Promise<{ path: string; policyIds: readonly string[] }> {
  return withPolicyFile(path, (text) => ({ path, policyIds: PolicyEngine.create(text, 'file').policyIds }));
}

const bind = (port: number, host: string, setting: string): Promise<Server> =>
  new Promise((resolve, reject) => {
    // A probe only: a client that connects in the moment it listens (a readiness probe, say) is
    // cut off at once and tries again, rather than held open and keeping close() from finishing.
    const server = createServer((socket) => socket.destroy());
    server.once('error', (e: NodeJS.ErrnoException) => reject(new ConfigError(setting, `cannot listen on ${host}:${port}: ${e.code}`)));
    server.listen(port, host, () => resolve(server));
  });

const release = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * Binds the API and ops listeners' addresses together (so that one port given to both is
 * refused) and releases them: a port that is taken, or a host that is not this machine's,
 * stops start-up with the message `listen` gives, before anything is created.
 */
export async function checkListeners(config: Pick<Config, 'host' | 'port' | 'opsHost' | 'opsPort'>): Promise<void> {
  const api = await bind(config.port, config.host, 'WRIT_PORT');
  try {
    await release(await bind(config.opsPort, config.opsHost, 'WRIT_OPS_PORT'));
  } finally {
    await release(api);
  }
}

/**
 * DATABASE_URL answers: one connection and `SELECT 1`, within 10 s, before the CA files are
 * made — a wrong URL, a server that is down or a database that does not exist is one line now,
 * not a CA directory and then a failure. (The password, if any, is never in the message.)
 */
export async function checkDatabase(url: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new ConfigError('DATABASE_URL', describeConnectError(url, err), err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Every check of the configuration that start-up can make without changing anything: the
 * policy file, the identity providers', signal transmitters' and OIDC issuers' JWKS files,
 * the x509pop CA files, the listeners' ports and DATABASE_URL. It runs before the CA, the database and
 * the admin token are created, so a mistake on a first start leaves nothing behind.
 */
export async function preflight(config: Config, deps: { clock: Clock; attestors?: readonly Attestor[]; checkPorts?: boolean }): Promise<Preflight> {
  const { clock } = deps;
  const policyFile = config.policyFile ? await checkPolicyFile(config.policyFile) : undefined;
  const identityProviders = configured('identity_providers', () => new IdentityProviders(config.identityProviders, { clock }));
  const signalReceiver = configured('signal_transmitters', () => new SetReceiver(config.signalTransmitters, { clock }));
  // Webhooks are always signed; approvers sign in at a provider Writ trusts.
  if (config.approvalWebhookUrl !== undefined && config.approvalWebhookSecret === undefined) throw new ConfigError('approval_webhook_secret', 'WRIT_APPROVAL_WEBHOOK_URL needs WRIT_APPROVAL_WEBHOOK_SECRET: webhooks are always signed');
  if (config.approvalIssuer !== undefined && !config.identityProviders.some((p) => p.issuer === config.approvalIssuer))
    throw new ConfigError('approval_issuer', `${config.approvalIssuer} is not one of the identity providers (WRIT_IDENTITY_PROVIDERS)`);
  // A person's sign-in token is never one a connector could hold: the admin audience is not the subject tokens'.
  if (config.adminAudience !== undefined) {
    if (config.identityProviders.length === 0) throw new ConfigError('admin_audience', 'people sign in with a token of one of the identity providers (WRIT_IDENTITY_PROVIDERS), and none is configured');
    const same = config.identityProviders.find((p) => p.audience === config.adminAudience);
    if (same) throw new ConfigError('admin_audience', `${config.adminAudience} is the audience of ${same.issuer}'s subject tokens: a connector holding a user's ID token could sign in as them; give Writ a second client at the provider`);
  }
  for (const [i, b] of config.adminRoles.entries())
    if (!config.identityProviders.some((p) => p.issuer === b.issuer)) throw new ConfigError('admin_roles', `[${i}]: ${b.issuer} is not one of the identity providers (WRIT_IDENTITY_PROVIDERS)`);
  const attestors = deps.attestors ?? [
    ...(config.oidcIssuers.length > 0 ? [configured('oidc_issuers', () => new OidcAttestor(config.oidcIssuers, { clock }))] : []),
    ...(config.x509pop ? [configured('x509pop', () => new X509PopAttestor(config.x509pop!, { clock }))] : []),
  ];
  // A cluster worker after the first shares ports its primary already holds: a probe listener
  // there would be handed connections by the primary and keep them, so only the first checks.
  if (deps.checkPorts !== false) await checkListeners(config);
  if (config.databaseUrl) await checkDatabase(config.databaseUrl);
  return { attestors, identityProviders, signalReceiver, policyFile };
}
