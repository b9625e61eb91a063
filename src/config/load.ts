import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isDnsName } from '../core/dns';
import { parseDuration } from '../core/duration';
import { trustDomainProblem } from '../spiffe/id';
import { oidcIssuersSchema, type OidcIssuerConfig } from '../attestation/oidc';
import { x509popConfigSchema, type X509PopConfig } from '../attestation/x509pop';
import { identityProvidersSchema, type IdentityProviderConfig } from '../tokens/subject-token';
import { adminRoleBindingsSchema, type AdminRoleBindingConfig } from '../admin/roles';
import { configuredProvidersSchema, type ConfiguredProvider } from '../vault/providers';
import { signalTransmittersSchema, type SignalTransmitterConfig } from '../signals/set';
import { ProxyTrust, type TrustedProxies } from '../tokens/client-cert';
import { ConfigError } from './errors';

/** Writ's configuration: validated once at start-up, then passed down. */
export interface Config {
  /** HTTPS API listener. */
  readonly host: string;
  readonly port: number;
  /** Plain HTTP listener for /healthz, /readyz and /metrics. */
  readonly opsHost: string;
  readonly opsPort: number;
  readonly trustDomain: string;
  /** postgresql:// URL; undefined selects the embedded database in dataDir. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly caDir: string;
  /**
   * Lets this start replace the CA (and JWT key) that the bundle in the database names
   * with the ones in caDir. Without it Writ refuses, so replicas never sign with different CAs.
   */
  readonly caReplace: boolean;
  /**
   * A file holding the key-encryption key (32 random bytes, base64). When set, authority
   * private keys live in the database sealed under it (AES-256-GCM), so replicas share them.
   */
  readonly kekFile: string | undefined;
  /** The KEK that `kekFile` replaces: rows sealed under it are re-sealed under the new one at start-up. */
  readonly kekPreviousFile: string | undefined;
  /** Bootstrap admin bearer credential; undefined lets Writ generate one on first start. */
  readonly adminToken: string | undefined;
  readonly serverDnsNames: readonly string[];
  /** Validity of a CA that Writ generates, in seconds. */
  readonly caTtl: number;
  /** Seconds between publishing a rotated CA in the bundle and signing with it. */
  readonly caRotationOverlap: number;
  /** Longest X.509-SVID lifetime Writ issues, in seconds. */
  readonly x509SvidMaxTtl: number;
  /** Longest JWT-SVID lifetime Writ issues, in seconds. */
  readonly jwtSvidMaxTtl: number;
  /** spiffe_refresh_hint of the trust bundle, in seconds. */
  readonly bundleRefreshHint: number;
  /** How long SIGTERM waits for in-flight requests before closing connections, in seconds. */
  readonly shutdownGrace: number;
  /** Broker processes sharing the listeners (node:cluster); 1 runs the broker in this process. */
  readonly workers: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `json` (one JSON line per event, the default) or `pretty` (pino-pretty, for local use). */
  readonly logFormat: 'json' | 'pretty';
  /** A Cedar policy file loaded as a new policy version at start-up when it changed. */
  readonly policyFile: string | undefined;
  /** Writ's issuer identifier (RFC 8414): `iss` of access tokens; by default https://<first DNS name>:<port>. */
  readonly issuer: string;
  /** Access token lifetime when a client asks for none, and the longest, in seconds. */
  readonly accessTokenTtl: number;
  readonly accessTokenMaxTtl: number;
  /** Most hops a tool chain may take (token exchange of a Writ token). */
  readonly maxChainDepth: number;
  /** Shared Signals transmitters whose Security Event Tokens Writ acts on. */
  readonly signalTransmitters: readonly SignalTransmitterConfig[];
  /** Seconds an expired lease is kept before clean-up deletes it. */
  readonly leaseRetention: number;
  /**
   * The revocation bound in ms: a replica trusts its caches only while it heard from its change
   * feed within it, and answers inactive (introspection) or refuses (mTLS) when the database does
   * not answer within it.
   */
  readonly revocationBoundMs: number;
  /** Risk levels (CAEP risk-level-change) at which a user's live leases are revoked. */
  readonly riskRevokeLevels: readonly string[];
  /**
   * The audience of the tokens people sign in to Writ with (admin API, approvals, console): an
   * ID or access token of one of identityProviders issued for this audience, which must not be
   * the audience of subject tokens (a connector holding a user's subject token cannot act as
   * them here). Unset: people do not sign in (the bootstrap token and admin SVIDs only).
   */
  readonly adminAudience: string | undefined;
  /** Role bindings from the configuration (the API adds more): which groups or users of which provider hold which role. */
  readonly adminRoles: readonly AdminRoleBindingConfig[];
  /** Seconds a console session lasts at most (never past the ID token it began with). */
  readonly consoleSessionTtl: number;
  /** Seconds a console session may go unused before it ends. */
  readonly consoleIdleTimeout: number;
  /** `disabled` refuses the bootstrap admin token (once people or admin SVIDs hold roles). */
  readonly adminBootstrapToken: 'enabled' | 'disabled';
  /** Who approves tool actions a permit marks @approval("required") (unless it names @approvers): this group's users… */
  readonly approvalGroup: string;
  /** …at this identity provider (one of identityProviders); any of them when unset. */
  readonly approvalIssuer: string | undefined;
  /** Seconds an approval request waits for an approver before it expires. */
  readonly approvalTtl: number;
  /** Seconds an approval holds once given (never beyond the task's end). */
  readonly approvalValidity: number;
  /** Where approval requests and decisions are announced (a signed webhook); none when unset. */
  readonly approvalWebhookUrl: string | undefined;
  /** The webhook's signing secret (Standard Webhooks: `whsec_` and base64, or any text of 32+ characters). */
  readonly approvalWebhookSecret: string | undefined;
  /** User identity providers whose ID tokens may be subject tokens. */
  readonly identityProviders: readonly IdentityProviderConfig[];
  /** The token vault's providers from the configuration (their secrets in files), registered at start. */
  readonly vaultProviders: readonly ConfiguredProvider[];
  /** Proxies that terminate TLS in front of Writ and forward client certificates (RFC 9440 `Client-Cert`); none by default. */
  readonly trustedProxies: TrustedProxies;
  /** Trusted OIDC issuers for the oidc attestor; none disables it. */
  readonly oidcIssuers: readonly OidcIssuerConfig[];
  /** The enterprise CAs of the x509pop attestor; undefined disables it. */
  readonly x509pop: X509PopConfig | undefined;
}

