import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { openssl } from '../../test/support/openssl';
import { generateP256 } from './keys';
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

  it('§4.3: keyUsage has digitalSignature and neither keyCertSign nor cRLSign, critical', () => {
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages & x509.KeyUsageFlags.digitalSignature).toBeTruthy();
    expect(ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)).toBe(0);
  });

  it('§4.4: extKeyUsage serverAuth and clientAuth', () => {
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
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
    const server = new ServerSvid(ca, {
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
