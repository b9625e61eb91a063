import { X509Certificate as NodeX509 } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import type { Random } from '../core/random';
import { openssl, opensslCaChain } from '../../test/support/openssl';
import { CertificateAuthority as Authority } from './authority';
import { encodingOf, readChildren, readElement } from './der';
import { parseCsr } from './csr';
import { generateP256, importSigningKey } from './keys';
import { IssuedCertificate, LeafCertificateWriter } from './leaf';
import { subtle } from './x509';
import { loadOrCreateCertificateAuthority, ServerSvid, x509, type CertificateAuthority } from '.';

const clock = new ManualClock('2026-11-27T12:00:00Z');
let dir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-svid-'));
  ca = (await loadOrCreateCertificateAuthority({ dir, trustDomain: 'writ.local', caTtl: 30 * 86400, clock, random: systemRandom })).value;
});

describe('X509-SVID profile', () => {
  let leaf: x509.X509Certificate;
  beforeAll(async () => {
    const keys = await generateP256();
    const svid = await ca.signX509Svid({ spiffeId: 'spiffe://writ.local/writ/server', publicKey: keys.publicKey, ttl: 3600, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], forBroker: true });
    leaf = svid.certificate;
    expect(svid.intermediates).toEqual([]);
  });

  it('§2: has exactly one URI SAN, the SPIFFE ID, beside DNS and IP SANs', () => {
    const names = leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.items;
    expect(names.filter((n) => n.type === 'url').map((n) => n.value)).toEqual(['spiffe://writ.local/writ/server']);
    expect(names.filter((n) => n.type === 'dns').map((n) => n.value)).toEqual(['localhost']);
    expect(names.filter((n) => n.type === 'ip').map((n) => n.value)).toEqual(['127.0.0.1']);
  });

  it('§4.1: basicConstraints cA false, critical', () => {
    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
    expect(bc.critical).toBe(true);
  });

  it('§4.3: keyUsage is digitalSignature only for an EC key (RFC 8813: no keyEncipherment), critical', () => {
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature);
  });

  it('§4.3: an RSA subject key also gets keyEncipherment', async () => {
    const rsa = (await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const svid = await ca.signX509Svid({ spiffeId: 'spiffe://writ.local/rsa', publicKey: rsa.publicKey, ttl: 60 });
    expect(svid.certificate.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  });

  it.each([
    ['another trust domain', { spiffeId: 'spiffe://other.test/a' }, 'is not in trust domain "writ.local"'],
    ['the trust domain itself', { spiffeId: 'spiffe://writ.local' }, 'needs a SPIFFE ID with a path'],
    ['an invalid SPIFFE ID', { spiffeId: 'spiffe://writ.local/a/../b' }, '".."'],
    ['a zero lifetime', { ttl: 0 }, 'lifetime must be a positive whole number'],
    ['a fractional lifetime', { ttl: 1.5 }, 'lifetime must be a positive whole number'],
    ['a bad DNS name', { dnsNames: ['*.writ.local'] }, '"*.writ.local" is not a valid DNS name'],
    ['a bad IP address', { ipAddresses: ['300.1.1.1'] }, '"300.1.1.1" is not an IP address'],
    ['the broker\'s own identity', { spiffeId: 'spiffe://writ.local/writ/server', dnsNames: ['localhost'] }, 'is under /writ, which is reserved for the broker\'s own identity'],
    ['the broker\'s namespace', { spiffeId: 'spiffe://writ.local/writ' }, 'reserved for the broker'],
    ['a path under the broker\'s namespace', { spiffeId: 'spiffe://writ.local/writ/x/y', forBroker: false }, 'reserved for the broker'],
  ])('refuses to sign for %s', async (_, override, message) => {
    const keys = await generateP256();
    await expect(ca.signX509Svid({ spiffeId: 'spiffe://writ.local/a', publicKey: keys.publicKey, ttl: 60, ...override })).rejects.toThrow(
      expect.objectContaining({ name: 'SvidRequestRejected', status: 400, message: expect.stringContaining(message) }),
    );
  });

  it('signs paths that only look like the broker\'s (/writer, /team/writ)', async () => {
    const keys = await generateP256();
    for (const path of ['/writer/server', '/team/writ/server']) {
      await expect(ca.signX509Svid({ spiffeId: `spiffe://writ.local${path}`, publicKey: keys.publicKey, ttl: 60 })).resolves.toMatchObject({ spiffeId: `spiffe://writ.local${path}` });
    }
  });

  it('§4.4: extKeyUsage serverAuth and clientAuth', () => {
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  });

  it('has a positive serial with 128 random bits', () => {
    expect(leaf.serialNumber).toMatch(/^01[0-9a-f]{32}$/);
  });

  it('carries the requested lifetime, backdated slightly for clock skew', () => {
    expect(leaf.notAfter.getTime() - clock.now().getTime()).toBe(3600 * 1000);
    expect(clock.now().getTime() - leaf.notBefore.getTime()).toBe(10 * 1000);
  });

  it('verifies with openssl against the CA, for both TLS server and client purposes', () => {
    const leafPath = join(dir, 'leaf.pem');
    writeFileSync(leafPath, leaf.toString('pem'));
    const at = String(Math.floor(clock.now().getTime() / 1000));
    for (const purpose of ['sslserver', 'sslclient']) {
      expect(openssl(['verify', '-attime', at, '-purpose', purpose, '-CAfile', join(dir, 'ca.crt'), leafPath])).toContain('OK');
    }
  });

  it('is never valid beyond the CA', async () => {
    const keys = await generateP256();
    const svid = await ca.signX509Svid({ spiffeId: 'spiffe://writ.local/long', publicKey: keys.publicKey, ttl: 365 * 86400 });
    expect(svid.notAfter).toEqual(ca.notAfter);
  });
});

