import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, redactDatabaseUrl } from '.';

const dir = mkdtempSync(join(tmpdir(), 'writ-config-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** The error loadConfig throws for `env`, as "setting: reason". */
const failure = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return `${(err as ConfigError).setting}: ${(err as ConfigError).message}`;
  }
  throw new Error('expected a ConfigError');
};

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 8443,
      opsHost: '127.0.0.1',
      opsPort: 9090,
      trustDomain: 'writ.local',
      databaseUrl: undefined,
      dataDir: './data',
      caDir: './certs',
      adminToken: undefined,
      serverDnsNames: ['localhost'],
      caReplace: false,
      workers: 1,
    });
  });

  it('reads every documented environment variable', () => {
    const c = loadConfig({
      WRIT_HOST: '0.0.0.0',
      WRIT_PORT: '443',
      WRIT_OPS_PORT: '9100',
      WRIT_TRUST_DOMAIN: 'prod.example.com',
      DATABASE_URL: 'postgresql://writ:s3cret@db:5432/writ',
      WRIT_DATA_DIR: '/var/lib/writ',
      WRIT_CA_DIR: '/etc/writ/ca',
      WRIT_ADMIN_TOKEN: 'a-long-enough-admin-token',
      WRIT_SERVER_DNS_NAMES: 'writ.example.com, writ.svc.cluster.local',
    });
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 443,
      opsPort: 9100,
      trustDomain: 'prod.example.com',
      databaseUrl: 'postgresql://writ:s3cret@db:5432/writ',
      dataDir: '/var/lib/writ',
      caDir: '/etc/writ/ca',
      adminToken: 'a-long-enough-admin-token',
      serverDnsNames: ['writ.example.com', 'writ.svc.cluster.local'],
    });
  });

  it('reads a YAML file named by WRIT_CONFIG, and the environment wins', () => {
    const path = file('writ.yaml', 'trust_domain: from-file.example\nport: 9443\nserver_dns_names:\n  - a.example\n  - b.example\n');
    const c = loadConfig({ WRIT_CONFIG: path, WRIT_PORT: '10443' });
    expect(c.trustDomain).toBe('from-file.example');
    expect(c.port).toBe(10443);
    expect(c.serverDnsNames).toEqual(['a.example', 'b.example']);
  });

  it('reads a JSON file', () => {
    const c = loadConfig({ WRIT_CONFIG: file('writ.json', JSON.stringify({ ops_port: 9200, ca_ttl: '30d' })) });
    expect(c.opsPort).toBe(9200);
    expect(c.caTtl).toBe(30 * 86400);
  });

  it.each([
    [{ WRIT_TRUST_DOMAIN: 'Bad_Domain' }, 'WRIT_TRUST_DOMAIN: "Bad_Domain" is not a valid SPIFFE trust domain'],
    [{ WRIT_TRUST_DOMAIN: 'spiffe://writ.local' }, 'WRIT_TRUST_DOMAIN: "spiffe://writ.local" is not a valid SPIFFE trust domain: trust domain must not contain a scheme or a port'],
    [{ WRIT_TRUST_DOMAIN: 'writ.local:8443' }, 'WRIT_TRUST_DOMAIN: "writ.local:8443" is not a valid SPIFFE trust domain'],
    [{ WRIT_PORT: 'https' }, 'WRIT_PORT: must be a port number from 0 to 65535, got "https"'],
    [{ WRIT_PORT: '70000' }, 'WRIT_PORT: must be a port number'],
    [{ WRIT_PORT: '-1' }, 'WRIT_PORT: must be a port number'],
    [{ WRIT_OPS_PORT: '9090.5' }, 'WRIT_OPS_PORT: must be a port number'],
    [{ DATABASE_URL: 'mysql://root@localhost/writ' }, 'DATABASE_URL: must be a postgresql:// URL'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL: is not a URL'],
    [{ WRIT_SERVER_DNS_NAMES: 'ok.example,bad_name!' }, 'WRIT_SERVER_DNS_NAMES: "bad_name!" is not a valid DNS name'],
    [{ WRIT_ADMIN_TOKEN: 'short' }, 'WRIT_ADMIN_TOKEN: must be at least 16 characters long'],
    [{ WRIT_CA_TTL: 'forever' }, 'WRIT_CA_TTL: must be a positive duration'],
    [{ WRIT_LOG_LEVEL: 'loud' }, 'WRIT_LOG_LEVEL: must be one of'],
    [{ WRIT_CA_REPLACE: 'maybe' }, 'WRIT_CA_REPLACE: must be true or false, got "maybe"'],
    [{ DATABASE_URL: 'postgresql://db/writ?schema=writ' }, 'DATABASE_URL: the "schema" parameter is not supported'],
    [{ WRIT_WORKERS: '0' }, 'WRIT_WORKERS: must be a number of processes from 1 to 64, or "auto" (one per CPU), got "0"'],
    [{ WRIT_WORKERS: '65' }, 'WRIT_WORKERS: must be a number of processes from 1 to 64'],
    [{ WRIT_WORKERS: '2.5' }, 'WRIT_WORKERS: must be a number of processes'],
    [{ WRIT_WORKERS: 'many' }, 'WRIT_WORKERS: must be a number of processes'],
    [{ WRIT_WORKERS: '2' }, 'WRIT_WORKERS: 2 worker processes need DATABASE_URL: the embedded database (PGlite) runs inside one process'],
  ])('refuses %j naming the setting', (env, message) => {
    expect(failure(env)).toContain(message);
  });

  it('reads WRIT_LOG_FORMAT: json by default, or pretty (pino-pretty) for local use', () => {
    expect(loadConfig({}).logFormat).toBe('json');
    expect(loadConfig({ WRIT_LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ WRIT_LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(loadConfig({ WRIT_CONFIG: file('format.yaml', 'log_format: pretty\n') }).logFormat).toBe('pretty');
    expect(failure({ WRIT_LOG_FORMAT: 'text' })).toBe('WRIT_LOG_FORMAT: must be json or pretty, got "text"');
  });

  it('reads WRIT_WORKERS: a number of processes, or auto for one per CPU', () => {
    const db = { DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/writ' };
    expect(loadConfig({ ...db, WRIT_WORKERS: '4' }).workers).toBe(4);
    expect(loadConfig({ ...db, WRIT_WORKERS: '64' }).workers).toBe(64);
    expect(loadConfig({ ...db, WRIT_WORKERS: 'auto' }).workers).toBe(Math.min(availableParallelism(), 64));
    expect(loadConfig({ WRIT_WORKERS: '1' }).workers).toBe(1); // one process may use the embedded database
    expect(loadConfig({ ...db, WRIT_CONFIG: file('workers.yaml', 'workers: 3\n') }).workers).toBe(3);
  });

  it('refuses several workers on the embedded database, naming where the setting came from', () => {
    const path = file('workers-embedded.yaml', 'workers: 2\n');
    const message = failure({ WRIT_CONFIG: path });
    expect(message).toMatch(/^workers \(in .*workers-embedded\.yaml\): 2 worker processes need DATABASE_URL: /);
    expect(message).toContain('set DATABASE_URL to a PostgreSQL database');
    if (availableParallelism() > 1) expect(failure({ WRIT_WORKERS: 'auto' })).toMatch(/^WRIT_WORKERS: \d+ worker processes need DATABASE_URL/);
  });

  it('names the file and key for a bad value in the config file', () => {
    const path = file('bad.yaml', 'port: twelve\n');
    expect(failure({ WRIT_CONFIG: path })).toBe(`port (in ${path}): must be a port number from 0 to 65535, got "twelve"`);
  });

  it('refuses unknown keys, unreadable and malformed config files', () => {
    expect(failure({ WRIT_CONFIG: file('unknown.yaml', 'trust_domian: x\n') })).toMatch(/^WRIT_CONFIG: .* has unknown setting "trust_domian"/);
    expect(failure({ WRIT_CONFIG: join(dir, 'missing.yaml') })).toMatch(/^WRIT_CONFIG: cannot read .*missing.yaml: ENOENT/);
    expect(failure({ WRIT_CONFIG: file('broken.json', '{"port":') })).toMatch(/^WRIT_CONFIG: .*broken.json is not valid JSON/);
    expect(failure({ WRIT_CONFIG: file('list.yaml', '- a\n- b\n') })).toMatch(/must hold a mapping/);
  });

  it('reads attestor settings from the file, with file paths relative to it', () => {
    const path = file(
      'attestors.yaml',
      [
        'oidc_issuers:',
        '  - issuer: https://kubernetes.default.svc',
        '    jwks_file: keys/k8s.json',
        '    audience: writ',
        '    claims: [kubernetes.io.namespace]',
        'x509pop:',
        '  ca_bundle_file: /etc/pki/corp-root.pem',
      ].join('\n'),
    );
    const c = loadConfig({ WRIT_CONFIG: path });
    expect(c.oidcIssuers).toEqual([
      expect.objectContaining({ issuer: 'https://kubernetes.default.svc', jwksFile: join(dir, 'keys/k8s.json'), audience: 'writ', algorithms: ['RS256', 'ES256'] }),
    ]);
    expect(c.x509pop).toEqual({ ca_bundle_file: '/etc/pki/corp-root.pem' });
    expect(loadConfig({}).oidcIssuers).toEqual([]);
    expect(loadConfig({}).x509pop).toBeUndefined();
  });

  it('refuses attestor settings naming the field', () => {
    expect(failure({ WRIT_OIDC_ISSUERS: JSON.stringify([{ issuer: 'https://i.test', jwks_file: 'k.json', audience: 'writ', algorithms: ['HS256'] }]) })).toMatch(
      /^WRIT_OIDC_ISSUERS: 0\.algorithms\.0: HS256 is a shared-secret/,
    );
    expect(failure({ WRIT_OIDC_ISSUERS: '[{' })).toBe('WRIT_OIDC_ISSUERS: must be JSON');
    expect(failure({ WRIT_X509POP: JSON.stringify({ ca_bundle: 'x' }) })).toMatch(/^WRIT_X509POP/);
  });

  it('redacts the password of a database URL', () => {
    expect(redactDatabaseUrl('postgresql://writ:s3cret@db:5432/writ')).toBe('postgresql://writ:***@db:5432/writ');
    expect(redactDatabaseUrl('postgresql://db/writ?user=writ&password=s3cret&sslpassword=k3y')).toBe('postgresql://db/writ?user=writ&password=***&sslpassword=***');
  });
});
