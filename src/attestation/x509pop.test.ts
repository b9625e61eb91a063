import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ManualClock } from '../core/clock';
import { ConfigError } from '../config/errors';
import { openssl, opensslCaChain } from '../../test/support/openssl';
import type { AttestationContext, AttestationResult } from './attestor';
import { AttestationError } from './errors';
import { caFingerprint, X509PopAttestor, x509popConfigSchema } from './x509pop';

// A test enterprise PKI, built with the openssl CLI:
//   pki/root.crt ─┬─ pki/int.crt (pathlen:0) ─┬─ leaf-int, serverauth-int …
//                 ├─ leaf-root, expiring, ca-leaf, …
//                 └─ not-a-ca ── under-not-a-ca
//   alt/root.crt (a second trusted root) ── leaf-alt
//   rogue/root.crt "Rogue Root" (not trusted) ── leaf-rogue
//   impostor/root.crt, also named "Operator Root" (not trusted) ── leaf-impostor
let dir: string;
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
const CA_EXT = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
const clientExt = (san: string, eku = 'clientAuth'): string[] => [
  'basicConstraints=critical,CA:FALSE',
  'keyUsage=critical,digitalSignature',
  `extendedKeyUsage=${eku}`,
  `subjectAltName=${san}`,
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid',
];

const path = (name: string): string => join(dir, name);
const pem = (name: string): string => readFileSync(path(name), 'utf8');
const der = (name: string): Uint8Array => new Uint8Array(Buffer.from(pem(name).replace(/-----[^-]+-----|\s/g, ''), 'base64'));
const chain = (...names: string[]): AttestationContext => ({ peerCertificates: names.map(der) });

/** Issues `<name>.crt` (with `<name>.key`) from the CA `<issuer>.crt`/`.key` with openssl x509 -req. */
function issue(name: string, issuer: string, subj: string, ext: string[], opts: { days?: number; digest?: string } = {}): void {
  openssl(['req', '-new', ...EC, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], { cwd: dir });
  writeFileSync(path(`${name}.ext`), ext.join('\n') + '\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.crt`,
    '-days', String(opts.days ?? 30), '-extfile', `${name}.ext`, `-${opts.digest ?? 'sha256'}`], { cwd: dir });
}

/** Issues a certificate whose validity starts at `start` (openssl ca, since openssl 3.0's x509 -req cannot set notBefore). */
function issueStartingAt(name: string, issuer: string, subj: string, ext: string[], start: Date): void {
  const time = (d: Date): string => d.toISOString().replace(/[-:T]|\.\d+/g, '');
  mkdirSync(path('ca-new'), { recursive: true });
  writeFileSync(path('ca-index.txt'), '');
  writeFileSync(path('ca-serial.txt'), '1000\n');
  writeFileSync(path('ca.cnf'), ['[ca]', 'default_ca = test', '[test]', 'database = ca-index.txt', 'new_certs_dir = ca-new', 'serial = ca-serial.txt',
    'default_md = sha256', 'policy = any', 'unique_subject = no', '[any]', 'commonName = supplied', ''].join('\n'));
  openssl(['req', '-new', ...EC, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], { cwd: dir });
  writeFileSync(path(`${name}.ext`), ext.join('\n') + '\n');
  openssl(['ca', '-config', 'ca.cnf', '-batch', '-notext', '-cert', `${issuer}.crt`, '-keyfile', `${issuer}.key`, '-in', `${name}.csr`, '-out', `${name}.crt`,
    '-startdate', time(start), '-enddate', time(new Date(start.getTime() + 30 * 86400_000)), '-extfile', `${name}.ext`], { cwd: dir });
}

