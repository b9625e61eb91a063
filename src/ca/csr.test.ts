import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { openssl } from '../../test/support/openssl';
import { MAX_CSR_PEM_LENGTH, parseCsr, type VerifiedCsr } from './csr';
import { CsrRejected } from './errors';
import { subtle } from './x509';
import { loadOrCreateCertificateAuthority, x509, type CertificateAuthority } from '.';

// CSRs come from the openssl CLI, a tool Writ did not write.

const clock = new ManualClock('2026-11-27T12:00:00Z');
let dir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-csr-'));
  ca = (await loadOrCreateCertificateAuthority({ dir, trustDomain: 'writ.local', caTtl: 30 * 86400, clock, random: systemRandom })).value;
});

const EC = (curve: string) => ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`];

/** `openssl req -new` with a new key; returns the CSR's PEM (written to <name>.csr in the temp dir). */
function makeCsr(name: string, keyArgs: string[], extra: string[] = []): string {
  openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=requester', ...extra], { cwd: dir });
  return readFileSync(join(dir, `${name}.csr`), 'utf8');
}

/** `openssl genpkey` then `openssl req -new -key`, for key types `req -newkey` cannot make directly. */
function makeCsrFromGenpkey(name: string, genpkeyArgs: string[]): string {
  openssl(['genpkey', ...genpkeyArgs, '-out', `${name}.key`], { cwd: dir });
  openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=requester'], { cwd: dir });
  return readFileSync(join(dir, `${name}.csr`), 'utf8');
}

const rejected = (code: string, message: string | RegExp) =>
  expect.objectContaining({
    name: 'CsrRejected',
    code,
    type: `urn:writ:problem:${code}`,
    status: 400,
    message: typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message),
  });

// ---- DER helpers to build CSRs that openssl will not make ----

const toPem = (der: Uint8Array, label = 'CERTIFICATE REQUEST') =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
const fromPem = (pem: string) => new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));

function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const content = Buffer.concat(parts);
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Uint8Array.from([tag, ...len]), content]);
}

/** The TLVs inside a constructed DER element. */
function children(der: Uint8Array): Uint8Array[] {
  const header = (at: number): [number, number] => {
    const first = der[at + 1]!;
    if (first < 0x80) return [2, first];
    let len = 0;
    for (let i = 0; i < (first & 0x7f); i++) len = len * 256 + der[at + 2 + i]!;
    return [2 + (first & 0x7f), len];
  };
  const [h, len] = header(0);
  const out: Uint8Array[] = [];
  for (let at = h; at < h + len; ) {
    const [ch, clen] = header(at);
    out.push(der.subarray(at, at + ch + clen));
    at += ch + clen;
  }
  return out;
}

/** [certificationRequestInfo, signatureAlgorithm, signature] of a CSR. */
const csrParts = (pem: string) => children(fromPem(pem)) as [Uint8Array, Uint8Array, Uint8Array];
const assemble = (tbs: Uint8Array, alg: Uint8Array, sig: Uint8Array) => toPem(tlv(0x30, tbs, alg, sig));

// ---- helpers to sign and inspect ----

async function issue(csr: VerifiedCsr, path: string, dnsNames?: string[]) {
  return ca.signX509Svid({ spiffeId: `spiffe://writ.local/${path}`, publicKey: csr.publicKey, ttl: 600, ...(dnsNames ? { dnsNames } : {}) });
}

/** openssl verify of a leaf against the CA, at the test clock's time. */
function opensslVerify(leaf: x509.X509Certificate, name: string): string {
  const path = join(dir, `${name}.leaf.pem`);
  writeFileSync(path, leaf.toString('pem'));
  const at = String(Math.floor(clock.now().getTime() / 1000));
  return openssl(['verify', '-attime', at, '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.crt'), path]);
}

