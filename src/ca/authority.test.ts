import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { openssl } from '../../test/support/openssl';
import { generateP256 } from './keys';
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
    const svid = await ca.signX509Svid({ spiffeId: 'spiffe://writ.local/writ/server', publicKey: keys.publicKey, ttl: 3600, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
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
  ])('refuses to sign for %s', async (_, override, message) => {
    const keys = await generateP256();
    await expect(ca.signX509Svid({ spiffeId: 'spiffe://writ.local/a', publicKey: keys.publicKey, ttl: 60, ...override })).rejects.toThrow(
      expect.objectContaining({ name: 'SvidRequestRejected', status: 400, message: expect.stringContaining(message) }),
    );
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
