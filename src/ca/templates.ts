import { x509 } from './x509';

/**
 * Certificate templates. Certificates are built from these and from policy (the
 * registration entry, the CA's own limits), never from what a requester asks for.
 */

/** Extensions of a root CA for a trust domain (X509-SVID §4.1, §4.3 for signing certificates). */
export async function signingCaExtensions(trustDomainId: string, publicKey: CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true), // X509-SVID §4.1: CA certificates set cA true
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true), // §4.3, critical
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId }], false), // §3: the trust domain's SPIFFE ID
    await x509.SubjectKeyIdentifierExtension.create(publicKey), // RFC 5280 §4.2.1.2
  ];
}

export interface LeafProfile {
  spiffeId: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/** Extensions of an X.509-SVID leaf (X509-SVID §4). */
export async function x509SvidExtensions(profile: LeafProfile, publicKey: CryptoKey, issuer: x509.X509Certificate): Promise<x509.Extension[]> {
  const san: x509.JsonGeneralName[] = [
    { type: 'url', value: profile.spiffeId }, // X509-SVID §2: exactly one URI SAN, the SPIFFE ID
    ...profile.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...profile.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  return [
    new x509.BasicConstraintsExtension(false, undefined, true), // X509-SVID §4.1: leaf sets cA false
    // §4.3: digitalSignature, never keyCertSign/cRLSign, critical. keyEncipherment only for
    // RSA keys: RFC 8813 §3 forbids it for EC keys.
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (publicKey.algorithm.name.startsWith('RSA') ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false), // §4.4
    new x509.SubjectAlternativeNameExtension(san, false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await authorityKeyIdentifier(issuer), // RFC 5280 §4.2.1.1
  ];
}

/**
 * A serial number with 128 random bits: 0x01 then 16 random octets, so it is positive
 * with no leading zero octet whatever the random bits are (RFC 5280 §4.1.2.2: positive,
 * at most 20 octets; CA/B Forum BR §7.1: at least 64 bits of randomness).
 */
export function serialNumber(random: Uint8Array): string {
  if (random.length < 16) throw new Error('a serial number needs 16 random octets');
  return `01${Buffer.from(random.subarray(0, 16)).toString('hex')}`;
}

/** The issuer's own key identifier when it has one, so chains build the way the issuer meant. */
async function authorityKeyIdentifier(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey);
}
