import { KeyObject, verify } from 'node:crypto';
import { contentOf, readChildren, readElement, TAG } from './der';
import { CsrRejected } from './errors';
import { subtle, x509 } from './x509';

/**
 * PKCS#10 certificate signing requests (RFC 2986) for X.509-SVID issuance.
 *
 * A CSR is used for one thing only: its public key, once its signature proves the
 * requester holds the private key (RFC 2986 §3). Its subject, SANs and requested
 * extensions are ignored; the certificate is built from the template and the
 * registration entry (see templates.ts), never from what the CSR asks for.
 *
 * @example
 *   const csr = await parseCsr(body.csr);
 *   const svid = await ca.signX509Svid({ spiffeId, publicKey: csr.publicKey, ttl });
 */

/** The subject key types Writ certifies. */
export type CsrKeyType = 'P-256' | 'P-384' | 'Ed25519' | 'RSA';

/** A CSR whose signature verified: its public key, and nothing else from it. */
export interface VerifiedCsr {
  /** The subject's public key, extractable, for CertificateAuthority.signX509Svid. */
  readonly publicKey: CryptoKey;
  readonly keyType: CsrKeyType;
  /** The RSA modulus length in bits (RSA keys only). */
  readonly rsaModulusBits?: number;
}

/** The largest PEM text accepted, in characters; a CSR for an RSA-4096 key is about 1.7 KiB. */
export const MAX_CSR_PEM_LENGTH = 16 * 1024;
/** RSA keys need at least this many bits. */
export const MIN_RSA_MODULUS_BITS = 2048;
/** OpenSSL verifies no RSA signature over a larger modulus (OPENSSL_RSA_MAX_MODULUS_BITS). */
const MAX_RSA_MODULUS_BITS = 16384;
/** The only RSA public exponent Writ accepts: F4, what every toolkit generates (FIPS 186-5 §A.1.1 requires 2^16 < e < 2^256). */
export const RSA_PUBLIC_EXPONENT = 65537n;

/** Why an RSA public exponent is refused (e = 3 invites Bleichenbacher's 2006 PKCS#1 v1.5 signature forgery on lax verifiers), or undefined for 65537. */
export function rsaExponentProblem(exponent: bigint): string | undefined {
  return exponent === RSA_PUBLIC_EXPONENT ? undefined : `RSA public exponent ${exponent} is not allowed; use ${RSA_PUBLIC_EXPONENT}`;
}

/** A WebCrypto RSA key's public exponent (big-endian octets, RFC 8017 §3.1). */
const publicExponentOf = (key: CryptoKey): bigint => {
  const octets = (key.algorithm as RsaHashedKeyAlgorithm).publicExponent;
  return octets.reduce((e, octet) => (e << 8n) | BigInt(octet), 0n);
};

const ACCEPTED = 'Writ certifies EC P-256, EC P-384, Ed25519, and RSA keys of at least 2048 bits';
const SIGNATURE_HASHES = ['SHA-256', 'SHA-384', 'SHA-512'];
/** Signature algorithms (WebCrypto names) that prove possession of each key type. */
const SIGNATURES: Record<CsrKeyType, readonly string[]> = {
  'P-256': ['ECDSA'],
  'P-384': ['ECDSA'],
  Ed25519: ['Ed25519'],
  RSA: ['RSASSA-PKCS1-v1_5', 'RSA-PSS'],
};

const invalid = (message: string, cause?: unknown) => new CsrRejected('csr-invalid', message, cause);
const unsupported = (what: string) => new CsrRejected('unsupported-key', `unsupported key: ${what}; ${ACCEPTED}`);

/**
 * Parses a PEM PKCS#10 CSR, verifies its signature, and returns its public key if it is
 * of a type Writ certifies. Throws CsrRejected: `csr-invalid` (not one PEM CERTIFICATE
 * REQUEST, malformed, or a signature that does not verify), `key-too-weak` (RSA under
 * 2048 bits, or with a public exponent other than 65537) or `unsupported-key` (any other
 * key type or curve).
 */
