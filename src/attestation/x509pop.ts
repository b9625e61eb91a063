import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { rsaExponentProblem } from '../ca/csr';
import { x509 } from '../ca/x509';
import type { Clock } from '../core/clock';
import { ConfigError } from '../config/errors';
import type { AttestationContext, AttestationResult, Attestor } from './attestor';
import { AttestationError } from './errors';

/**
 * The `x509pop` attestor: X.509 proof of possession against an existing enterprise PKI.
 *
 * The connector presents a certificate of its PKI as its TLS client certificate when it
 * calls the attest endpoint. The TLS handshake (CertificateVerify) proves that it holds
 * the key; the HTTPS server accepts any client certificate and hands the chain it saw
 * (DER, leaf first) to this attestor, which validates the path to a configured CA as
 * RFC 5280 §6 describes and answers with selectors read from the certificate alone:
 *
 *   x509pop:subject_cn:<CN>          x509pop:ca:<sha256 of the trust anchor's DER, hex>
 *   x509pop:serial:<hex, lowercase>  x509pop:san:dns:<name>   x509pop:san:uri:<uri>
 *   x509pop:subject:<RFC 4514 string of the subject>
 *
 * @example
 * const attestor = new X509PopAttestor({ ca_bundle_file: '/etc/writ/pki-roots.pem' }, { clock: systemClock });
 * const { selectors } = await attestor.attest({}, { peerCertificates: tlsChainDer });
 */

/** The `x509pop:` section of the config file. Paths are read as given (relative to the working directory). */
export const x509popConfigSchema = z.strictObject({
  /** PEM file with one or more trusted CA certificates (the trust anchors). */
  ca_bundle_file: z.string().min(1),
  /** PEM file with intermediate CA certificates that connectors need not send themselves. */
  intermediates_file: z.string().min(1).optional(),
});
export type X509PopConfig = z.infer<typeof x509popConfigSchema>;

export interface X509PopDeps {
  readonly clock: Clock;
}

/** The longest certification path accepted, trust anchor included; also the most certificates a client may present. */
export const MAX_PATH_CERTIFICATES = 5;
/** How many candidate paths are tried before giving up (cross-signed PKIs can offer several). */
const MAX_CANDIDATE_PATHS = 16;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const OID = {
  commonName: '2.5.4.3',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
  nameConstraints: '2.5.29.30',
} as const;

/**
 * Extensions whose meaning this attestor processes, or which cannot narrow what a
 * certificate is valid for; any other extension marked critical refuses the path
 * (RFC 5280 §4.2: a certificate-using system MUST reject a certificate with an
 * unrecognised critical extension).
 */
const UNDERSTOOD_EXTENSIONS: ReadonlyMap<string, string> = new Map([
  ['2.5.29.14', 'subjectKeyIdentifier'],
  ['2.5.29.15', 'keyUsage'],
  ['2.5.29.17', 'subjectAltName'],
  ['2.5.29.18', 'issuerAltName'],
  ['2.5.29.19', 'basicConstraints'],
  ['2.5.29.35', 'authorityKeyIdentifier'],
  ['2.5.29.37', 'extendedKeyUsage'],
  // Policies are processed with initial-policy-set anyPolicy and no explicit policy
  // required (RFC 5280 §6.1.1), under which certificatePolicies never refuses a path;
  // policyConstraints, which could change that, is not understood and so refuses.
  ['2.5.29.32', 'certificatePolicies'],
]);

/** Signature algorithms whose hash no longer resists collisions (RFC 6151, RFC 9155, SHAttered). */
const WEAK_SIGNATURES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.113549.1.1.2', 'md2WithRSAEncryption'],
  ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.113549.1.1.5', 'sha1WithRSAEncryption'],
  ['1.2.840.10045.4.1', 'ecdsa-with-SHA1'],
  ['1.2.840.10040.4.3', 'dsa-with-sha1'],
]);

/** A parsed certificate: Node's view (signatures), @peculiar/x509's (extensions), and the raw names. */
interface Cert {
  readonly der: Buffer;
  readonly node: NodeX509;
  readonly parsed: x509.X509Certificate;
  /** DER of the subject and issuer Names, for exact name chaining (RFC 5280 §6.1.3 (a)(4)). */
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly signatureOid: string;
  /** The subject as an RFC 4514 string. */
  readonly subject: string;
}