/** The value openssl prints for a certificate field, e.g. `serial=0A…` → `0A…`. */
const opensslField = (name: string, args: string[]): string => openssl(['x509', '-noout', ...args, '-in', path(name)]).trim().replace(/^[^=]+=/, '');
const fingerprintByOpenssl = (name: string): string => opensslField(name, ['-fingerprint', '-sha256']).replace(/:/g, '').toLowerCase();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'writ-x509pop-'));
  for (const sub of ['pki', 'alt', 'rogue', 'impostor']) mkdirSync(path(sub));
  opensslCaChain(path('pki'));
  opensslCaChain(path('impostor')); // its root is also "CN=Operator Root", with another key
  for (const [sub, cn] of [['alt', 'Second Root'], ['rogue', 'Rogue Root']] as const) {
    openssl(['req', '-x509', ...EC, '-nodes', '-keyout', 'root.key', '-out', 'root.crt', '-subj', `/CN=${cn}`, '-days', '30',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: path(sub) });
  }
  writeFileSync(path('bundle.pem'), pem('pki/root.crt') + pem('alt/root.crt'));

  issue('leaf-root', 'pki/root', '/C=US/O=Example, Inc./OU=Connectors/CN=connector-a', clientExt('DNS:a.example.com,DNS:a.internal,URI:urn:example:connector:a'));
  issue('leaf-int', 'pki/int', '/O=Example/CN=connector-b', clientExt('DNS:b.example.com'));
  issue('leaf-alt', 'alt/root', '/CN=connector-c', clientExt('DNS:c.example.com'));
  issue('leaf-rogue', 'rogue/root', '/CN=connector-a', clientExt('DNS:a.example.com'));
  issue('leaf-impostor', 'impostor/root', '/CN=connector-a', clientExt('DNS:a.example.com'));
  issue('expiring', 'pki/root', '/CN=short-lived', clientExt('DNS:short.example.com'), { days: 1 });
  issueStartingAt('future', 'pki/root', '/CN=future', clientExt('DNS:future.example.com'), new Date(Date.now() + 86400_000));
  issue('serverauth', 'pki/root', '/CN=web', clientExt('DNS:web.example.com', 'serverAuth'));
  issue('ca-leaf', 'pki/root', '/CN=sub-ca', [...CA_EXT, 'extendedKeyUsage=clientAuth']);
  issue('no-digsig', 'pki/root', '/CN=encipher-only', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,keyAgreement', 'extendedKeyUsage=clientAuth']);
  issue('sha1-leaf', 'pki/root', '/CN=old', clientExt('DNS:old.example.com'), { digest: 'sha1' });
  issue('email-leaf', 'pki/root', '/CN=#mail, me /emailAddress=ops@example.com', clientExt('DNS:mail.example.com'));
  // An "intermediate" that is not a CA, and a leaf it signed.
  issue('not-a-ca', 'pki/root', '/CN=Not A CA', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'subjectKeyIdentifier=hash']);
  issue('under-not-a-ca', 'not-a-ca', '/CN=connector-d', clientExt('DNS:d.example.com'));
  // pki/int has pathlen:0: a CA below it may not issue.
  issue('int2', 'pki/int', '/CN=Second-level CA', CA_EXT);
  issue('under-int2', 'int2', '/CN=connector-e', clientExt('DNS:e.example.com'));
  // A name-constrained intermediate and one whose extendedKeyUsage excludes clientAuth.
  issue('constrained', 'pki/root', '/CN=Constrained CA', [...CA_EXT, 'nameConstraints=critical,permitted;DNS:example.com']);
  issue('under-constrained', 'constrained', '/CN=connector-f', clientExt('DNS:f.example.com'));
  issue('web-ca', 'pki/root', '/CN=Web CA', [...CA_EXT, 'extendedKeyUsage=serverAuth']);
  issue('under-web-ca', 'web-ca', '/CN=connector-g', clientExt('DNS:g.example.com'));
  // The TLS server's own certificate, for the end-to-end test.
  issue('server', 'pki/root', '/CN=writ-test-server', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1']);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const attestor = (clock = new ManualClock(), intermediates?: string): X509PopAttestor =>
  new X509PopAttestor({ ca_bundle_file: path('bundle.pem'), ...(intermediates ? { intermediates_file: intermediates } : {}) }, { clock });

/** The AttestationError an attestation fails with. */
async function refusal(promise: Promise<AttestationResult>): Promise<AttestationError> {
  const err: unknown = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AttestationError);
  return err as AttestationError;
}

