import { X509Certificate as NodeX509 } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { openssl, opensslCaChain } from '../../test/support/openssl';
import { CaError, loadOrCreateCertificateAuthority, loadOrCreateJwtSigningKey, x509 } from '.';

const clock = new ManualClock('2026-11-27T12:00:00Z');
const fresh = () => mkdtempSync(join(tmpdir(), 'writ-ca-'));
const opts = (dir: string, trustDomain = 'writ.local') => ({ dir, trustDomain, caTtl: 365 * 86400, clock, random: systemRandom });

describe('generated root CA', () => {
  let dir: string;
  let cert: x509.X509Certificate;

  beforeAll(async () => {
    dir = fresh();
    const { value, created } = await loadOrCreateCertificateAuthority(opts(dir, 'prod.example'));
    expect(created).toBe(true);
    cert = value.certificate;
  });

  it('is self-signed ECDSA P-256 with SHA-256', async () => {
    expect(cert.subject).toBe(cert.issuer);
    expect(await cert.verify({ publicKey: cert.publicKey, signatureOnly: true })).toBe(true);
    expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(cert.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
  });

  it('names the trust domain in its subject and its URI SAN', () => {
    expect(cert.subject).toContain('CN=prod.example');
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
    expect(san.names.items.map((n) => [n.type, n.value])).toEqual([['url', 'spiffe://prod.example']]);
  });

  it('X509-SVID §4.1: basicConstraints CA:true, critical', () => {
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.critical).toBe(true);
  });

  it('X509-SVID §4.3: keyUsage keyCertSign and cRLSign only, critical', () => {
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  });

  it('is valid for one year from now', () => {
    expect(cert.notBefore.getTime()).toBeLessThanOrEqual(clock.now().getTime());
    expect(cert.notAfter.getTime()).toBe(clock.now().getTime() + 365 * 86400 * 1000);
  });

  it('is read the same way by openssl', () => {
    const text = openssl(['x509', '-noout', '-text', '-in', join(dir, 'ca.crt')]);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(/URI:spiffe:\/\/prod\.example/);
    expect(text).toContain('ASN1 OID: prime256v1');
  });

  it('writes the key with mode 0600', () => {
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'ca.key'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('is reused on the next start', async () => {
    const again = await loadOrCreateCertificateAuthority(opts(dir, 'prod.example'));
    expect(again.created).toBe(false);
    expect(again.value.certificate.serialNumber).toBe(cert.serialNumber);
  });
});

describe('CA files on disk', () => {
  it('of processes starting at once on one directory, exactly one generates', async () => {
    const dir = fresh();
    const results = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateCertificateAuthority(opts(dir))));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.value.certificate.serialNumber)).size).toBe(1);
  });

  it('refuses a key that does not match its certificate', async () => {
    const a = fresh();
    const b = fresh();
    await loadOrCreateCertificateAuthority(opts(a));
    await loadOrCreateCertificateAuthority(opts(b));
    copyFileSync(join(b, 'ca.key'), join(a, 'ca.key'));
    await expect(loadOrCreateCertificateAuthority(opts(a))).rejects.toThrow('ca.key does not match the certificate in ca.crt');
  });

  it('refuses a certificate without its key, and a key without its certificate', async () => {
    const a = fresh();
    const b = fresh();
    await loadOrCreateCertificateAuthority(opts(a));
    copyFileSync(join(a, 'ca.crt'), join(b, 'ca.crt'));
    await expect(loadOrCreateCertificateAuthority(opts(b))).rejects.toThrow(/ca.crt is present but .*ca.key is missing/);
    const c = fresh();
    copyFileSync(join(a, 'ca.key'), join(c, 'ca.key'));
    await expect(loadOrCreateCertificateAuthority({ ...opts(c), concurrentWriterWaitMs: 100 })).rejects.toThrow(/ca.key is present but .*ca.crt is missing/);
  });

  it('refuses unreadable and malformed files, naming WRIT_CA_DIR', async () => {
    const a = fresh();
    writeFileSync(join(a, 'ca.crt'), 'not a certificate');
    writeFileSync(join(a, 'ca.key'), 'not a key', { mode: 0o600 });
    const err = await loadOrCreateCertificateAuthority(opts(a)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaError);
    expect(err).toMatchObject({ setting: 'WRIT_CA_DIR', message: 'ca.crt holds no PEM certificate' });
    const b = fresh();
    await loadOrCreateCertificateAuthority(opts(b));
    rmSync(join(b, 'ca.crt'));
    mkdirSync(join(b, 'ca.crt'));
    await expect(loadOrCreateCertificateAuthority(opts(b))).rejects.toThrow(/cannot read .*ca.crt: EISDIR/);
    writeFileSync(join(a, 'ca.crt'), readFileSync(join(b, 'ca.key')));
    await expect(loadOrCreateCertificateAuthority(opts(a))).rejects.toThrow('ca.crt holds no PEM certificate');
  });

  it('refuses a CA for another trust domain', async () => {
    const a = fresh();
    await loadOrCreateCertificateAuthority(opts(a, 'one.example'));
    await expect(loadOrCreateCertificateAuthority(opts(a, 'two.example'))).rejects.toThrow(
      'the CA certificate is for trust domain "one.example", not WRIT_TRUST_DOMAIN "two.example"',
    );
  });

  it('refuses an expired CA', async () => {
    const a = fresh();
    await loadOrCreateCertificateAuthority({ ...opts(a), caTtl: 3600 });
    const later = new ManualClock(clock.now().getTime() + 7200 * 1000);
    await expect(loadOrCreateCertificateAuthority({ ...opts(a), clock: later })).rejects.toThrow(/expired at/);
  });

  it('refuses a key that others can read, and warns when its group can', async () => {
    const a = fresh();
    await loadOrCreateCertificateAuthority(opts(a));
    chmodSync(join(a, 'ca.key'), 0o644);
    await expect(loadOrCreateCertificateAuthority(opts(a))).rejects.toThrow(/ca.key has mode 644: a private key must not be readable by others/);
    chmodSync(join(a, 'ca.key'), 0o640);
    const { warnings } = await loadOrCreateCertificateAuthority(opts(a));
    expect(warnings).toEqual([expect.stringMatching(/ca.key is readable by its group \(mode 640\)/)]);
    await loadOrCreateJwtSigningKey({ dir: a });
    chmodSync(join(a, 'jwt-signing.key'), 0o604);
    await expect(loadOrCreateJwtSigningKey({ dir: a })).rejects.toThrow(/jwt-signing.key has mode 604/);
  });

  it('removes key temporaries that a dead process left behind, and keeps those of live ones', async () => {
    const a = fresh();
    const dead = join(a, 'ca.key.999999.0123456789ab.tmp');
    const live = join(a, `ca.key.${process.pid}.0123456789ab.tmp`);
    writeFileSync(dead, 'secret', { mode: 0o600 });
    writeFileSync(live, 'secret', { mode: 0o600 });
    await loadOrCreateCertificateAuthority(opts(a));
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  it('names WRIT_CA_DIR when the directory cannot be made', async () => {
    const a = fresh();
    writeFileSync(join(a, 'file'), '');
    await expect(loadOrCreateCertificateAuthority(opts(join(a, 'file', 'certs')))).rejects.toMatchObject({ setting: 'WRIT_CA_DIR', message: expect.stringMatching(/cannot create .*: ENOTDIR/) });
  });
});