/** A candidate certification path: leaf first, trust anchor last. */
type Path = readonly Cert[];

/**
 * The sha256 fingerprint of a CA certificate's DER, lowercase hex: the value of the
 * `x509pop:ca:` selector of connectors that chain to it.
 *
 * @example caFingerprint(readFileSync('root.pem', 'utf8')) // 'e3b0c442…'
 */
export function caFingerprint(pemOrDer: string | Uint8Array): string {
  let der: Buffer;
  if (typeof pemOrDer === 'string') {
    const blocks = pemOrDer.match(PEM_CERT) ?? [];
    if (blocks.length !== 1) throw new Error(`expected exactly one PEM certificate, found ${blocks.length}`);
    der = new NodeX509(blocks[0]!).raw;
  } else {
    der = new NodeX509(Buffer.from(pemOrDer)).raw;
  }
  return sha256Hex(der);
}

export class X509PopAttestor implements Attestor {
  readonly name = 'x509pop';
  readonly #anchors: readonly Cert[];
  readonly #intermediates: readonly Cert[];
  readonly #clock: Clock;

  /** Reads and checks the configured certificates; a missing, unreadable or unsuitable file throws a ConfigError naming it. */
  constructor(config: X509PopConfig, deps: X509PopDeps) {
    const checked = x509popConfigSchema.safeParse(config);
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      throw new ConfigError(['x509pop', ...issue.path.map(String)].join('.'), issue.message, checked.error);
    }
    const parsed = checked.data;
    this.#clock = deps.clock;
    this.#anchors = readCaFile('ca_bundle_file', parsed.ca_bundle_file);
    this.#intermediates = parsed.intermediates_file === undefined ? [] : readCaFile('intermediates_file', parsed.intermediates_file);
  }

  async attest(evidence: Record<string, unknown>, context: AttestationContext): Promise<AttestationResult> {
    const extra = Object.keys(evidence);
    if (extra.length > 0) {
      throw new AttestationError('invalid-evidence', `x509pop evidence is an empty object (the proof is the TLS client certificate); unexpected: ${extra.slice(0, 5).join(', ')}`);
    }
    const presented = context.peerCertificates;
    if (presented.length === 0) {
      throw new AttestationError('client-certificate-required', 'x509pop needs a TLS client certificate of the enterprise PKI; none was presented');
    }
    if (presented.length > MAX_PATH_CERTIFICATES) {
      throw refuse(`the client presented ${presented.length} certificates; at most ${MAX_PATH_CERTIFICATES} are accepted`);
    }
    const chain = presented.map((der, i) => {
      try {
        return parseCertificate(der);
      } catch (err) {
        throw refuse(`${i === 0 ? 'the client certificate' : `certificate ${i} of the client chain`} cannot be parsed`, err);
      }
    });
    const path = this.#validPath(chain[0]!, chain.slice(1));
    return { selectors: selectorsFor(path[0]!, path[path.length - 1]!) };
  }

  /** Builds the candidate paths from the leaf to a trust anchor and returns the first that validates. */
  #validPath(leaf: Cert, sent: readonly Cert[]): Path {
    const { paths, failure } = buildPaths(leaf, sent, this.#intermediates, this.#anchors);
    if (paths.length === 0) throw refuse(failure);
    const now = this.#clock.now();
    let firstReason: string | undefined;
    for (const path of paths) {
      const reason = validatePath(path, now);
      if (reason === undefined) return path;
      firstReason ??= reason;
    }
    throw refuse(firstReason!);
  }
}

const refuse = (reason: string, cause?: unknown): AttestationError => new AttestationError('invalid-evidence', reason, cause);

function readCaFile(setting: 'ca_bundle_file' | 'intermediates_file', file: string): Cert[] {
  const key = `x509pop.${setting}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read "${file}": ${(err as Error).message}`, err);
  }
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new ConfigError(key, `"${file}" holds no PEM certificate`);
  return blocks.map((pem, i) => {
    let cert: Cert;
    try {
      cert = parseCertificate(new NodeX509(pem).raw);
    } catch (err) {
      throw new ConfigError(key, `certificate ${i + 1} in "${file}" cannot be parsed: ${(err as Error).message}`, err);
    }
    const what = `certificate ${i + 1} in "${file}" (${cert.subject})`;
    const bc = cert.parsed.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw new ConfigError(key, `${what} is not a CA certificate (basicConstraints cA is not true)`);
    const ku = cert.parsed.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) throw new ConfigError(key, `${what} lacks keyUsage keyCertSign`);
    return cert;
  });
}