export async function parseCsr(pem: string): Promise<VerifiedCsr> {
  const der = decodePem(pem);
  const csr = decodeCertificationRequest(der);
  const key = await importSubjectKey(csr);
  const signature = checkSignatureAlgorithm(csr, key.keyType);
  await verifyProofOfPossession(csr, der, key.publicKey, signature);
  return key;
}

/** RFC 7468: exactly one CERTIFICATE REQUEST block, nothing but whitespace around it. */
function decodePem(pem: string): Uint8Array<ArrayBuffer> {
  if (typeof pem !== 'string') throw invalid('a CSR must be PEM text');
  if (pem.length > MAX_CSR_PEM_LENGTH) throw invalid(`a CSR may be at most ${MAX_CSR_PEM_LENGTH} characters of PEM, got ${pem.length}`);
  const blocks = pem.match(/-----BEGIN /g)?.length ?? 0;
  if (blocks === 0) throw invalid('a CSR must be PEM: one "-----BEGIN CERTIFICATE REQUEST-----" block (RFC 7468 §7)');
  if (blocks > 1) throw invalid(`a CSR must be one PEM block, got ${blocks}`);
  const m = /^-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([A-Za-z0-9+/=\s]*)-----END ([A-Z0-9 ]{1,40})-----$/.exec(pem.trim());
  if (!m) throw invalid('a CSR must be one PEM block with base64 between its BEGIN and END lines (RFC 7468 §2), and nothing else');
  const [, label, body, endLabel] = m as unknown as [string, string, string, string];
  // RFC 7468 §7: "NEW CERTIFICATE REQUEST" is an older label parsers may accept.
  if (label !== 'CERTIFICATE REQUEST' && label !== 'NEW CERTIFICATE REQUEST') throw invalid(`expected a PEM CERTIFICATE REQUEST, got ${label}`);
  if (endLabel !== label) throw invalid(`the PEM block begins with ${label} but ends with ${endLabel}`);
  const base64 = body.replace(/\s+/g, '');
  if (base64.length === 0 || base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw invalid('the CSR\'s PEM body is not valid base64');
  return new Uint8Array(Buffer.from(base64, 'base64'));
}

/** The length the outer DER SEQUENCE says it has, header included; undefined if it is not one. */
function derSpan(der: Uint8Array): number | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 3 || der.length < 2 + octets) return undefined; // 0: BER indefinite length
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[2 + i]!;
  return 2 + octets + length;
}

/** Exposes the version, which @peculiar/x509 keeps in its protected ASN.1 object. */
class CertificationRequest extends x509.Pkcs10CertificateRequest {
  get version(): number {
    return this.asn.certificationRequestInfo.version;
  }
}

/** RFC 2986 §4: one DER CertificationRequest of version 0. */
function decodeCertificationRequest(der: Uint8Array<ArrayBuffer>): CertificationRequest {
  const span = derSpan(der);
  if (span === undefined) throw invalid('the CSR is not a DER CertificationRequest (RFC 2986 §4.2)');
  if (span > der.length) throw invalid(`the CSR is truncated: its DER encoding needs ${span} bytes, got ${der.length}`);
  if (span < der.length) throw invalid(`the CSR has ${der.length - span} bytes after its DER encoding`);
  let csr: CertificationRequest;
  try {
    csr = new CertificationRequest(der);
  } catch (err) {
    throw invalid('the CSR is not a valid PKCS#10 CertificationRequest (RFC 2986 §4)', err);
  }
  if (csr.version !== 0) throw invalid(`the CSR has version ${csr.version}; RFC 2986 §4.1 defines only version 0`);
  return csr;
}