describe('CSR checks (RFC 2986)', () => {
  it.each([
    ['EC P-256', 'p256', EC('P-256'), 'P-256', undefined, x509.KeyUsageFlags.digitalSignature],
    ['EC P-384', 'p384', EC('P-384'), 'P-384', undefined, x509.KeyUsageFlags.digitalSignature],
    ['Ed25519', 'ed25519', ['-newkey', 'ed25519'], 'Ed25519', undefined, x509.KeyUsageFlags.digitalSignature],
    ['RSA-2048', 'rsa2048', ['-newkey', 'rsa:2048'], 'RSA', 2048, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment],
    ['RSA-3072, signed with RSA-PSS', 'rsa3072pss', ['-newkey', 'rsa:3072', '-sigopt', 'rsa_padding_mode:pss'], 'RSA', 3072,
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment],
  ])('accepts a CSR for %s, and the leaf it gets verifies with openssl', async (_, name, keyArgs, keyType, bits, usages) => {
    const csr = await parseCsr(makeCsr(name, keyArgs));
    expect(csr.keyType).toBe(keyType);
    expect(csr.rsaModulusBits).toBe(bits);
    expect(csr.publicKey.type).toBe('public');

    const svid = await issue(csr, `agent/${name}`);
    expect(opensslVerify(svid.certificate, name)).toContain(': OK');
    // The leaf certifies exactly the key in the CSR.
    const csrKey = openssl(['req', '-in', `${name}.csr`, '-pubkey', '-noout'], { cwd: dir });
    const leafKey = openssl(['x509', '-in', `${name}.leaf.pem`, '-pubkey', '-noout'], { cwd: dir });
    expect(leafKey).toBe(csrKey);
    // X509-SVID §4.3: digitalSignature, critical; keyEncipherment for RSA only (RFC 8813 forbids it for EC).
    const ku = svid.certificate.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(usages);
  });

  it('accepts the "NEW CERTIFICATE REQUEST" label (RFC 7468 §7), CRLF line ends and surrounding whitespace', async () => {
    const pem = makeCsr('newhdr', EC('P-256'), ['-newhdr']);
    expect(pem).toContain('-----BEGIN NEW CERTIFICATE REQUEST-----');
    expect((await parseCsr(pem)).keyType).toBe('P-256');
    expect((await parseCsr(`\n  ${makeCsr('crlf', EC('P-256')).replace(/\n/g, '\r\n')}\r\n\n`)).keyType).toBe('P-256');
  });

  it('§4.1: refuses a version other than 0', async () => {
    const [tbs, alg, sig] = csrParts(makeCsr('v2', EC('P-256')));
    const [, ...rest] = children(tbs);
    const v2 = tlv(0x30, tlv(0x02, Uint8Array.of(1)), ...rest);
    await expect(parseCsr(assemble(v2, alg, sig))).rejects.toThrow(rejected('csr-invalid', 'the CSR has version 1; RFC 2986 §4.1 defines only version 0'));
  });
});