function parseCertificate(input: Uint8Array): Cert {
  const der = Buffer.from(input);
  const node = new NodeX509(der);
  const parsed = new x509.X509Certificate(der);
  const fields = certificateFields(der);
  return { der, node, parsed, ...fields, subject: rfc4514(fields.subjectDer) };
}

// ---------------------------------------------------------------------------------------
// Path building (RFC 5280 §6 leaves it to the implementation; RFC 4158 describes it).

interface BuiltPaths {
  readonly paths: readonly Path[];
  /** Why no path was found, when none was. */
  readonly failure: string;
}

/**
 * Every path, up to MAX_PATH_CERTIFICATES long, from the leaf through the intermediates
 * (those the client sent, then the configured ones) to a trust anchor, in which each
 * certificate names the next as its issuer and verifies with its key.
 */
function buildPaths(leaf: Cert, sent: readonly Cert[], configured: readonly Cert[], anchors: readonly Cert[]): BuiltPaths {
  const anchorDers = new Set(anchors.map((a) => a.der.toString('base64')));
  const seen = new Set<string>([leaf.der.toString('base64')]);
  const pool: Cert[] = [];
  for (const c of [...sent, ...configured]) {
    const id = c.der.toString('base64');
    if (!seen.has(id) && !anchorDers.has(id)) pool.push(c);
    seen.add(id);
  }

  const links = new Map<Cert, Map<Cert, boolean>>();
  let badSignature: { child: Cert; issuer: Cert; depth: number } | undefined;
  const issuedBy = (child: Cert, issuer: Cert, depth: number): boolean => {
    let row = links.get(child);
    if (!row) links.set(child, (row = new Map()));
    let ok = row.get(issuer);
    if (ok === undefined) {
      ok = namesChain(child, issuer) && verifiesWith(child, issuer);
      if (!ok && namesChain(child, issuer)) badSignature ??= { child, issuer, depth };
      row.set(issuer, ok);
    }
    return ok;
  };

  const paths: Path[] = [];
  let deadEnd: { cert: Cert; depth: number } | undefined;
  let tooLong = false;
  const extend = (path: Cert[]): void => {
    const tip = path[path.length - 1]!;
    const depth = path.length - 1;
    let found = false;
    for (const anchor of anchors) {
      if (paths.length >= MAX_CANDIDATE_PATHS) return;
      if (issuedBy(tip, anchor, depth)) {
        paths.push([...path, anchor]);
        found = true;
      }
    }
    for (const next of pool) {
      if (paths.length >= MAX_CANDIDATE_PATHS) return;
      if (path.includes(next) || !issuedBy(tip, next, depth)) continue;
      found = true;
      // Room for this intermediate and a trust anchor after it?
      if (path.length + 2 > MAX_PATH_CERTIFICATES) tooLong = true;
      else extend([...path, next]);
    }
    if (!found && (deadEnd === undefined || depth > deadEnd.depth)) deadEnd = { cert: tip, depth };
  };
  extend([leaf]);

  let failure: string;
  if (badSignature) {
    failure = `the signature of ${role(badSignature.child, badSignature.depth, false)} does not verify with the key of "${badSignature.issuer.subject}", the CA it names as issuer`;
  } else if (tooLong) {
    failure = `the client certificate does not chain to a configured CA within ${MAX_PATH_CERTIFICATES} certificates`;
  } else {
    const end = deadEnd ?? { cert: leaf, depth: 0 };
    failure = end.cert.subjectDer.equals(end.cert.issuerDer)
      ? `the client certificate does not chain to a configured CA: the chain ends at "${end.cert.subject}", a self-issued certificate that is not a configured CA`
      : `the client certificate does not chain to a configured CA: ${role(end.cert, end.depth, false)} is issued by "${rfc4514(end.cert.issuerDer)}", which is neither a configured CA nor an intermediate the client sent or Writ was given`;
  }
  return { paths, failure };
}

/** RFC 5280 §6.1.3 (a)(4): the issuer name is the subject name of the next certificate (OpenSSL's comparison as a fallback). */
function namesChain(child: Cert, issuer: Cert): boolean {
  return child.issuerDer.equals(issuer.subjectDer) || child.node.checkIssued(issuer.node);
}