describe('operator-provided CA (made with openssl)', () => {
  it('uses an intermediate with its chain: the root is the anchor, the intermediate signs', async () => {
    const dir = fresh();
    opensslCaChain(dir, { intSan: 'URI:spiffe://writ.local' });
    writeFileSync(join(dir, 'ca.crt'), readFileSync(join(dir, 'int.crt'), 'utf8') + readFileSync(join(dir, 'root.crt'), 'utf8'));
    copyFileSync(join(dir, 'int.key'), join(dir, 'ca.key'));
    const { value: ca, created } = await loadOrCreateCertificateAuthority({ ...opts(dir), clock: new ManualClock() });
    expect(created).toBe(false);
    expect(ca.certificate.subject).toBe('CN=Operator Intermediate');
    expect(ca.anchor.subject).toBe('CN=Operator Root');
  });

  it('accepts an RSA CA', async () => {
    const dir = fresh();
    opensslCaChain(dir, { keyType: 'rsa' });
    copyFileSync(join(dir, 'root.crt'), join(dir, 'ca.crt'));
    copyFileSync(join(dir, 'root.key'), join(dir, 'ca.key'));
    const { value: ca } = await loadOrCreateCertificateAuthority({ ...opts(dir), clock: new ManualClock() });
    expect(ca.anchor.publicKey.algorithm.name).toBe('RSASSA-PKCS1-v1_5');
  });

  it('refuses a chain whose next certificate did not issue the previous one', async () => {
    const a = fresh();
    const b = fresh();
    opensslCaChain(a);
    opensslCaChain(b);
    writeFileSync(join(a, 'ca.crt'), readFileSync(join(a, 'int.crt'), 'utf8') + readFileSync(join(b, 'root.crt'), 'utf8'));
    copyFileSync(join(a, 'int.key'), join(a, 'ca.key'));
    await expect(loadOrCreateCertificateAuthority({ ...opts(a), clock: new ManualClock() })).rejects.toThrow('chain certificate 1 in ca.crt did not issue certificate 0');
  });

  it.each([
    ['no keyUsage', ['-addext', 'basicConstraints=critical,CA:TRUE'], 'needs a critical keyUsage extension with keyCertSign'],
    ['a non-critical keyUsage', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=keyCertSign'], 'needs a critical keyUsage extension with keyCertSign'],
    ['keyUsage without keyCertSign', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature'], 'is not a CA certificate'], // OpenSSL's CA check already requires keyCertSign
    ['two SPIFFE IDs', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-addext', 'subjectAltName=URI:spiffe://writ.local,URI:spiffe://evil.example'], 'carries 2 SPIFFE IDs'],
    ['a SPIFFE ID with a path', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-addext', 'subjectAltName=URI:spiffe://writ.local/ca'], 'has a path; a signing certificate'],
  ])('X509-SVID §4.3, §5.1: refuses a CA with %s', async (_, ext, message) => {
    const dir = fresh();
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '1', ...ext], { cwd: dir });
    await expect(loadOrCreateCertificateAuthority({ ...opts(dir), clock: new ManualClock() })).rejects.toThrow(message);
  });

  it('refuses a certificate that is not a CA', async () => {
    const dir = fresh();
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=leaf', '-days', '1',
      '-addext', 'basicConstraints=critical,CA:FALSE'], { cwd: dir });
    await expect(loadOrCreateCertificateAuthority({ ...opts(dir), clock: new ManualClock() })).rejects.toThrow(/is not a CA certificate/);
  });
});

describe('JWT signing key', () => {
  it('is an ES256 key, persisted with mode 0600, named by its RFC 7638 thumbprint', async () => {
    const dir = fresh();
    const first = await loadOrCreateJwtSigningKey({ dir });
    expect(first.created).toBe(true);
    expect(first.value.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(first.value.publicJwk).not.toHaveProperty('d');
    expect(first.value.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(dir, 'jwt-signing.key')).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateJwtSigningKey({ dir });
    expect(second.created).toBe(false);
    expect(second.value.kid).toBe(first.value.kid);
  });

  it('refuses a key that is not P-256', async () => {
    const dir = fresh();
    openssl(['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'jwt-signing.key')]);
    await expect(loadOrCreateJwtSigningKey({ dir })).rejects.toThrow('jwt-signing.key must be an EC P-256 key (ES256)');
  });
});

it('the generated CA parses with Node too', async () => {
  const dir = fresh();
  await loadOrCreateCertificateAuthority(opts(dir));
  const c = new NodeX509(readFileSync(join(dir, 'ca.crt')));
  expect(c.ca).toBe(true);
});
