import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pemBlocks } from './csr';
import { toPkcs12 } from './pkcs12';

const dir = mkdtempSync(join(tmpdir(), 'writ-p12-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
};

describe('RFC 7292 PKCS#12 for an EC X.509-SVID', () => {
  beforeAll(() => {
    expect(openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=svid', '-days', '1']).ok).toBe(true);
  });

  it.each([['ASCII', 'correct horse'], ['non-ASCII (PBES2 takes UTF-8, the MAC a BMPString)', 'pässwörd €']])('opens in OpenSSL 3 without -legacy with a %s password, and not with another', (_, password) => {
    const key = createPrivateKey(readFileSync(join(dir, 'key.pem')));
    const chain = pemBlocks(readFileSync(join(dir, 'cert.pem'), 'utf8'));
    writeFileSync(join(dir, 'svid.p12'), toPkcs12({ key, chain, bundle: chain, password, friendlyName: 'spiffe://ex.test/a' }));
    const read = openssl(['pkcs12', '-info', '-in', 'svid.p12', '-nodes', '-passin', `pass:${password}`]);
    expect(read.ok).toBe(true);
    expect(read.out).toContain('MAC: sha256');
    expect((read.out.match(/BEGIN CERTIFICATE/g) ?? []).length).toBe(1); // a bundle certificate equal to the leaf is not repeated
    const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(read.out)![0];
    expect(createPublicKey(keyPem).export({ type: 'spki', format: 'pem' })).toBe(createPublicKey(key).export({ type: 'spki', format: 'pem' }));
    expect(openssl(['pkcs12', '-info', '-nokeys', '-in', 'svid.p12', '-passin', 'pass:wrong']).ok).toBe(false);
  });
});