/** Names a key algorithm Writ does not certify, as @peculiar/x509 describes it. */
function describeKey(alg: Algorithm & { namedCurve?: string }): string {
  if (alg.name === 'ECDSA') return `EC ${alg.namedCurve === 'K-256' ? 'secp256k1' : alg.namedCurve}`;
  if (alg.namedCurve !== undefined) return alg.namedCurve; // Ed448, X448
  const KNOWN: Record<string, string> = {
    '1.2.840.10045.2.1': 'EC on an unnamed or unknown curve',
    '1.2.840.10040.4.1': 'DSA',
    'RSA-PSS': 'RSA restricted to PSS (id-RSASSA-PSS, RFC 4055)',
  };
  return KNOWN[alg.name] ?? alg.name;
}

async function importSpki(csr: CertificationRequest, alg: EcKeyImportParams | RsaHashedImportParams | Algorithm): Promise<CryptoKey> {
  const spki = new Uint8Array(csr.publicKey.rawData);
  let key: CryptoKey;
  try {
    key = await subtle.importKey('spki', spki, alg, true, ['verify']);
  } catch (err) {
    throw invalid('the CSR\'s public key is malformed', err);
  }
  if (isCanonicalSpki(spki)) canonicalSpki.set(key, spki);
  return key;
}

/**
 * The DER SubjectPublicKeyInfo of keys parseCsr imported, when the CSR's encoding is the one
 * WebCrypto's exportKey('spki') would give back, so signing need not export it again (an
 * export of a newly imported key costs about as much as the import).
 */
const canonicalSpki = new WeakMap<CryptoKey, Uint8Array>();

/** The DER SubjectPublicKeyInfo of a key from parseCsr, if known; otherwise undefined. */
export function knownSpki(key: CryptoKey): Uint8Array | undefined {
  return canonicalSpki.get(key);
}

/**
 * SPKI prefixes whose encoding OpenSSL reproduces octet for octet on export: the named-curve
 * AlgorithmIdentifier then an uncompressed point (SEC 1 §2.3.3, 0x04) for P-256 and P-384,
 * and the RFC 8410 form for Ed25519. Anything else (a compressed point, say) is re-exported.
 */
const CANONICAL_SPKI_PREFIXES: ReadonlyArray<readonly [prefix: Buffer, length: number]> = [
  [Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), 91], // P-256
  [Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'), 120], // P-384
  [Buffer.from('302a300506032b6570032100', 'hex'), 44], // Ed25519
];

function isCanonicalSpki(spki: Uint8Array): boolean {
  return CANONICAL_SPKI_PREFIXES.some(([prefix, length]) => spki.length === length && Buffer.from(spki.buffer, spki.byteOffset, prefix.length).equals(prefix));
}