/** Each setting: its environment name, its key in the config file, and its parser. */
interface Setting<T> {
  env: string;
  file: string;
  parse: (raw: string) => T;
  default?: T;
  /** A file path: from the config file, relative to that file. */
  path?: boolean;
}

const fail = (reason: string): never => {
  throw new Error(reason);
};

const port = (raw: string): number => {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  return n >= 0 && n <= 65535 ? n : fail(`must be a port number from 0 to 65535, got "${raw}"`);
};

const duration = (raw: string): number => {
  const s = parseDuration(raw);
  return s !== undefined && s > 0 ? s : fail(`must be a positive duration such as "300", "5m", "1h" or "365d", got "${raw}"`);
};

const nonEmpty = (raw: string): string => (raw.trim() === '' ? fail('must not be empty') : raw);

const trustDomain = (raw: string): string => {
  const problem = trustDomainProblem(raw);
  return problem ? fail(`"${raw}" is not a valid SPIFFE trust domain: ${problem}`) : raw;
};

const databaseUrl = (raw: string): string => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail('is not a URL (expected postgresql://user@host:port/database)');
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') return fail(`must be a postgresql:// URL, not ${url.protocol}//`);
  if (!url.hostname && !url.searchParams.get('host')) return fail('names no host');
  // Writ keeps its tables in the database's default schema; one database per deployment.
  if (url.searchParams.has('schema')) return fail('the "schema" parameter is not supported: give Writ a database of its own');
  return raw;
};