describe('RFC 2986 §3: the signature proves possession of the key', () => {
  it.each([
    ['EC P-256', 'tamper-p256', EC('P-256')],
    ['Ed25519', 'tamper-ed25519', ['-newkey', 'ed25519']],
    ['RSA-2048', 'tamper-rsa', ['-newkey', 'rsa:2048']],
  ])('refuses a CSR for %s with a byte of its signature flipped', async (_, name, keyArgs) => {
    const pem = makeCsr(name, keyArgs);
    await expect(parseCsr(pem)).resolves.toBeDefined();
    const der = fromPem(pem);
    der[der.length - 1]! ^= 0x01; // the signature BIT STRING ends the CertificationRequest
    await expect(parseCsr(toPem(der))).rejects.toThrow(rejected('csr-invalid', "the CSR's signature does not verify with its public key"));
  });

  it('refuses a CSR whose signed content was changed after signing', async () => {
    const pem = makeCsr('tamper-subject', EC('P-256'), ['-subj', '/CN=alice']);
    const der = Buffer.from(fromPem(pem));
    const at = der.indexOf('alice');
    der[at] = 'm'.charCodeAt(0); // CN=mlice
    await expect(parseCsr(toPem(der))).rejects.toThrow(rejected('csr-invalid', 'does not verify with its public key'));
  });

  it('refuses a signature algorithm that does not fit the key', async () => {
    const [, ecdsaAlg] = csrParts(makeCsr('alg-ec', EC('P-256')));
    const [tbs, , sig] = csrParts(makeCsr('alg-ed', ['-newkey', 'ed25519']));
    await expect(parseCsr(assemble(tbs, ecdsaAlg, sig))).rejects.toThrow(rejected('csr-invalid', 'signature algorithm ECDSA does not fit its Ed25519 key'));
  });

  it('refuses a CSR signed with SHA-1', async () => {
    const pem = makeCsr('sha1', EC('P-256'), ['-sha1']);
    await expect(parseCsr(pem)).rejects.toThrow(rejected('csr-invalid', 'the CSR is signed with SHA-1; Writ accepts SHA-256, SHA-384, SHA-512'));
  });

  it('refuses a public key that is not a point on its curve', async () => {
    const der = fromPem(makeCsr('bad-point', EC('P-256')));
    const [tbs] = children(der);
    const spki = Buffer.from(children(tbs)[2]!);
    spki[spki.length - 1]! ^= 0x01; // last octet of the point's y coordinate
    const at = Buffer.from(der).indexOf(Buffer.from(children(tbs)[2]!));
    der.set(spki, at);
    await expect(parseCsr(toPem(der))).rejects.toThrow(rejected('csr-invalid', "the CSR's public key is malformed"));
  });
});