describe('the direct DER issuance path writes what the @peculiar/x509 path writes', () => {
  /** The same 16 octets every time, so both paths pick the same serial number. */
  const fixedRandom: Random = { bytes: (n) => new Uint8Array(n).fill(0xa5), uuid: () => '00000000-0000-4000-8000-000000000000' };
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'writ-fast-'));
  });

  interface CaFiles {
    name: string;
    /** The signing certificate first, then the chain up to the root. */
    certPems: string[];
    keyPem: string;
    clock: ManualClock;
    /** The root, for openssl verify. */
    rootFile: string;
    untrustedFile?: string;
  }

  const pemsOf = (file: string) => readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;

  /** Two authorities over the same certificate and key: one on each path. */
  async function pair(files: CaFiles): Promise<{ fast: CertificateAuthority; generic: CertificateAuthority }> {
    const [cert, ...chain] = files.certPems.map((p) => new x509.X509Certificate(p));
    const key = await importSigningKey(files.keyPem);
    return {
      fast: new Authority('writ.local', cert!, chain, key, { clock: files.clock, random: fixedRandom }),
      generic: new Authority('writ.local', cert!, chain, key, { clock: files.clock, random: fixedRandom, genericIssuance: true }),
    };
  }

  async function generatedRoot(name: string, at: string): Promise<CaFiles> {
    const caDir = join(work, name);
    const clock = new ManualClock(at);
    await loadOrCreateCertificateAuthority({ dir: caDir, trustDomain: 'writ.local', caTtl: 30 * 86400, clock, random: systemRandom });
    return { name, certPems: pemsOf(join(caDir, 'ca.crt')), keyPem: readFileSync(join(caDir, 'ca.key'), 'utf8'), clock, rootFile: join(caDir, 'ca.crt') };
  }

  /** A self-signed root made by openssl with `keyArgs` and any `-addext`s. */
  function opensslRoot(name: string, keyArgs: string[], addext: string[] = []): CaFiles {
    openssl(['req', '-x509', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/C=NL/O=Operator ${name}/CN=${name} CA`, '-days', '30',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', ...addext.flatMap((e) => ['-addext', e])], { cwd: work });
    return { name, certPems: pemsOf(join(work, `${name}.crt`)), keyPem: readFileSync(join(work, `${name}.key`), 'utf8'), clock: new ManualClock(Date.now() + 60_000), rootFile: join(work, `${name}.crt`) };
  }

  function opensslRsaIntermediate(): CaFiles {
    const chainDir = join(work, 'rsa-chain');
    mkdirSync(chainDir);
    opensslCaChain(chainDir, { keyType: 'rsa' });
    return {
      name: 'rsa-intermediate',
      certPems: [...pemsOf(join(chainDir, 'int.crt')), ...pemsOf(join(chainDir, 'root.crt'))],
      keyPem: readFileSync(join(chainDir, 'int.key'), 'utf8'),
      clock: new ManualClock(Date.now() + 60_000),
      rootFile: join(chainDir, 'root.crt'),
      untrustedFile: join(chainDir, 'int.crt'),
    };
  }

  async function subjectKeys(): Promise<Array<[string, CryptoKey]>> {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'subject.key', '-out', 'subject.csr', '-subj', '/CN=s'], { cwd: work });
    const fromCsr = await parseCsr(readFileSync(join(work, 'subject.csr'), 'utf8'));
    const gen = async (alg: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm) => ((await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair).publicKey;
    return [
      ['P-256 from a CSR', fromCsr.publicKey],
      ['P-256', await gen({ name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams)],
      ['P-384', await gen({ name: 'ECDSA', namedCurve: 'P-384' } as EcKeyGenParams)],
      ['Ed25519', await gen({ name: 'Ed25519' })],
      ['RSA-2048', await gen({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as RsaHashedKeyGenParams)],
    ];
  }

  /** The TBSCertificate's DER, read with der.ts from the certificate's octets. */
  const tbsOf = (cert: x509.X509Certificate) => {
    const der = new Uint8Array(cert.rawData);
    return encodingOf(der, readChildren(der, readElement(der))[0]!);
  };
  const hex = (b: ArrayBuffer | Uint8Array) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');

  function expectSameFields(fast: x509.X509Certificate, generic: x509.X509Certificate): void {
    expect(fast.subject).toBe('O=Writ');
    expect(hex(fast.subjectName.toArrayBuffer())).toBe(hex(generic.subjectName.toArrayBuffer()));
    expect(hex(fast.issuerName.toArrayBuffer())).toBe(hex(generic.issuerName.toArrayBuffer()));
    expect(fast.serialNumber).toBe(generic.serialNumber);
    expect(fast.notBefore).toEqual(generic.notBefore);
    expect(fast.notAfter).toEqual(generic.notAfter);
    expect(hex(fast.publicKey.rawData)).toBe(hex(generic.publicKey.rawData));
    expect(fast.signatureAlgorithm).toEqual(generic.signatureAlgorithm);
    expect(fast.extensions.map((e) => [e.type, e.critical, hex(e.value)])).toEqual(generic.extensions.map((e) => [e.type, e.critical, hex(e.value)]));
    // And so, byte for byte, the whole TBSCertificate.
    expect(hex(tbsOf(fast))).toBe(hex(tbsOf(generic)));
  }

  const cases: Array<[string, () => Promise<CaFiles> | CaFiles]> = [
    ['the generated P-256 root', () => generatedRoot('generated', '2026-11-27T12:00:00Z')],
    ['a generated root near 2050 (UTCTime notBefore, GeneralizedTime notAfter)', () => generatedRoot('y2050', '2049-12-31T20:00:00Z')],
    ['an openssl P-384 root', () => opensslRoot('p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'])],
    ['an openssl P-256 root with no subjectKeyIdentifier', () => opensslRoot('noski', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['subjectKeyIdentifier=none', 'authorityKeyIdentifier=none'])],
    ['an openssl RSA intermediate under an RSA root', () => opensslRsaIntermediate()],
  ];

  it.each(cases)('for %s', async (_, make) => {
    const files = await make();
    const { fast, generic } = await pair(files);
    expect(await LeafCertificateWriter.create(fast.certificate, await importSigningKey(files.keyPem))).toBeDefined();
    for (const [keyName, publicKey] of await subjectKeys()) {
      const req = { spiffeId: 'spiffe://writ.local/ns/a/sa/b', publicKey, ttl: 86400, dnsNames: ['a.example', 'b.example'], ipAddresses: ['127.0.0.1', '2001:db8::1'] };
      const f = await fast.signX509Svid(req);
      const g = await generic.signX509Svid(req);
      expect(f.certificate).toBeInstanceOf(IssuedCertificate);
      expect(g.certificate).not.toBeInstanceOf(IssuedCertificate);
      expect([f.serialNumber, f.notBefore, f.notAfter, f.intermediates.length]).toEqual([g.serialNumber, g.notBefore, g.notAfter, g.intermediates.length]);
      expectSameFields(f.certificate, g.certificate);
      // RSASSA-PKCS1-v1_5 signatures are deterministic: the whole certificates are identical.
      if (files.name === 'rsa-intermediate') expect(hex(f.certificate.rawData)).toBe(hex(g.certificate.rawData));
      // The fast path's signature verifies with the CA key...
      expect(new NodeX509(Buffer.from(f.certificate.rawData)).verify(new NodeX509(files.certPems[0]!).publicKey)).toBe(true);
      expect(await f.certificate.verify({ publicKey: fast.certificate.publicKey, signatureOnly: true })).toBe(true);
      // ...and openssl accepts the leaf for TLS client and server use.
      const leafFile = join(work, `${files.name}-${keyName.replace(/\W+/g, '_')}.pem`);
      writeFileSync(leafFile, f.certificate.toString('pem'));
      const at = String(Math.floor(files.clock.now().getTime() / 1000));
      const untrusted = files.untrustedFile ? ['-untrusted', files.untrustedFile] : [];
      for (const purpose of ['sslserver', 'sslclient']) {
        expect(openssl(['verify', '-attime', at, '-purpose', purpose, '-CAfile', files.rootFile, ...untrusted, leafFile])).toContain(': OK');
      }
    }
  });

  it('encodes the validity per RFC 5280 §4.1.2.5 across 2050', async () => {
    const { fast } = await pair(await generatedRoot('y2050-text', '2049-12-31T20:00:00Z'));
    const svid = await fast.signX509Svid({ spiffeId: 'spiffe://writ.local/t', publicKey: (await generateP256()).publicKey, ttl: 86400 });
    const text = openssl(['asn1parse'], { input: svid.certificate.toString('pem') });
    expect(text).toContain('UTCTIME           :491231195950Z');
    expect(text).toContain('GENERALIZEDTIME   :20500101200000Z');
  });

  it('keeps the @peculiar/x509 path for CA keys it does not cover (EC P-521)', async () => {
    const files = opensslRoot('p521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521']);
    const { fast } = await pair(files);
    expect(await LeafCertificateWriter.create(fast.certificate, await importSigningKey(files.keyPem))).toBeUndefined();
    const svid = await fast.signX509Svid({ spiffeId: 'spiffe://writ.local/p521', publicKey: (await generateP256()).publicKey, ttl: 600 });
    expect(svid.certificate).not.toBeInstanceOf(IssuedCertificate);
    expect(svid.certificate.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-512' } });
    const leafFile = join(work, 'p521-leaf.pem');
    writeFileSync(leafFile, svid.certificate.toString('pem'));
    expect(openssl(['verify', '-attime', String(Math.floor(files.clock.now().getTime() / 1000)), '-CAfile', files.rootFile, leafFile])).toContain(': OK');
  });

  it('hands out an X509Certificate that decodes on first use and behaves as one decoded from the same DER', async () => {
    const svid = await ca.signX509Svid({ spiffeId: 'spiffe://writ.local/lazy', publicKey: (await generateP256()).publicKey, ttl: 600, dnsNames: ['lazy.example'] });
    const lazy = svid.certificate;
    expect(lazy).toBeInstanceOf(IssuedCertificate);
    expect(lazy).toBeInstanceOf(x509.X509Certificate);
    const pem = lazy.toString('pem'); // before anything decodes it
    const eager = new x509.X509Certificate(pem);
    expect(hex(lazy.rawData)).toBe(hex(eager.rawData));
    expect(lazy.toString('base64')).toBe(eager.toString('base64'));
    expect(lazy.toString('hex')).toBe(eager.toString('hex'));
    expect([lazy.subject, lazy.issuer, lazy.serialNumber]).toEqual([eager.subject, eager.issuer, eager.serialNumber]);
    expect([lazy.notBefore, lazy.notAfter]).toEqual([eager.notBefore, eager.notAfter]);
    expect(lazy.signatureAlgorithm).toEqual(eager.signatureAlgorithm);
    expect(hex(lazy.signature)).toBe(hex(eager.signature));
    expect(hex(tbsOf(lazy))).toBe(hex(tbsOf(eager)));
    expect(hex(lazy.publicKey.rawData)).toBe(hex(eager.publicKey.rawData));
    expect(lazy.extensions.map((e) => hex(e.rawData))).toEqual(eager.extensions.map((e) => hex(e.rawData)));
    expect(lazy.getExtension(x509.SubjectAlternativeNameExtension)!.names.items).toEqual(eager.getExtension(x509.SubjectAlternativeNameExtension)!.names.items);
    expect(lazy.toString('text')).toBe(eager.toString('text'));
    expect(lazy.equal(eager)).toBe(true);
    expect(hex(await lazy.getThumbprint())).toBe(hex(await eager.getThumbprint()));
    expect(await lazy.isSelfSigned()).toBe(false);
    expect(await lazy.verify({ publicKey: ca.certificate.publicKey, date: clock.now() })).toBe(true);
  });
});

describe('server SVID rotation', () => {
  it('is due once two thirds of its life have passed, and renews with a new key and serial', async () => {
    const issued: string[] = [];
    const server = new ServerSvid({ ca }, {
      trustDomain: 'writ.local',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      ttl: 3000,
      clock,
      onIssued: async (svid) => {
        issued.push(svid.serialNumber);
      },
    });
    expect(server.dueForRenewal()).toBe(true);
    const first = await server.issue();
    expect(server.dueForRenewal()).toBe(false);
    clock.advance(1990); // backdated 10 s: 2000 s of a 3010 s life is not yet two thirds
    expect(server.dueForRenewal()).toBe(false);
    clock.advance(20);
    expect(server.dueForRenewal()).toBe(true);
    const second = await server.issue();
    expect(second.svid.serialNumber).not.toBe(first.svid.serialNumber);
    expect(second.keyPem).not.toBe(first.keyPem);
    expect(issued).toEqual([first.svid.serialNumber, second.svid.serialNumber]);
  });
});
