import { createHash } from 'node:crypto';
import { contentOf, contextTag, ia5Octets, ipAddressOctets, octetString, oid, readChildren, readElement, sequence, TAG } from './der';
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
 * The X.509-SVID leaf extensions that do not depend on the subject, as DER Extension
 * encodings: made once per CA by the same @peculiar/x509 classes x509SvidExtensions uses,
 * so the fast issuance path writes exactly the same octets.
 */
export interface FixedLeafExtensions {
  readonly basicConstraints: Uint8Array;
  /** keyUsage for an EC or Ed25519 subject key, and for an RSA one (adds keyEncipherment). */
  readonly keyUsage: { readonly other: Uint8Array; readonly rsa: Uint8Array };
  readonly extKeyUsage: Uint8Array;
  readonly authorityKeyIdentifier: Uint8Array;
}

export async function fixedLeafExtensions(issuer: x509.X509Certificate): Promise<FixedLeafExtensions> {
  const der = (e: x509.Extension) => new Uint8Array(e.rawData);
  return {
    basicConstraints: der(new x509.BasicConstraintsExtension(false, undefined, true)),
    keyUsage: {
      other: der(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)),
      rsa: der(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true)),
    },
    extKeyUsage: der(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false)),
    authorityKeyIdentifier: der(await authorityKeyIdentifier(issuer)),
  };
}

const ID_CE_SUBJECT_ALT_NAME = oid('2.5.29.17');
const ID_CE_SUBJECT_KEY_IDENTIFIER = oid('2.5.29.14');

/** The subjectAltName Extension DER of a leaf (non-critical, so no critical field: DER omits a DEFAULT). */
export function subjectAltNameDer(profile: LeafProfile): Buffer {
  const names = [
    contextTag(6, false, ia5Octets(profile.spiffeId)), // uniformResourceIdentifier [6] IA5String
    ...profile.dnsNames.map((n) => contextTag(2, false, ia5Octets(n))), // dNSName [2] IA5String
    ...profile.ipAddresses.map((ip) => contextTag(7, false, ipAddressOctets(ip))), // iPAddress [7] OCTET STRING
  ];
  return sequence(ID_CE_SUBJECT_ALT_NAME, octetString(sequence(...names)));
}

/**
 * The subjectKeyIdentifier Extension DER: SHA-1 of the subjectPublicKey BIT STRING's value
 * (RFC 5280 §4.2.1.2 method 1, as SubjectKeyIdentifierExtension.create computes it).
 */
export function subjectKeyIdentifierDer(spki: Uint8Array): Buffer {
  const keyId = createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
  return sequence(ID_CE_SUBJECT_KEY_IDENTIFIER, octetString(octetString(keyId)));
}

/** The octets of a SubjectPublicKeyInfo's subjectPublicKey BIT STRING, without its unused-bits octet. */
export function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = readElement(spki);
  const [algorithm, key] = readChildren(spki, outer);
  if (outer.tag !== TAG.SEQUENCE || algorithm?.tag !== TAG.SEQUENCE || key?.tag !== TAG.BIT_STRING || key.end !== outer.end || outer.end !== spki.length) {
    throw new RangeError('not a DER SubjectPublicKeyInfo');
  }
  const bits = contentOf(spki, key);
  if (bits.length === 0 || bits[0] !== 0) throw new RangeError('the subjectPublicKey BIT STRING is not whole octets');
  return bits.subarray(1);
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
