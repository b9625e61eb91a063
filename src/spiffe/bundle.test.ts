import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { loadOrCreateCertificateAuthority } from '../ca';
import { toPemBundle, toSpiffeBundleDocument, type TrustBundle } from '.';

let bundle: TrustBundle;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bundle-'));
  const { value: ca } = await loadOrCreateCertificateAuthority({ dir, trustDomain: 'writ.local', caTtl: 86400, clock: new ManualClock(), random: systemRandom });
  const { kty, crv, x, y } = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  bundle = {
    trustDomain: 'writ.local',
    sequence: 7,
    refreshHint: 300,
    x509Authorities: [new Uint8Array(ca.anchor.rawData)],
    jwtAuthorities: [{ kid: 'key-1', publicJwk: { kty, crv, x, y } }],
  };
});

describe('SPIFFE Trust Domain and Bundle §4 format', () => {
  it('§4.1: carries spiffe_sequence and spiffe_refresh_hint at the top level', () => {
    const doc = toSpiffeBundleDocument(bundle);
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
  });

  it('§4.2.1: an X.509 authority has use x509-svid, exactly one x5c certificate, its key parameters and no kid', () => {
    const [key] = toSpiffeBundleDocument(bundle).keys.filter((k) => k.use === 'x509-svid');
    expect(key).toBeDefined();
    expect(key!.kid).toBeUndefined();
    expect(key!.x5c).toHaveLength(1);
    const cert = new X509Certificate(Buffer.from(key!.x5c![0]!, 'base64'));
    expect(cert.ca).toBe(true);
    const { kty, crv, x, y } = cert.publicKey.export({ format: 'jwk' });
    expect(key).toMatchObject({ kty, crv, x, y });
  });

  it('§4.2.2: a JWT authority has use jwt-svid and a kid', () => {
    const [key] = toSpiffeBundleDocument(bundle).keys.filter((k) => k.use === 'jwt-svid');
    expect(key).toMatchObject({ use: 'jwt-svid', kid: 'key-1', kty: 'EC', crv: 'P-256' });
    expect(key!.x5c).toBeUndefined();
  });

  it('renders the X.509 authorities as PEM that openssl-style parsers read', () => {
    const pem = toPemBundle(bundle);
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
    expect(new X509Certificate(pem).raw).toEqual(Buffer.from(bundle.x509Authorities[0]!));
  });
});