const dnsNames = (raw: string): string[] => {
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  if (names.length === 0) return fail('must name at least one DNS name');
  for (const name of names) {
    if (!isDnsName(name)) fail(`"${name}" is not a valid DNS name`);
  }
  return names;
};

const bool = (raw: string): boolean => {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  return fail(`must be true or false, got "${raw}"`);
};

/** Most worker processes WRIT_WORKERS may ask for. */
export const MAX_WORKERS = 64;

const workers = (raw: string): number => {
  const v = raw.trim().toLowerCase();
  if (v === 'auto') return Math.min(availableParallelism(), MAX_WORKERS);
  const n = /^\d{1,3}$/.test(v) ? Number(v) : NaN;
  return n >= 1 && n <= MAX_WORKERS ? n : fail(`must be a number of processes from 1 to ${MAX_WORKERS}, or "auto" (one per CPU), got "${raw}"`);
};

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const level = (raw: string): Config['logLevel'] => {
  const r = logLevel.safeParse(raw);
  return r.success ? r.data : fail(`must be one of ${logLevel.options.join(', ')}, got "${raw}"`);
};

const logFormat = (raw: string): Config['logFormat'] => {
  const v = raw.trim().toLowerCase();
  return v === 'json' || v === 'pretty' ? v : fail(`must be json or pretty, got "${raw}"`);
};