/** The subject public key, if it is of a type Writ certifies (X509-SVID leaves: P-256, P-384, Ed25519, RSA ≥ 2048). */
async function importSubjectKey(csr: CertificationRequest): Promise<VerifiedCsr> {
  let alg: Algorithm & { namedCurve?: string };
  try {
    alg = csr.publicKey.algorithm;
  } catch (err) {
    throw invalid('the CSR\'s subjectPublicKeyInfo cannot be read', err);
  }
  switch (alg.name) {
    case 'ECDSA': {
      const namedCurve = alg.namedCurve;
      if (namedCurve !== 'P-256' && namedCurve !== 'P-384') throw unsupported(describeKey(alg));
      return { publicKey: await importSpki(csr, { name: 'ECDSA', namedCurve }), keyType: namedCurve };
    }
    case 'Ed25519':
      return { publicKey: await importSpki(csr, { name: 'Ed25519' }), keyType: 'Ed25519' };
    case 'RSASSA-PKCS1-v1_5': {
      // rsaEncryption. The exact modulus length comes from the imported key: @peculiar/x509
      // rounds it to whole octets, which would pass a 2047-bit modulus as 2048.
      const publicKey = await importSpki(csr, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
      const bits = (publicKey.algorithm as RsaHashedKeyAlgorithm).modulusLength;
      if (bits < MIN_RSA_MODULUS_BITS) throw new CsrRejected('key-too-weak', `RSA keys need at least ${MIN_RSA_MODULUS_BITS} bits, got ${bits}`);
      if (bits > MAX_RSA_MODULUS_BITS) throw unsupported(`RSA keys of more than ${MAX_RSA_MODULUS_BITS} bits, got ${bits}`);
      const exponentProblem = rsaExponentProblem(publicExponentOf(publicKey));
      if (exponentProblem) throw new CsrRejected('key-too-weak', exponentProblem);
      return { publicKey, keyType: 'RSA', rsaModulusBits: bits };
    }
    default:
      throw unsupported(describeKey(alg));
  }
}

const hashName = (hash: unknown): string | undefined =>
  typeof hash === 'string' ? hash : typeof hash === 'object' && hash !== null ? (hash as { name?: string }).name : undefined;

/** The CSR's signature algorithm fits its key and uses a hash of SHA-256 or stronger; returns it. */
function checkSignatureAlgorithm(csr: CertificationRequest, keyType: CsrKeyType): Algorithm & { hash?: unknown } {
  let sig: Algorithm & { hash?: unknown };
  try {
    sig = csr.signatureAlgorithm;
  } catch (err) {
    throw invalid('the CSR\'s signature algorithm cannot be read', err);
  }
  if (!SIGNATURES[keyType].includes(sig.name)) throw invalid(`the CSR's signature algorithm ${sig.name} does not fit its ${keyType} key`);
  if (sig.name === 'Ed25519') return sig;
  const hash = hashName(sig.hash);
  if (hash === undefined || !SIGNATURE_HASHES.includes(hash)) {
    throw invalid(`the CSR is signed with ${hash ?? 'an unknown hash'}; Writ accepts ${SIGNATURE_HASHES.join(', ')}`);
  }
  return sig;
}

/** node:crypto digest names of the accepted hashes. */
const NODE_DIGEST: Record<string, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/**
 * The exact certificationRequestInfo octets the signature covers, and the signature
 * octets, read from the DER (which @peculiar/x509 has already decoded as a CertificationRequest).
 */
function signedParts(der: Uint8Array): { info: Uint8Array; signature: Uint8Array } {
  const outer = readElement(der);
  const [info, , signature] = readChildren(der, outer);
  if (info?.tag !== TAG.SEQUENCE || signature?.tag !== TAG.BIT_STRING) throw new RangeError('not a CertificationRequest');
  const bits = contentOf(der, signature);
  if (bits.length === 0 || bits[0] !== 0) throw new RangeError('the signature BIT STRING is not whole octets');
  return { info: der.subarray(info.start, info.end), signature: bits.subarray(1) };
}

/**
 * RFC 2986 §3: the signature over certificationRequestInfo verifies with the CSR's own key.
 * ECDSA, Ed25519 and RSASSA-PKCS1-v1_5 verify synchronously with node:crypto, using the key
 * already imported; RSA-PSS (whose parameters @peculiar/x509 maps) goes through WebCrypto.
 */
async function verifyProofOfPossession(csr: CertificationRequest, der: Uint8Array, publicKey: CryptoKey, sig: Algorithm & { hash?: unknown }): Promise<void> {
  let ok: boolean;
  try {
    if (sig.name === 'RSA-PSS') {
      ok = await csr.verify();
    } else {
      const { info, signature } = signedParts(der);
      const key = KeyObject.from(publicKey);
      if (sig.name === 'Ed25519') ok = verify(null, info, key, signature);
      else {
        const digest = NODE_DIGEST[hashName(sig.hash)!]!;
        // ECDSA: the CSR carries the DER ECDSA-Sig-Value (RFC 5758 §3.2), node:crypto's dsaEncoding 'der'.
        ok = verify(digest, info, sig.name === 'ECDSA' ? { key, dsaEncoding: 'der' } : key, signature);
      }
    }
  } catch (err) {
    throw invalid('the CSR\'s signature is malformed', err);
  }
  if (!ok) throw invalid('the CSR\'s signature does not verify with its public key (RFC 2986 §3: no proof of possession)');
}