/** RFC 5280 §6.1.3 (a)(1): the signature verifies with the issuer's public key. */
function verifiesWith(child: Cert, issuer: Cert): boolean {
  try {
    return child.node.verify(issuer.node.publicKey);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Path validation: small checks, each naming the rule it enforces; the first failure refuses.

type PathCheck = (path: Path, now: Date) => string | undefined;

/** What a certificate is in the path, for messages. */
function role(cert: Cert, depth: number, isAnchor: boolean): string {
  if (depth === 0) return `the client certificate "${cert.subject}"`;
  if (isAnchor) return `the trust anchor "${cert.subject}"`;
  return `the intermediate CA "${cert.subject}" (depth ${depth})`;
}
const at = (path: Path, i: number): string => role(path[i]!, i, i === path.length - 1);

/** RFC 5280 §4.2: each extension at most once; critical extensions must be understood. */
const checkExtensions: PathCheck = (path) => {
  for (let i = 0; i < path.length; i++) {
    const seen = new Set<string>();
    for (const ext of path[i]!.parsed.extensions) {
      if (seen.has(ext.type)) return `${at(path, i)} carries extension ${ext.type} more than once (RFC 5280 §4.2)`;
      seen.add(ext.type);
      if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(ext.type)) {
        const what = ext.type === OID.nameConstraints ? 'nameConstraints (2.5.29.30), which x509pop does not enforce' : `extension ${ext.type}, which x509pop does not understand`;
        return `${at(path, i)} carries a critical ${what}`;
      }
    }
  }
  return undefined;
};

/** RFC 5280 §6.1.3 (a)(2): every certificate, the trust anchor included, is within its validity period. */
const checkValidity: PathCheck = (path, now) => {
  for (let i = 0; i < path.length; i++) {
    const { notBefore, notAfter } = path[i]!.parsed;
    if (now < notBefore) return `${at(path, i)} is not valid before ${notBefore.toISOString()}`;
    if (now > notAfter) return `${at(path, i)} expired at ${notAfter.toISOString()}`;
  }
  return undefined;
};

/** Signatures made with a broken hash prove nothing (the trust anchor's self-signature is not relied on). */
const checkSignatureAlgorithms: PathCheck = (path) => {
  for (let i = 0; i < path.length - 1; i++) {
    const weak = WEAK_SIGNATURES.get(path[i]!.signatureOid);
    if (weak) return `${at(path, i)} is signed with ${weak}, which x509pop does not accept`;
  }
  return undefined;
};

/** RFC 5280 §6.1.4 (k), (n): every issuer is a CA (basicConstraints cA) whose keyUsage, if present, allows keyCertSign. */
const checkIssuersAreCas: PathCheck = (path) => {
  for (let i = 1; i < path.length; i++) {
    const cert = path[i]!.parsed;
    if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca) {
      return `${at(path, i)} is not a CA (basicConstraints cA is not true), so it cannot issue ${at(path, i - 1)}`;
    }
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) return `${at(path, i)} lacks keyUsage keyCertSign, so it cannot issue certificates`;
  }
  return undefined;
};

/** RFC 5280 §6.1.4 (l), (m): pathLenConstraint bounds the non-self-issued intermediates below a CA. */
const checkPathLength: PathCheck = (path) => {
  for (let i = 1; i < path.length; i++) {
    const max = path[i]!.parsed.getExtension(x509.BasicConstraintsExtension)?.pathLength;
    if (max === undefined) continue;
    const below = path.slice(1, i).filter((c) => !c.subjectDer.equals(c.issuerDer)).length;
    if (below > max) return `${at(path, i)} allows ${max} intermediate CA${max === 1 ? '' : 's'} below it (pathLenConstraint), but the path has ${below}`;
  }
  return undefined;
};

/** The leaf is an end entity fit for TLS client authentication (RFC 5280 §4.2.1.3, §4.2.1.9, §4.2.1.12). */
const checkLeafForClientAuth: PathCheck = (path) => {
  const leaf = path[0]!.parsed;
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca) {
    return `${at(path, 0)} is a CA certificate (basicConstraints cA true); a connector attests with an end-entity certificate`;
  }
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  if (ku && !(ku.usages & x509.KeyUsageFlags.digitalSignature)) {
    return `${at(path, 0)} has a keyUsage without digitalSignature, which TLS client authentication needs`;
  }
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).includes(OID.clientAuth)) {
    return `${at(path, 0)} has an extendedKeyUsage without clientAuth (${OID.clientAuth})`;
  }
  return undefined;
};