const SETTINGS = {
  host: { env: 'WRIT_HOST', file: 'host', parse: nonEmpty, default: '127.0.0.1' },
  port: { env: 'WRIT_PORT', file: 'port', parse: port, default: 8443 },
  opsHost: { env: 'WRIT_OPS_HOST', file: 'ops_host', parse: nonEmpty },
  opsPort: { env: 'WRIT_OPS_PORT', file: 'ops_port', parse: port, default: 9090 },
  trustDomain: { env: 'WRIT_TRUST_DOMAIN', file: 'trust_domain', parse: trustDomain, default: 'writ.local' },
  databaseUrl: { env: 'DATABASE_URL', file: 'database_url', parse: databaseUrl },
  dataDir: { env: 'WRIT_DATA_DIR', file: 'data_dir', parse: nonEmpty, default: './data' },
  caDir: { env: 'WRIT_CA_DIR', file: 'ca_dir', parse: nonEmpty, default: './certs' },
  caReplace: { env: 'WRIT_CA_REPLACE', file: 'ca_replace', parse: bool, default: false },
  kekFile: { env: 'WRIT_KEK_FILE', file: 'kek_file', parse: nonEmpty, path: true },
  kekPreviousFile: { env: 'WRIT_KEK_PREVIOUS_FILE', file: 'kek_previous_file', parse: nonEmpty, path: true },
  adminToken: { env: 'WRIT_ADMIN_TOKEN', file: 'admin_token', parse: (raw: string) => (raw.length >= 16 ? raw : fail('must be at least 16 characters long')) },
  serverDnsNames: { env: 'WRIT_SERVER_DNS_NAMES', file: 'server_dns_names', parse: dnsNames, default: ['localhost'] },
  caTtl: { env: 'WRIT_CA_TTL', file: 'ca_ttl', parse: duration, default: 365 * 86400 },
  caRotationOverlap: { env: 'WRIT_CA_ROTATION_OVERLAP', file: 'ca_rotation_overlap', parse: duration, default: 86400 },
  x509SvidMaxTtl: { env: 'WRIT_X509_SVID_MAX_TTL', file: 'x509_svid_max_ttl', parse: duration, default: 86400 },
  jwtSvidMaxTtl: { env: 'WRIT_JWT_SVID_MAX_TTL', file: 'jwt_svid_max_ttl', parse: duration, default: 3600 },
  bundleRefreshHint: { env: 'WRIT_BUNDLE_REFRESH_HINT', file: 'bundle_refresh_hint', parse: duration, default: 300 },
  shutdownGrace: { env: 'WRIT_SHUTDOWN_GRACE', file: 'shutdown_grace', parse: duration, default: 25 },
  workers: { env: 'WRIT_WORKERS', file: 'workers', parse: workers, default: 1 },
  logLevel: { env: 'WRIT_LOG_LEVEL', file: 'log_level', parse: level, default: 'info' },
  logFormat: { env: 'WRIT_LOG_FORMAT', file: 'log_format', parse: logFormat, default: 'json' },
  policyFile: { env: 'WRIT_POLICY_FILE', file: 'policy_file', parse: nonEmpty, path: true },
  issuer: { env: 'WRIT_ISSUER', file: 'issuer', parse: (raw: string) => (URL.canParse(raw) && new URL(raw).protocol === 'https:' && !new URL(raw).search && !new URL(raw).hash ? raw.replace(/\/$/, '') : fail('must be an https URL without query or fragment (RFC 8414 §2)')) },
  accessTokenTtl: { env: 'WRIT_ACCESS_TOKEN_TTL', file: 'access_token_ttl', parse: duration, default: 300 },
  accessTokenMaxTtl: { env: 'WRIT_ACCESS_TOKEN_MAX_TTL', file: 'access_token_max_ttl', parse: duration, default: 3600 },
  leaseRetention: { env: 'WRIT_LEASE_RETENTION', file: 'lease_retention', parse: duration, default: 7 * 86400 },
  revocationBoundMs: {
    env: 'WRIT_REVOCATION_BOUND_MS',
    file: 'revocation_bound_ms',
    parse: (raw: string) => (/^\d{2,6}$/.test(raw) && Number(raw) >= 50 && Number(raw) <= 60_000 ? Number(raw) : fail(`must be a whole number of milliseconds from 50 to 60000, got "${raw.slice(0, 32)}"`)),
    default: 1000,
  },
  riskRevokeLevels: { env: 'WRIT_RISK_REVOKE_LEVELS', file: 'risk_revoke_levels', parse: (raw: string) => raw.split(',').map((l) => l.trim().toUpperCase()).filter(Boolean), default: ['HIGH'] },
  adminAudience: { env: 'WRIT_ADMIN_AUDIENCE', file: 'admin_audience', parse: nonEmpty },
  adminBootstrapToken: { env: 'WRIT_ADMIN_BOOTSTRAP_TOKEN', file: 'admin_bootstrap_token', parse: (raw: string) => (raw === 'enabled' || raw === 'disabled' ? raw : fail(`must be "enabled" or "disabled", got "${raw.slice(0, 32)}"`)), default: 'enabled' as const },
  consoleSessionTtl: { env: 'WRIT_CONSOLE_SESSION_TTL', file: 'console_session_ttl', parse: duration, default: 8 * 3600 },
  consoleIdleTimeout: { env: 'WRIT_CONSOLE_IDLE_TIMEOUT', file: 'console_idle_timeout', parse: duration, default: 30 * 60 },
  approvalGroup: { env: 'WRIT_APPROVAL_GROUP', file: 'approval_group', parse: nonEmpty, default: 'approvers' },
  approvalIssuer: { env: 'WRIT_APPROVAL_ISSUER', file: 'approval_issuer', parse: nonEmpty },
  approvalTtl: { env: 'WRIT_APPROVAL_TTL', file: 'approval_ttl', parse: duration, default: 900 },
  approvalValidity: { env: 'WRIT_APPROVAL_VALIDITY', file: 'approval_validity', parse: duration, default: 600 },
  approvalWebhookUrl: { env: 'WRIT_APPROVAL_WEBHOOK_URL', file: 'approval_webhook_url', parse: (raw: string) => (URL.canParse(raw) && /^https?:$/.test(new URL(raw).protocol) ? raw : fail('must be an http(s) URL')) },
  approvalWebhookSecret: { env: 'WRIT_APPROVAL_WEBHOOK_SECRET', file: 'approval_webhook_secret', parse: (raw: string) => (raw.length >= 32 || /^whsec_[A-Za-z0-9+/=]{24,}$/.test(raw) ? raw : fail('must be at least 32 characters, or whsec_ and base64')) },
  maxChainDepth: { env: 'WRIT_MAX_CHAIN_DEPTH', file: 'max_chain_depth', parse: (raw: string) => (/^\d{1,2}$/.test(raw) ? Number(raw) : fail(`must be a whole number of hops, got "${raw}"`)), default: 2 },
} satisfies { [K in Exclude<keyof Config, 'oidcIssuers' | 'x509pop' | 'identityProviders' | 'signalTransmitters' | 'trustedProxies' | 'adminRoles' | 'vaultProviders'>]-?: Setting<unknown> };

