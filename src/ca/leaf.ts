import { KeyObject, sign } from 'node:crypto';
import { contextTag, encodingOf, nullValue, oid, readChildren, readElement, sequence, bitString, smallInteger, time, unsignedInteger, TAG } from './der';
import type { SigningKey } from './keys';
import { fixedLeafExtensions, subjectAltNameDer, subjectKeyIdentifierDer, type FixedLeafExtensions, type LeafProfile } from './templates';
import { x509 } from './x509';

/**
 * The fast X.509-SVID issuance path: the TBSCertificate is written directly in DER and
 * signed with node:crypto's synchronous sign(), instead of being built, serialized and
 * re-parsed by @peculiar/x509's generic ASN.1 machinery and signed by a WebCrypto job.
 *
 * Everything that does not depend on the subject is encoded once per CA: the issuer
 * Name (verbatim from the CA certificate), the signatureAlgorithm, the subject Name,
 * and the fixed extensions (encoded by the same @peculiar/x509 classes as the generic
 * path, see templates.ts). The output is the certificate the generic path would write;
 * authority.test.ts compares the two byte for byte.
 */

/** What one leaf needs beyond the CA's constant parts. */
export interface LeafFields extends LeafProfile {
  /** The serial number as hex, as serialNumber() makes it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The subject's DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  /** An RSA subject key also gets keyEncipherment (X509-SVID §4.3; RFC 8813 forbids it for EC). */
  readonly rsaSubject: boolean;
}

interface SignatureScheme {
  /** The node:crypto digest name. */
  readonly digest: string;
  /** The DER AlgorithmIdentifier for signature and signatureAlgorithm. */
  readonly algorithmIdentifier: Uint8Array;
  readonly ecdsa: boolean;
}

const ECDSA_WITH: Record<string, { oid: string; digest: string }> = {
  'SHA-256': { oid: '1.2.840.10045.4.3.2', digest: 'sha256' },
  'SHA-384': { oid: '1.2.840.10045.4.3.3', digest: 'sha384' },
  'SHA-512': { oid: '1.2.840.10045.4.3.4', digest: 'sha512' },
};
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

const hashName = (hash: unknown): string | undefined =>
  typeof hash === 'string' ? hash : typeof hash === 'object' && hash !== null ? (hash as { name?: string }).name : undefined;

/**
 * The scheme the generic path would sign with, if the fast path covers it: ECDSA on
 * P-256 or P-384 (ecdsa-with-SHA*, RFC 5758 §3.2: no parameters), or RSASSA-PKCS1-v1_5
 * with SHA-256 (sha256WithRSAEncryption, RFC 4055 §5: NULL parameters).
 */
function signatureScheme(key: SigningKey): SignatureScheme | undefined {
  // X509CertificateGenerator signs with { hash: 'SHA-256', ...signingAlgorithm, ...privateKey.algorithm }.
  const keyAlg = key.privateKey.algorithm as KeyAlgorithm & { namedCurve?: string; hash?: unknown };
  const hash = hashName(keyAlg.hash ?? (key.signingAlgorithm as { hash?: unknown }).hash ?? 'SHA-256');
  if (keyAlg.name === 'ECDSA' && (keyAlg.namedCurve === 'P-256' || keyAlg.namedCurve === 'P-384') && key.signingAlgorithm.name === 'ECDSA') {
    const s = hash === undefined ? undefined : ECDSA_WITH[hash];
    return s && { digest: s.digest, algorithmIdentifier: sequence(oid(s.oid)), ecdsa: true };
  }
  if (keyAlg.name === 'RSASSA-PKCS1-v1_5' && key.signingAlgorithm.name === 'RSASSA-PKCS1-v1_5' && hash === 'SHA-256') {
    return { digest: 'sha256', algorithmIdentifier: sequence(oid(SHA256_WITH_RSA), nullValue()), ecdsa: false };
  }
  return undefined;
}

/** The subject Name of every X.509-SVID leaf, O=Writ, as @peculiar/x509 encodes it. */
const SUBJECT = new Uint8Array(new x509.Name('O=Writ').toArrayBuffer());
const VERSION_3 = contextTag(0, true, smallInteger(2));