/**
 * A CA whose extendedKeyUsage excludes clientAuth cannot vouch for client certificates
 * (as OpenSSL's and Go's verifiers treat it; anyExtendedKeyUsage allows everything).
 */
const checkIssuerExtendedKeyUsage: PathCheck = (path) => {
  for (let i = 1; i < path.length; i++) {
    const eku = path[i]!.parsed.getExtension(x509.ExtendedKeyUsageExtension);
    const usages = eku?.usages.map(String);
    if (usages && !usages.includes(OID.clientAuth) && !usages.includes(OID.anyExtendedKeyUsage)) {
      return `${at(path, i)} restricts extendedKeyUsage to ${usages.join(', ')}, which excludes clientAuth`;
    }
  }
  return undefined;
};

/** RSA keys of the leaf and the intermediates have the public exponent 65537 (as Writ's CSRs must; the trust anchor is the operator's choice). */
const checkRsaExponents: PathCheck = (path) => {
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!.node.publicKey;
    const exponent = key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' ? key.asymmetricKeyDetails?.publicExponent : undefined;
    const problem = exponent === undefined ? undefined : rsaExponentProblem(exponent);
    if (problem) return `${at(path, i)}: ${problem}`;
  }
  return undefined;
};

const PATH_CHECKS: readonly PathCheck[] = [
  checkLeafForClientAuth,
  checkValidity,
  checkIssuersAreCas,
  checkPathLength,
  checkIssuerExtendedKeyUsage,
  checkSignatureAlgorithms,
  checkRsaExponents,
  checkExtensions,
];

/** The first reason the path is not valid at `now`, or undefined when it is. */
function validatePath(path: Path, now: Date): string | undefined {
  for (const check of PATH_CHECKS) {
    const reason = check(path, now);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Selectors, from the validated leaf and the trust anchor it chains to.

function selectorsFor(leaf: Cert, anchor: Cert): string[] {
  const out: string[] = [];
  for (const cn of nameAttributes(leaf.subjectDer, OID.commonName)) if (printable(cn)) out.push(`x509pop:subject_cn:${cn}`);
  out.push(`x509pop:ca:${sha256Hex(anchor.der)}`);
  out.push(`x509pop:serial:${leaf.node.serialNumber.toLowerCase()}`);
  const names = leaf.parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  // SAN values are IA5Strings; one with spaces or control characters is not a name an
  // entry could sensibly select, so it yields no selector.
  const san = (type: string): string[] => names.filter((n) => n.type === type).map((n) => n.value).filter((v) => /^[\x21-\x7e]+$/.test(v));
  for (const dns of san('dns')) out.push(`x509pop:san:dns:${dns}`);
  for (const uri of san('url')) out.push(`x509pop:san:uri:${uri}`);
  if (leaf.subject !== '') out.push(`x509pop:subject:${leaf.subject}`);
  return [...new Set(out)];
}

const printable = (s: string): boolean => s.length > 0 && !/[\u0000-\u001f\u007f]/.test(s);

const sha256Hex = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex');

// ---------------------------------------------------------------------------------------
// Just enough DER to read a certificate's names and signature algorithm exactly as signed.

interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly body: number;
  /** Offset just past the content. */
  readonly end: number;
}

function readTlv(buf: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('multi-byte DER tags are not expected here');
  let length = buf[offset + 1]!;
  let body = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || body + n > limit) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[body + i]!;
    body += n;
  }
  if (body + length > limit) throw new Error('truncated DER');
  return { tag, start: offset, body, end: body + length };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.body; at < parent.end; ) {
    const tlv = readTlv(buf, at, parent.end);
    out.push(tlv);
    at = tlv.end;
  }
  return out;
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1). */
function certificateFields(der: Buffer): { subjectDer: Buffer; issuerDer: Buffer; signatureOid: string } {
  const cert = readTlv(der, 0, der.length);
  const [tbs, sigAlg] = children(der, cert);
  if (cert.tag !== 0x30 || !tbs || !sigAlg) throw new Error('not a certificate');
  const fields = children(der, tbs);
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  // serialNumber, signature, issuer, validity, subject
  const issuer = fields[skip + 2];
  const subject = fields[skip + 4];
  const algOid = children(der, sigAlg)[0];
  if (!issuer || !subject || !algOid || algOid.tag !== 0x06) throw new Error('not a certificate');
  return {
    issuerDer: der.subarray(issuer.start, issuer.end),
    subjectDer: der.subarray(subject.start, subject.end),
    signatureOid: decodeOid(der.subarray(algOid.body, algOid.end)),
  };
}