/** `trusted_proxies`: `{spiffe_ids, addresses}` (RFC 9440 forwarding), each entry checked as `ProxyTrust` reads it. */
const trustedProxiesSchema = z
  .strictObject({ spiffe_ids: z.array(z.string()).max(64).optional(), addresses: z.array(z.string()).max(256).optional() })
  .transform((p, ctx): TrustedProxies => {
    const proxies = { ...(p.spiffe_ids && { spiffeIds: p.spiffe_ids }), ...(p.addresses && { addresses: p.addresses }) };
    try {
      new ProxyTrust(proxies);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
    return proxies;
  });

/**
 * Structured settings: a list or mapping in the config file, or JSON in the environment.
 * File paths inside them are taken relative to the config file.
 */
const STRUCTURED = {
  oidcIssuers: { env: 'WRIT_OIDC_ISSUERS', file: 'oidc_issuers', schema: oidcIssuersSchema, paths: ['jwksFile'], default: [] as OidcIssuerConfig[] },
  x509pop: { env: 'WRIT_X509POP', file: 'x509pop', schema: x509popConfigSchema, paths: ['ca_bundle_file', 'intermediates_file'], default: undefined },
  signalTransmitters: { env: 'WRIT_SIGNAL_TRANSMITTERS', file: 'signal_transmitters', schema: signalTransmittersSchema, paths: ['jwksFile'], default: [] as SignalTransmitterConfig[] },
  adminRoles: { env: 'WRIT_ADMIN_ROLES', file: 'admin_roles', schema: adminRoleBindingsSchema, paths: [], default: [] as AdminRoleBindingConfig[] },
  identityProviders: { env: 'WRIT_IDENTITY_PROVIDERS', file: 'identity_providers', schema: identityProvidersSchema, paths: ['jwksFile'], default: [] as IdentityProviderConfig[] },
  vaultProviders: { env: 'WRIT_VAULT_PROVIDERS', file: 'vault_providers', schema: configuredProvidersSchema, paths: ['clientSecretFile', 'privateKeyFile'], default: [] as ConfiguredProvider[] },
  trustedProxies: { env: 'WRIT_TRUSTED_PROXIES', file: 'trusted_proxies', schema: trustedProxiesSchema, paths: [], default: {} as TrustedProxies },
} as const;

/** Every environment variable Writ reads its settings from (WRIT_CONFIG names the optional file). */
export const CONFIG_ENV_NAMES: readonly string[] = ['WRIT_CONFIG', ...[...Object.values(SETTINGS), ...Object.values(STRUCTURED)].map((s) => s.env)];

/** The config file's keys, as documented in the README. */
export const CONFIG_FILE_KEYS: readonly string[] = [...Object.values(SETTINGS), ...Object.values(STRUCTURED)].map((s) => s.file);

function readStructured(env: NodeJS.ProcessEnv, file: Record<string, unknown>, out: Record<string, unknown>): void {
  const base = env.WRIT_CONFIG ? dirname(resolve(env.WRIT_CONFIG)) : process.cwd();
  for (const [key, setting] of Object.entries(STRUCTURED)) {
    const fromEnv = env[setting.env];
    let raw: unknown;
    let name: string;
    let dir: string;
    if (fromEnv !== undefined && fromEnv !== '') {
      name = setting.env;
      dir = process.cwd();
      try {
        raw = JSON.parse(fromEnv);
      } catch {
        throw new ConfigError(name, 'must be JSON');
      }
    } else if (file[setting.file] !== undefined) {
      name = `${setting.file} (in ${env.WRIT_CONFIG})`;
      dir = base;
      raw = file[setting.file];
    } else {
      out[key] = setting.default;
      continue;
    }
    const r = setting.schema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new ConfigError(issue.path.length ? `${name}: ${issue.path.join('.')}` : name, issue.message);
    }
    const absolute = (v: unknown) => (typeof v === 'string' && !isAbsolute(v) ? resolve(dir, v) : v);
    const withPaths = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, (setting.paths as readonly string[]).includes(k) ? absolute(v) : v]));
    const data = r.data as Record<string, unknown> | Record<string, unknown>[];
    out[key] = Array.isArray(data) ? data.map(withPaths) : withPaths(data);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WRIT_CONFIG', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError('WRIT_CONFIG', `${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('WRIT_CONFIG', `${path} must hold a mapping of settings`);
  const unknown = Object.keys(doc).filter((k) => !CONFIG_FILE_KEYS.includes(k));
  if (unknown.length > 0) throw new ConfigError('WRIT_CONFIG', `${path} has unknown setting "${unknown[0]}" (known: ${CONFIG_FILE_KEYS.join(', ')})`);
  return doc as Record<string, unknown>;
}