/** The subject Name of a DER certificate, verbatim: the issuer Name of everything it signs. */
export function subjectNameDer(certificate: Uint8Array): Uint8Array {
  const cert = readElement(certificate);
  const tbs = readChildren(certificate, cert)[0];
  if (cert.tag !== TAG.SEQUENCE || tbs?.tag !== TAG.SEQUENCE) throw new RangeError('not a DER certificate');
  const fields = readChildren(certificate, tbs);
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0; // version [0] EXPLICIT, absent for v1
  const subject = fields[skip + 4]; // serialNumber, signature, issuer, validity, subject
  if (subject?.tag !== TAG.SEQUENCE) throw new RangeError('not a DER certificate');
  return encodingOf(certificate, subject);
}

export class LeafCertificateWriter {
  private constructor(
    private readonly signingKey: KeyObject,
    private readonly scheme: SignatureScheme,
    private readonly issuer: Uint8Array,
    private readonly fixed: FixedLeafExtensions,
  ) {}

  /** A writer for leaves signed by `issuer` with `key`; undefined if the fast path does not cover the key type. */
  static async create(issuer: x509.X509Certificate, key: SigningKey): Promise<LeafCertificateWriter | undefined> {
    const scheme = signatureScheme(key);
    if (!scheme) return undefined;
    return new LeafCertificateWriter(KeyObject.from(key.privateKey), scheme, subjectNameDer(new Uint8Array(issuer.rawData)), await fixedLeafExtensions(issuer));
  }

  /** The DER certificate for `leaf`, signed, in its own ArrayBuffer. */
  write(leaf: LeafFields): Uint8Array<ArrayBuffer> {
    const extensions = sequence(
      this.fixed.basicConstraints,
      leaf.rsaSubject ? this.fixed.keyUsage.rsa : this.fixed.keyUsage.other,
      this.fixed.extKeyUsage,
      subjectAltNameDer(leaf),
      subjectKeyIdentifierDer(leaf.spki),
      this.fixed.authorityKeyIdentifier,
    );
    const tbs = sequence(
      VERSION_3,
      unsignedInteger(Buffer.from(leaf.serialNumber, 'hex')),
      this.scheme.algorithmIdentifier,
      this.issuer,
      sequence(time(leaf.notBefore), time(leaf.notAfter)),
      SUBJECT,
      leaf.spki,
      contextTag(3, true, extensions),
    );
    // ECDSA: X.509's ECDSA-Sig-Value is the DER SEQUENCE { r, s } (RFC 5758 §3.2), OpenSSL's own form.
    const signature = sign(this.scheme.digest, tbs, this.scheme.ecdsa ? { key: this.signingKey, dsaEncoding: 'der' } : this.signingKey);
    return new Uint8Array(sequence(tbs, this.scheme.algorithmIdentifier, bitString(signature)));
  }
}

/**
 * An x509.X509Certificate over DER this process has just written and signed. It is decoded
 * only when a field is first read: issuing an SVID needs just its octets (rawData, PEM), and a
 * full @peculiar/x509 decode costs more than writing and signing it. Every other member
 * behaves as on an X509Certificate made from the same DER, from which it takes its ASN.1.
 */
export class IssuedCertificate extends x509.X509Certificate {
  readonly #der: ArrayBuffer;

  constructor(der: Uint8Array<ArrayBuffer>) {
    // The base class keeps an ASN.1 object it was given instead of decoding; that object is
    // `asn`, which is replaced here by one decoded on first use.
    super({} as never);
    this.#der = der.byteOffset === 0 && der.byteLength === der.buffer.byteLength ? der.buffer : der.slice().buffer;
    let decoded: unknown;
    Object.defineProperty(this, 'asn', {
      get: () => (decoded ??= (new x509.X509Certificate(this.#der) as unknown as { asn: unknown }).asn),
      configurable: false,
      enumerable: true,
    });
  }

  override get rawData(): ArrayBuffer {
    return this.#der;
  }
}