describe('x509pop attestor (RFC 5280 §6 path validation)', () => {
  it('accepts a leaf signed by a configured root and answers with selectors read from it', async () => {
    const { selectors } = await attestor().attest({}, chain('leaf-root.crt'));
    expect(selectors).toEqual([
      'x509pop:subject_cn:connector-a',
      `x509pop:ca:${fingerprintByOpenssl('pki/root.crt')}`,
      `x509pop:serial:${opensslField('leaf-root.crt', ['-serial']).toLowerCase()}`,
      'x509pop:san:dns:a.example.com',
      'x509pop:san:dns:a.internal',
      'x509pop:san:uri:urn:example:connector:a',
      'x509pop:subject:CN=connector-a,OU=Connectors,O=Example\\, Inc.,C=US',
    ]);
  });

  it('writes the subject as RFC 4514 does, as openssl -nameopt RFC2253 does', async () => {
    const { selectors } = await attestor().attest({}, chain('leaf-root.crt'));
    expect(selectors).toContain(`x509pop:subject:${opensslField('leaf-root.crt', ['-subject', '-nameopt', 'RFC2253'])}`);
  });

  it('RFC 4514 §2.4: escapes a leading "#" and trailing space, writes attribute types without a short name as OID=#hex', async () => {
    const { selectors } = await attestor().attest({}, chain('email-leaf.crt'));
    const email = Buffer.from('ops@example.com');
    const hex = Buffer.concat([Buffer.from([0x16, email.length]), email]).toString('hex');
    expect(selectors).toContain(`x509pop:subject:1.2.840.113549.1.9.1=#${hex},CN=\\#mail\\, me\\ `);
    expect(selectors).toContain('x509pop:subject_cn:#mail, me ');
  });

  it('accepts a leaf whose intermediate the client sent after it; the ca selector names the root', async () => {
    const { selectors } = await attestor().attest({}, chain('leaf-int.crt', 'pki/int.crt'));
    expect(selectors).toContain('x509pop:subject_cn:connector-b');
    expect(selectors).toContain(`x509pop:ca:${fingerprintByOpenssl('pki/root.crt')}`);
    expect(selectors).toContain('x509pop:san:dns:b.example.com');
  });

  it('accepts a chain that includes the trust anchor itself', async () => {
    const { selectors } = await attestor().attest({}, chain('leaf-int.crt', 'pki/int.crt', 'pki/root.crt'));
    expect(selectors).toContain(`x509pop:ca:${fingerprintByOpenssl('pki/root.crt')}`);
  });

  it('accepts a leaf alone when its intermediate is in intermediates_file', async () => {
    const { selectors } = await attestor(new ManualClock(), path('pki/int.crt')).attest({}, chain('leaf-int.crt'));
    expect(selectors).toContain('x509pop:subject_cn:connector-b');
  });

  it('refuses a leaf alone when its intermediate is neither sent nor configured', async () => {
    const err = await refusal(attestor().attest({}, chain('leaf-int.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/does not chain to a configured CA: the client certificate "CN=connector-b,O=Example" is issued by "CN=Operator Intermediate"/);
  });

  it('trusts every CA of the bundle, and the ca selector says which one', async () => {
    const { selectors } = await attestor().attest({}, chain('leaf-alt.crt'));
    expect(selectors).toContain(`x509pop:ca:${fingerprintByOpenssl('alt/root.crt')}`);
    expect(selectors).not.toContain(`x509pop:ca:${fingerprintByOpenssl('pki/root.crt')}`);
  });

  it('refuses a leaf of a CA that is not configured', async () => {
    const err = await refusal(attestor().attest({}, chain('leaf-rogue.crt', 'rogue/root.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/does not chain to a configured CA: the chain ends at "CN=Rogue Root", a self-issued certificate that is not a configured CA/);
    const alone = await refusal(attestor().attest({}, chain('leaf-rogue.crt')));
    expect(alone.message).toMatch(/does not chain to a configured CA: the client certificate "CN=connector-a" is issued by "CN=Rogue Root"/);
  });

  it('§6.1.3 (a)(1): refuses a leaf whose issuer has a trusted CA\'s name but another key', async () => {
    const err = await refusal(attestor().attest({}, chain('leaf-impostor.crt', 'impostor/root.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/signature of the client certificate "CN=connector-a" does not verify with the key of "CN=Operator Root"/);
  });

  it('§6.1.3 (a)(2): refuses an expired leaf', async () => {
    const clock = new ManualClock();
    const a = attestor(clock);
    await expect(a.attest({}, chain('expiring.crt'))).resolves.toBeDefined();
    clock.advance(2 * 86400);
    const err = await refusal(a.attest({}, chain('expiring.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/the client certificate "CN=short-lived" expired at \d{4}-/);
  });

  it('§6.1.3 (a)(2): refuses a leaf not yet valid', async () => {
    const err = await refusal(attestor().attest({}, chain('future.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/the client certificate "CN=future" is not valid before \d{4}-/);
  });

  it('§6.1.3 (a)(2): refuses a path whose CA has expired', async () => {
    const clock = new ManualClock();
    clock.advance(31 * 86400);
    const err = await refusal(attestor(clock).attest({}, chain('leaf-int.crt', 'pki/int.crt')));
    expect(err.message).toMatch(/expired at/);
  });

  it('§4.2.1.12: refuses a leaf whose extendedKeyUsage is serverAuth only', async () => {
    const err = await refusal(attestor().attest({}, chain('serverauth.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/"CN=web" has an extendedKeyUsage without clientAuth/);
  });

  it('§4.2.1.3: refuses a leaf whose keyUsage lacks digitalSignature', async () => {
    const err = await refusal(attestor().attest({}, chain('no-digsig.crt')));
    expect(err.message).toMatch(/keyUsage without digitalSignature/);
  });

  it('§4.2.1.9: refuses a leaf that is itself a CA', async () => {
    const err = await refusal(attestor().attest({}, chain('ca-leaf.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/"CN=sub-ca" is a CA certificate \(basicConstraints cA true\)/);
  });

  it('§6.1.4 (k): refuses an intermediate that is not a CA (cA false)', async () => {
    const err = await refusal(attestor().attest({}, chain('under-not-a-ca.crt', 'not-a-ca.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/the intermediate CA "CN=Not A CA" \(depth 1\) is not a CA \(basicConstraints cA is not true\)/);
  });

  it('§6.1.4 (m): refuses a path longer than a CA\'s pathLenConstraint allows', async () => {
    const err = await refusal(attestor().attest({}, chain('under-int2.crt', 'int2.crt', 'pki/int.crt')));
    expect(err.message).toMatch(/"CN=Operator Intermediate" \(depth 2\) allows 0 intermediate CAs below it \(pathLenConstraint\), but the path has 1/);
  });

  it('§4.2: refuses a path with a critical extension it does not enforce (nameConstraints)', async () => {
    const err = await refusal(attestor().attest({}, chain('under-constrained.crt', 'constrained.crt')));
    expect(err.message).toMatch(/"CN=Constrained CA" \(depth 1\) carries a critical nameConstraints/);
  });

  it('refuses a leaf under a CA whose extendedKeyUsage excludes clientAuth', async () => {
    const err = await refusal(attestor().attest({}, chain('under-web-ca.crt', 'web-ca.crt')));
    expect(err.message).toMatch(/"CN=Web CA" \(depth 1\) restricts extendedKeyUsage to 1\.3\.6\.1\.5\.5\.7\.3\.1, which excludes clientAuth/);
  });

  it('refuses a certificate signed with SHA-1', async () => {
    const err = await refusal(attestor().attest({}, chain('sha1-leaf.crt')));
    expect(err.message).toMatch(/signed with ecdsa-with-SHA1/);
  });

  it('refuses a leaf whose RSA key has public exponent 3, naming the exponent; accepts RSA with 65537', async () => {
    for (const [name, exponent] of [['rsa-e3', '3'], ['rsa-f4', '65537']] as const) {
      openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', `rsa_keygen_pubexp:${exponent}`, '-out', `${name}.key`], { cwd: dir });
      openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], { cwd: dir });
      writeFileSync(path(`${name}.ext`), clientExt(`DNS:${name}.example.com`).join('\n') + '\n');
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'pki/root.crt', '-CAkey', 'pki/root.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '30', '-extfile', `${name}.ext`], { cwd: dir });
    }
    const err = await refusal(attestor().attest({}, chain('rsa-e3.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toBe('the client certificate "CN=rsa-e3": RSA public exponent 3 is not allowed; use 65537');
    expect((await attestor().attest({}, chain('rsa-f4.crt'))).selectors).toContain('x509pop:subject_cn:rsa-f4');
  });

  it('refuses a chain longer than 5 certificates', async () => {
    const err = await refusal(attestor().attest({}, chain('leaf-int.crt', 'pki/int.crt', 'pki/root.crt', 'int2.crt', 'web-ca.crt', 'alt/root.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/presented 6 certificates; at most 5/);
  });

  it('refuses bytes that are not a certificate', async () => {
    const err = await refusal(attestor().attest({}, { peerCertificates: [der('leaf-int.crt'), new Uint8Array([0x30, 0x03, 1, 2, 3])] }));
    expect(err.message).toMatch(/certificate 1 of the client chain cannot be parsed/);
  });
});

describe('x509pop attestor: evidence and the TLS client certificate', () => {
  it('answers client-certificate-required (401) when no client certificate was presented', async () => {
    const err = await refusal(attestor().attest({}, { peerCertificates: [] }));
    expect(err.code).toBe('client-certificate-required');
    expect(err.status).toBe(401);
    expect(err.type).toBe('urn:writ:problem:client-certificate-required');
  });

  it('refuses evidence with keys: the proof is the TLS handshake alone', async () => {
    const err = await refusal(attestor().attest({ certificate: 'x' }, chain('leaf-root.crt')));
    expect(err.code).toBe('invalid-evidence');
    expect(err.message).toMatch(/unexpected: certificate/);
  });
});

describe('x509pop configuration', () => {
  it('the schema requires ca_bundle_file and refuses unknown keys', () => {
    expect(x509popConfigSchema.safeParse({}).success).toBe(false);
    expect(x509popConfigSchema.safeParse({ ca_bundle_file: 'a.pem', extra: 1 }).success).toBe(false);
    expect(x509popConfigSchema.parse({ ca_bundle_file: 'a.pem', intermediates_file: 'i.pem' })).toEqual({ ca_bundle_file: 'a.pem', intermediates_file: 'i.pem' });
  });

  it('refuses a missing file, naming it', () => {
    const missing = path('nope.pem');
    expect(() => new X509PopAttestor({ ca_bundle_file: missing }, { clock: new ManualClock() })).toThrow(ConfigError);
    expect(() => new X509PopAttestor({ ca_bundle_file: missing }, { clock: new ManualClock() })).toThrow(missing);
    expect(() => new X509PopAttestor({ ca_bundle_file: path('bundle.pem'), intermediates_file: missing }, { clock: new ManualClock() })).toThrow(/cannot read ".*nope\.pem"/);
  });

  it('refuses a file without certificates, and a bundle with a certificate that is not a CA', () => {
    writeFileSync(path('empty.pem'), 'nothing here\n');
    expect(() => new X509PopAttestor({ ca_bundle_file: path('empty.pem') }, { clock: new ManualClock() })).toThrow(/empty\.pem" holds no PEM certificate/);
    writeFileSync(path('with-leaf.pem'), pem('pki/root.crt') + pem('leaf-root.crt'));
    let err: unknown;
    try {
      new X509PopAttestor({ ca_bundle_file: path('with-leaf.pem') }, { clock: new ManualClock() });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe('x509pop.ca_bundle_file');
    expect((err as ConfigError).message).toMatch(/certificate 2 in ".*with-leaf\.pem" \(CN=connector-a,.*\) is not a CA certificate/);
  });

  it('caFingerprint gives the x509pop:ca value from PEM or DER, as openssl computes it', () => {
    const expected = fingerprintByOpenssl('pki/root.crt');
    expect(caFingerprint(pem('pki/root.crt'))).toBe(expected);
    expect(caFingerprint(der('pki/root.crt'))).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
    expect(() => caFingerprint(pem('bundle.pem'))).toThrow(/exactly one/);
  });
});

describe('x509pop over real TLS (RFC 8446 §4.4.3 CertificateVerify proves the key)', () => {
  /** The client chain as a TLS server sees it: getPeerCertificate(true), walked through issuerCertificate. */
  function peerChain(socket: tls.TLSSocket): Uint8Array[] {
    const out: Uint8Array[] = [];
    let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
    while (cert?.raw && out.length < 10) {
      out.push(new Uint8Array(cert.raw));
      if (!cert.issuerCertificate || cert.issuerCertificate === cert || cert.issuerCertificate.fingerprint256 === cert.fingerprint256) break;
      cert = cert.issuerCertificate;
    }
    return out;
  }

  /** Runs a TLS server that requests (but does not check) a client certificate, connects with `clientCert`, and attests what the server saw. */
  async function attestOverTls(a: X509PopAttestor, clientCert: string, clientKey: string): Promise<{ seen: number; outcome: AttestationResult | AttestationError }> {
    const server = tls.createServer({ key: pem('server.key'), cert: pem('server.crt'), requestCert: true, rejectUnauthorized: false });
    const attested = new Promise<{ seen: number; outcome: AttestationResult | AttestationError }>((resolve) => {
      server.once('secureConnection', (socket) => {
        const peerCertificates = peerChain(socket);
        a.attest({}, { peerCertificates })
          .then((r) => r, (e: AttestationError) => e)
          .then((outcome) => {
            resolve({ seen: peerCertificates.length, outcome });
            socket.end();
          });
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: pem('pki/root.crt'), cert: clientCert, key: clientKey });
    client.on('error', () => undefined);
    client.resume();
    try {
      return await attested;
    } finally {
      client.destroy();
      server.close();
    }
  }

  it('attests a client that sends its leaf and intermediate', async () => {
    const { seen, outcome } = await attestOverTls(attestor(), pem('leaf-int.crt') + pem('pki/int.crt'), pem('leaf-int.key'));
    expect(seen).toBe(2);
    expect(outcome).not.toBeInstanceOf(Error);
    expect((outcome as AttestationResult).selectors).toEqual([
      'x509pop:subject_cn:connector-b',
      `x509pop:ca:${fingerprintByOpenssl('pki/root.crt')}`,
      `x509pop:serial:${opensslField('leaf-int.crt', ['-serial']).toLowerCase()}`,
      'x509pop:san:dns:b.example.com',
      'x509pop:subject:CN=connector-b,O=Example',
    ]);
  });

  it('refuses a client whose certificate chains to a CA that is not configured', async () => {
    const { outcome } = await attestOverTls(attestor(), pem('leaf-rogue.crt'), pem('leaf-rogue.key'));
    expect(outcome).toBeInstanceOf(AttestationError);
    expect((outcome as AttestationError).code).toBe('invalid-evidence');
  });
});