function fileValueToString(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value.map(String).join(',');
  if (typeof value === 'object') return undefined;
  return String(value);
}

/**
 * Reads the configuration from the environment and from the optional YAML or JSON file
 * named by WRIT_CONFIG; the environment wins. Throws ConfigError naming the setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env.WRIT_CONFIG ? readConfigFile(resolve(env.WRIT_CONFIG)) : {};
  const out: Record<string, unknown> = {};
  /** Where each setting given came from, as errors name it. */
  const names: Record<string, string> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const fromEnv = env[setting.env];
    const fromFile = fileValueToString(file[setting.file]);
    if (file[setting.file] !== undefined && fromFile === undefined && fromEnv === undefined) {
      throw new ConfigError(`${setting.file} (in ${env.WRIT_CONFIG})`, 'must be a string, a number or a list');
    }
    const raw = fromEnv !== undefined && fromEnv !== '' ? fromEnv : fromFile;
    if (raw === undefined) {
      out[key] = setting.default;
      continue;
    }
    const name = fromEnv !== undefined && fromEnv !== '' ? setting.env : `${setting.file} (in ${env.WRIT_CONFIG})`;
    names[key] = name;
    try {
      out[key] = setting.parse(raw);
    } catch (err) {
      throw new ConfigError(name, (err as Error).message);
    }
    if (setting.path && raw === fromFile && !isAbsolute(raw)) out[key] = resolve(dirname(resolve(env.WRIT_CONFIG!)), raw);
  }
  readStructured(env, file, out);
  out.opsHost ??= out.host;
  out.issuer ??= `https://${(out.serverDnsNames as string[])[0]}:${out.port}`;
  if ((out.workers as number) > 1 && !out.databaseUrl) {
    throw new ConfigError(
      names.workers ?? SETTINGS.workers.env,
      `${String(out.workers)} worker processes need DATABASE_URL: the embedded database (PGlite) runs inside one process and serves only it; set DATABASE_URL to a PostgreSQL database, or WRIT_WORKERS to 1`,
    );
  }
  if (out.kekPreviousFile && !out.kekFile) {
    throw new ConfigError(names.kekPreviousFile!, 'names the KEK being replaced, so it needs WRIT_KEK_FILE (the new KEK) too');
  }
  return Object.freeze(out) as unknown as Config;
}

/** Connection parameters that carry secrets (libpq and node-postgres names). */
const SECRET_PARAMS = ['password', 'sslpassword', 'sslkey'];

/** A DATABASE_URL with its password and secret parameters masked, safe to log. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const p of SECRET_PARAMS) if (u.searchParams.has(p)) u.searchParams.set(p, '***');
    return u.toString();
  } catch {
    return '<unparseable>';
  }
}