describe('subject keys Writ certifies: EC P-256/P-384, Ed25519, RSA ≥ 2048', () => {
  it('refuses RSA-1024 as too weak, naming the size', async () => {
    await expect(parseCsr(makeCsr('rsa1024', ['-newkey', 'rsa:1024']))).rejects.toThrow(rejected('key-too-weak', 'RSA keys need at least 2048 bits, got 1024'));
  });

  it('refuses an RSA key whose public exponent is not 65537, naming it (openssl genpkey rsa_keygen_pubexp)', async () => {
    const e3 = makeCsrFromGenpkey('rsa-e3', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3']);
    await expect(parseCsr(e3)).rejects.toThrow(rejected('key-too-weak', 'RSA public exponent 3 is not allowed; use 65537'));
    const e17 = makeCsrFromGenpkey('rsa-e17', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:17']);
    await expect(parseCsr(e17)).rejects.toThrow(rejected('key-too-weak', 'RSA public exponent 17 is not allowed; use 65537'));
    const f4 = makeCsrFromGenpkey('rsa-f4', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:65537']);
    await expect(parseCsr(f4)).resolves.toMatchObject({ keyType: 'RSA', rsaModulusBits: 2048 });
  });

  it('counts RSA modulus bits exactly: 2047 bits is too weak', async () => {
    await expect(parseCsr(makeCsr('rsa2047', ['-newkey', 'rsa:2047']))).rejects.toThrow(rejected('key-too-weak', 'RSA keys need at least 2048 bits, got 2047'));
  });

  it.each([
    ['EC P-521', () => makeCsr('p521', EC('P-521')), 'unsupported key: EC P-521'],
    ['EC secp256k1', () => makeCsr('k256', EC('secp256k1')), 'unsupported key: EC secp256k1'],
    ['Ed448', () => makeCsr('ed448', ['-newkey', 'ed448']), 'unsupported key: Ed448'],
    ['DSA', () => makeCsrFromGenpkey('dsa', ['-paramfile', paramFile('dsa', ['-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:2048'])]), 'unsupported key: DSA'],
    ['RSA-PSS-only (id-RSASSA-PSS)', () => makeCsr('rsapss', ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048']), 'unsupported key: RSA restricted to PSS'],
  ])('refuses %s keys as unsupported-key', async (_, make, message) => {
    const err = await parseCsr(make()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsrRejected);
    expect(err).toEqual(rejected('unsupported-key', message));
    expect((err as Error).message).toContain('Writ certifies EC P-256, EC P-384, Ed25519, and RSA keys of at least 2048 bits');
  });

  it('refuses an RSA modulus larger than OpenSSL will verify (16384 bits)', async () => {
    const [, alg, sig] = csrParts(makeCsr('rsa-template', ['-newkey', 'rsa:2048']));
    const modulus = Buffer.concat([Uint8Array.of(0), Buffer.alloc(16392 / 8, 0xff)]); // 16392 bits, positive
    const rsaPublicKey = tlv(0x30, tlv(0x02, modulus), tlv(0x02, Uint8Array.of(1, 0, 1)));
    const rsaEncryption = tlv(0x30, tlv(0x06, Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01)), tlv(0x05));
    const spki = tlv(0x30, rsaEncryption, tlv(0x03, Uint8Array.of(0), rsaPublicKey));
    const tbs = tlv(0x30, tlv(0x02, Uint8Array.of(0)), tlv(0x30), spki, tlv(0xa0));
    await expect(parseCsr(assemble(tbs, alg, sig))).rejects.toThrow(rejected('unsupported-key', 'RSA keys of more than 16384 bits, got 16392'));
  });
});

function paramFile(name: string, args: string[]): string {
  openssl(['genpkey', '-genparam', ...args, '-out', `${name}.param`], { cwd: dir });
  return `${name}.param`;
}

describe('RFC 7468 PEM: exactly one CERTIFICATE REQUEST block', () => {
  let good: string;
  beforeAll(() => {
    good = makeCsr('pem', EC('P-256'));
  });

  it.each<[string, () => unknown, string]>([
    ['an empty string', () => '', 'a CSR must be PEM'],
    ['text that is not PEM', () => 'please sign my key', 'a CSR must be PEM'],
    ['bare base64 DER, without PEM boundaries', () => Buffer.from(fromPem(good)).toString('base64'), 'a CSR must be PEM'],
    ['a value that is not a string', () => ({ csr: good }), 'a CSR must be PEM text'],
    ['a certificate', () => readFileSync(join(dir, 'ca.crt'), 'utf8'), 'expected a PEM CERTIFICATE REQUEST, got CERTIFICATE'],
    ['a private key', () => readFileSync(join(dir, 'pem.key'), 'utf8'), 'expected a PEM CERTIFICATE REQUEST, got PRIVATE KEY'],
    ['two CSRs', () => good + good, 'a CSR must be one PEM block, got 2'],
    ['explanatory text around the block', () => `Subject: CN=requester\n${good}`, 'and nothing else'],
    ['RFC 1421 headers in the block', () => good.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\n\n'), 'and nothing else'],
    ['mismatched BEGIN and END labels', () => good.replace('END CERTIFICATE REQUEST', 'END NEW CERTIFICATE REQUEST'), 'ends with NEW CERTIFICATE REQUEST'],
    ['a body that is not base64', () => good.replace(/\n[A-Za-z0-9+/]{4}/, '\n====='), 'is not valid base64'],
    ['random bytes', () => toPem(Uint8Array.from([0x04, 0x02, 0x01, 0x02])), 'not a DER CertificationRequest'],
    ['a DER SEQUENCE that is not a CertificationRequest', () => toPem(tlv(0x30, tlv(0x02, Uint8Array.of(0)))), 'not a valid PKCS#10 CertificationRequest'],
    ['a truncated CSR', () => toPem(fromPem(good).subarray(0, 100)), 'the CSR is truncated'],
    ['bytes after the DER', () => toPem(Buffer.concat([fromPem(good), Uint8Array.of(0, 0)])), 'the CSR has 2 bytes after its DER encoding'],
    ['PEM over 16 KiB', () => good.replace('-----\n', `-----\n${'A'.repeat(64).concat('\n').repeat(260)}`), `at most ${MAX_CSR_PEM_LENGTH} characters`],
  ])('refuses %s as csr-invalid', async (_, input, message) => {
    await expect(parseCsr(input() as string)).rejects.toThrow(rejected('csr-invalid', message));
  });
});

describe('X509-SVID §4: the CA builds the leaf from its template, never from the CSR', () => {
  it('accepts a CSR that asks for CA:true, keyCertSign and other SANs, and issues a leaf with none of them', async () => {
    const pem = makeCsr('greedy', EC('P-256'), [
      '-subj', '/CN=Evil Root/O=Not Writ',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectAltName=URI:spiffe://writ.local/admin,URI:spiffe://other.test/x,DNS:evil.example,IP:10.0.0.1',
      '-addext', 'extendedKeyUsage=codeSigning',
    ]);
    // The CSR really asks for all of it.
    const asked = openssl(['req', '-in', 'greedy.csr', '-noout', '-text'], { cwd: dir });
    for (const ask of ['CA:TRUE', 'Certificate Sign', 'URI:spiffe://writ.local/admin', 'DNS:evil.example', 'IP Address:10.0.0.1', 'Code Signing']) expect(asked).toContain(ask);

    const svid = await issue(await parseCsr(pem), 'agent/plain');
    const leaf = svid.certificate;
    expect(leaf.subject).toBe('O=Writ');
    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical]).toEqual([false, true]);
    expect(leaf.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => [n.type, n.value])).toEqual([['url', 'spiffe://writ.local/agent/plain']]);

    expect(opensslVerify(leaf, 'greedy')).toContain(': OK');
    const text = openssl(['x509', '-in', 'greedy.leaf.pem', '-noout', '-text'], { cwd: dir });
    expect(text).toContain('CA:FALSE');
    expect(text).not.toMatch(/evil|other\.test|spiffe:\/\/writ\.local\/admin|Certificate Sign|Code Signing/i);
  });
});

describe('the subject key the leaf certifies', () => {
  it('is the key WebCrypto exports, also when the CSR encodes its point compressed', async () => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'compressed.key'], { cwd: dir });
    openssl(['ec', '-in', 'compressed.key', '-conv_form', 'compressed', '-out', 'compressed-form.key'], { cwd: dir });
    openssl(['req', '-new', '-key', 'compressed-form.key', '-out', 'compressed.csr', '-subj', '/CN=requester'], { cwd: dir });
    const pem = readFileSync(join(dir, 'compressed.csr'), 'utf8');
    const [tbs] = csrParts(pem);
    expect(Buffer.from(children(tbs)[2]!).length).toBeLessThan(91); // the CSR's SPKI carries a 33-octet point
    for (const path of ['compressed', 'uncompressed']) {
      const csr = await parseCsr(path === 'compressed' ? pem : makeCsr('uncompressed', EC('P-256')));
      const svid = await issue(csr, `spki/${path}`);
      expect(Buffer.from(svid.certificate.publicKey.rawData)).toEqual(Buffer.from(await subtle.exportKey('spki', csr.publicKey)));
      expect(opensslVerify(svid.certificate, `spki-${path}`)).toContain(': OK');
    }
  });
});

describe('X509-SVID §4.3 key usage for an RSA key under either WebCrypto name', () => {
  it.each(['RSASSA-PKCS1-v1_5', 'RSA-PSS'])('gives keyEncipherment to an RSA key imported as %s', async (name) => {
    const csr = await parseCsr(makeCsr(`ku-${name}`, ['-newkey', 'rsa:2048']));
    const spki = await subtle.exportKey('spki', csr.publicKey);
    const publicKey = await subtle.importKey('spki', spki, { name, hash: 'SHA-256' }, true, ['verify']);
    expect(publicKey.algorithm.name).toBe(name);
    const svid = await ca.signX509Svid({ spiffeId: `spiffe://writ.local/ku/${name}`, publicKey, ttl: 60 });
    expect(svid.certificate.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(Buffer.from(svid.certificate.publicKey.rawData)).toEqual(Buffer.from(spki));
  });
});