function decodeOid(bytes: Uint8Array): string {
  const arcs: bigint[] = [];
  let value = 0n;
  for (const b of bytes) {
    value = (value << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (arcs.length === 0) return '';
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** RFC 4514 §3: the attribute types that have short names; any other is written as its OID. */
const SHORT_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.6', 'C'],
  ['2.5.4.9', 'STREET'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
]);

interface Attribute {
  readonly oid: string;
  /** The AttributeValue's whole DER encoding. */
  readonly encoded: Uint8Array;
  /** The value as text, when it is a string type that decodes cleanly. */
  readonly text: string | undefined;
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue), in encoded order. */
function nameRdns(nameDer: Uint8Array): Attribute[][] {
  const name = readTlv(nameDer, 0, nameDer.length);
  return children(nameDer, name).map((rdn) =>
    children(nameDer, rdn).map((atv) => {
      const [type, value] = children(nameDer, atv);
      if (!type || !value || type.tag !== 0x06) throw new Error('bad AttributeTypeAndValue');
      return {
        oid: decodeOid(nameDer.subarray(type.body, type.end)),
        encoded: nameDer.subarray(value.start, value.end),
        text: decodeString(value.tag, nameDer.subarray(value.body, value.end)),
      };
    }),
  );
}

function nameAttributes(nameDer: Uint8Array, oid: string): string[] {
  return nameRdns(nameDer)
    .flat()
    .filter((a) => a.oid === oid && a.text !== undefined)
    .map((a) => a.text!);
}

function decodeString(tag: number, bytes: Uint8Array): string | undefined {
  try {
    switch (tag) {
      case 0x0c: // UTF8String
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      case 0x12: // NumericString
      case 0x13: // PrintableString
      case 0x16: // IA5String
      case 0x1a: // VisibleString
        return bytes.every((b) => b < 0x80) ? Buffer.from(bytes).toString('latin1') : undefined;
      case 0x14: // TeletexString, read as Latin-1 as most software does
        return Buffer.from(bytes).toString('latin1');
      case 0x1e: {
        // BMPString: UTF-16BE
        if (bytes.length % 2) return undefined;
        const le = Buffer.from(bytes);
        le.swap16();
        return new TextDecoder('utf-16le', { fatal: true }).decode(le);
      }
      case 0x1c: {
        // UniversalString: UTF-32BE
        if (bytes.length % 4) return undefined;
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        let s = '';
        for (let i = 0; i < bytes.length; i += 4) s += String.fromCodePoint(view.getUint32(i));
        return s;
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/**
 * RFC 4514 §2: RDNs from last to first, separated by ","; multi-valued RDNs joined by "+";
 * known types by short name with escaped string values; others as the dotted OID and
 * "#" with the hex of the value's DER (§2.4). Control characters are escaped as \XX.
 */
function rfc4514(nameDer: Uint8Array): string {
  return nameRdns(nameDer)
    .reverse()
    .map((rdn) =>
      rdn
        .map((a) => {
          const short = SHORT_NAMES.get(a.oid);
          if (short && a.text !== undefined) return `${short}=${escapeValue(a.text)}`;
          return `${short ?? a.oid}=#${Buffer.from(a.encoded).toString('hex')}`;
        })
        .join('+'),
    )
    .join(',');
}

function escapeValue(value: string): string {
  const chars = Array.from(value);
  return chars
    .map((ch, i) => {
      const cp = ch.codePointAt(0)!;
      if ('"+,;<>\\'.includes(ch)) return `\\${ch}`;
      if ((i === 0 && (ch === ' ' || ch === '#')) || (i === chars.length - 1 && ch === ' ')) return `\\${ch}`;
      if (cp < 0x20 || cp === 0x7f) return `\\${cp.toString(16).toUpperCase().padStart(2, '0')}`;
      return ch;
    })
    .join('');
}
