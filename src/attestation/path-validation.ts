import { X509Certificate as NodeX509 } from 'node:crypto';
import { rsaExponentProblem } from '../ca/csr';
import { x509 } from '../ca/x509';
import { certificateNames, rfc4514 } from './x509pop-name';

/**
 * Certification path building and validation for x509pop (RFC 5280 §6, RFC 4158).
 *
 * Why Writ's own: pkijs 3.3.3's `CertificateChainValidationEngine` was evaluated (pkijs is
 * not in Writ's dependency tree; @peculiar/x509 carries only a chain builder) over the same
 * x509-limbo cases. It checks name chaining, signatures, validity and the cA flag, but not
 * extendedKeyUsage, a CA or keyCertSign leaf, duplicate or unknown critical leaf extensions,
 * and accepted paths that break a pathLenConstraint; it ran past 5 s on cyclic and
 * 100-intermediate pools; its refusals name no rule. So these small checks stay, tested
 * against the C2SP/x509-limbo cases for the features they cover (`test/fixtures/x509-limbo/`,
 * `./path-validation.limbo.test.ts`: 100 of 125 as x509-limbo expects, 25 decided otherwise
 * on purpose). Name and policy constraints are not enforced, so a certificate carrying
 * either refuses the path, critical or not (fail closed). `docs/security-model.md`
 * ("x509pop path validation") records the decision and the cases.
 *
 * @example
 * const result = validateCertificatePath(parseCertificate(leafDer), { presented, configured: [], anchors, time: clock.now(), purpose: EKU.clientAuth });
 * if (!result.ok) refuse(result.reason);
 */

/** Extended key usages (RFC 5280 §4.2.1.12). */
export const EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

/**
 * Constraints these checks do not process. Each could narrow what a path is valid for, so
 * a certificate carrying one refuses the path whether or not it is marked critical (fail
 * closed: ignoring a non-critical one would widen what the CA allowed).
 */
const UNENFORCED_CONSTRAINTS: ReadonlyMap<string, string> = new Map([
  ['2.5.29.30', 'nameConstraints'],
  ['2.5.29.36', 'policyConstraints'],
]);

/** The longest certification path accepted by default, trust anchor included. */
export const DEFAULT_MAX_PATH_CERTIFICATES = 5;
/** How many candidate paths are tried before giving up (cross-signed PKIs can offer several). */
const MAX_CANDIDATE_PATHS = 16;
/** How many (certificate, candidate issuer) pairs path building examines at most, so that a pathological pool cannot make it search for long. */
const MAX_ISSUER_CHECKS = 1024;

/**
 * Extensions whose meaning these checks process, or which cannot narrow what a
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
  // policyConstraints, which could change that, is not enforced and so refuses.
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
export interface PathCertificate {
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

/** Parses a DER certificate for path validation; throws when it is not one. */
export function parseCertificate(input: Uint8Array): PathCertificate {
  const der = Buffer.from(input);
  const node = new NodeX509(der);
  const parsed = new x509.X509Certificate(der);
  const names = certificateNames(der);
  return { der, node, parsed, ...names, subject: rfc4514(names.subjectDer) };
}

/** A certification path: leaf first, trust anchor last. */
export type CertificatePath = readonly PathCertificate[];

export interface PathValidationOptions {
  /** Intermediates the peer sent (untrusted; tried first). */
  readonly presented: readonly PathCertificate[];
  /** Intermediates the operator configured (untrusted as anchors, but available for building). */
  readonly configured: readonly PathCertificate[];
  /** The trust anchors. */
  readonly anchors: readonly PathCertificate[];
  /** The validation time (RFC 5280 §6.1.1 (b)). */
  readonly time: Date;
  /** The extendedKeyUsage the leaf must allow, as an OID (x509pop: clientAuth). */
  readonly purpose: string;
  /** The longest path accepted, trust anchor included (default 5). */
  readonly maxCertificates?: number;
}

export type PathValidationResult = { readonly ok: true; readonly path: CertificatePath } | { readonly ok: false; readonly reason: string };

/**
 * Builds the candidate paths from the leaf to a trust anchor and returns the first that
 * passes every check, or the first reason a candidate failed (or why none was found).
 */
export function validateCertificatePath(leaf: PathCertificate, options: PathValidationOptions): PathValidationResult {
  const max = options.maxCertificates ?? DEFAULT_MAX_PATH_CERTIFICATES;
  const { paths, failure } = buildPaths(leaf, [...options.presented, ...options.configured], options.anchors, max);
  if (paths.length === 0) return { ok: false, reason: failure };
  let firstReason: string | undefined;
  for (const path of paths) {
    const reason = validatePath(path, options.time, options.purpose);
    if (reason === undefined) return { ok: true, path };
    firstReason ??= reason;
  }
  return { ok: false, reason: firstReason! };
}

// ---------------------------------------------------------------------------------------
// Path building (RFC 5280 §6 leaves it to the implementation; RFC 4158 describes it).

interface BuiltPaths {
  readonly paths: readonly CertificatePath[];
  /** Why no path was found, when none was. */
  readonly failure: string;
}

/**
 * Every path, up to `max` certificates long, from the leaf through the intermediates
 * (in the order given) to a trust anchor, in which each certificate names the next as
 * its issuer and verifies with its key.
 */
function buildPaths(leaf: PathCertificate, intermediates: readonly PathCertificate[], anchors: readonly PathCertificate[], max: number): BuiltPaths {
  const anchorDers = new Set(anchors.map((a) => a.der.toString('base64')));
  const seen = new Set<string>([leaf.der.toString('base64')]);
  const pool: PathCertificate[] = [];
  for (const c of intermediates) {
    const id = c.der.toString('base64');
    if (!seen.has(id) && !anchorDers.has(id)) pool.push(c);
    seen.add(id);
  }

  const links = new Map<PathCertificate, Map<PathCertificate, boolean>>();
  let badSignature: { child: PathCertificate; issuer: PathCertificate; depth: number } | undefined;
  let checks = 0;
  const issuedBy = (child: PathCertificate, issuer: PathCertificate, depth: number): boolean => {
    let row = links.get(child);
    if (!row) links.set(child, (row = new Map()));
    let ok = row.get(issuer);
    if (ok === undefined) {
      checks++;
      ok = namesChain(child, issuer) && verifiesWith(child, issuer);
      if (!ok && namesChain(child, issuer)) badSignature ??= { child, issuer, depth };
      row.set(issuer, ok);
    }
    return ok;
  };

  const paths: CertificatePath[] = [];
  let deadEnd: { cert: PathCertificate; depth: number } | undefined;
  let tooLong = false;
  let exhausted = false;
  const done = (): boolean => paths.length >= MAX_CANDIDATE_PATHS || (exhausted ||= checks >= MAX_ISSUER_CHECKS);
  const extend = (path: PathCertificate[]): void => {
    const tip = path[path.length - 1]!;
    const depth = path.length - 1;
    let found = false;
    for (const anchor of anchors) {
      if (done()) return;
      if (issuedBy(tip, anchor, depth)) {
        paths.push([...path, anchor]);
        found = true;
      }
    }
    for (const next of pool) {
      if (done()) return;
      if (path.includes(next) || !issuedBy(tip, next, depth)) continue;
      found = true;
      // Room for this intermediate and a trust anchor after it?
      if (path.length + 2 > max) tooLong = true;
      else extend([...path, next]);
    }
    if (!found && (deadEnd === undefined || depth > deadEnd.depth)) deadEnd = { cert: tip, depth };
  };
  extend([leaf]);

  let failure: string;
  if (tooLong) {
    failure = `the client certificate does not chain to a configured CA within ${max} certificates`;
  } else if (badSignature) {
    failure = `the signature of ${role(badSignature.child, badSignature.depth, false)} does not verify with the key of "${badSignature.issuer.subject}", the CA it names as issuer`;
  } else if (exhausted) {
    failure = `the client certificate does not chain to a configured CA within ${MAX_ISSUER_CHECKS} issuer checks`;
  } else {
    const end = deadEnd ?? { cert: leaf, depth: 0 };
    failure = end.cert.subjectDer.equals(end.cert.issuerDer)
      ? `the client certificate does not chain to a configured CA: the chain ends at "${end.cert.subject}", a self-issued certificate that is not a configured CA`
      : `the client certificate does not chain to a configured CA: ${role(end.cert, end.depth, false)} is issued by "${rfc4514(end.cert.issuerDer)}", which is neither a configured CA nor an intermediate the client sent or Writ was given`;
  }
  return { paths, failure };
}

/** RFC 5280 §6.1.3 (a)(4): the issuer name is the subject name of the next certificate (OpenSSL's comparison as a fallback). */
function namesChain(child: PathCertificate, issuer: PathCertificate): boolean {
  return child.issuerDer.equals(issuer.subjectDer) || child.node.checkIssued(issuer.node);
}

/** RFC 5280 §6.1.3 (a)(1): the signature verifies with the issuer's public key. */
function verifiesWith(child: PathCertificate, issuer: PathCertificate): boolean {
  try {
    return child.node.verify(issuer.node.publicKey);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Path validation: small checks, each naming the rule it enforces; the first failure refuses.

type PathCheck = (path: CertificatePath, now: Date, purpose: string) => string | undefined;

/** What a certificate is in the path, for messages. */
function role(cert: PathCertificate, depth: number, isAnchor: boolean): string {
  if (depth === 0) return `the client certificate "${cert.subject}"`;
  if (isAnchor) return `the trust anchor "${cert.subject}"`;
  return `the intermediate CA "${cert.subject}" (depth ${depth})`;
}
const at = (path: CertificatePath, i: number): string => role(path[i]!, i, i === path.length - 1);

const PURPOSE_NAMES: ReadonlyMap<string, string> = new Map([
  [EKU.serverAuth, 'serverAuth'],
  [EKU.clientAuth, 'clientAuth'],
]);
const purposeName = (purpose: string): string => PURPOSE_NAMES.get(purpose) ?? purpose;

/** RFC 5280 §4.2: each extension at most once; critical extensions must be understood; constraints not enforced refuse. */
const checkExtensions: PathCheck = (path) => {
  for (let i = 0; i < path.length; i++) {
    const seen = new Set<string>();
    for (const ext of path[i]!.parsed.extensions) {
      if (seen.has(ext.type)) return `${at(path, i)} carries extension ${ext.type} more than once (RFC 5280 §4.2)`;
      seen.add(ext.type);
      const unenforced = UNENFORCED_CONSTRAINTS.get(ext.type);
      if (unenforced) return `${at(path, i)} carries a ${ext.critical ? 'critical ' : ''}${unenforced} (${ext.type}), which x509pop does not enforce`;
      if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(ext.type)) return `${at(path, i)} carries a critical extension ${ext.type}, which x509pop does not understand`;
    }
  }
  return undefined;
};

/**
 * RFC 5280 §6.1.3 (a)(2): every certificate, the trust anchor included, is within its
 * validity period, notBefore through notAfter inclusive, at the whole seconds in which
 * §4.1.2.5 states them.
 */
const checkValidity: PathCheck = (path, time) => {
  const now = new Date(Math.floor(time.getTime() / 1000) * 1000);
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
    // RFC 5280 §4.1.2.6: a CA's subject is a non-empty distinguished name.
    if (path[i]!.subjectDer.length <= 2) return `${at(path, i)} has an empty subject, which a CA certificate may not have`;
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

/** The leaf is an end entity fit for the purpose, for x509pop TLS client authentication (RFC 5280 §4.2.1.3, §4.2.1.9, §4.2.1.12). */
const checkLeafForPurpose: PathCheck = (path, _now, purpose) => {
  const leaf = path[0]!.parsed;
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca) {
    return `${at(path, 0)} is a CA certificate (basicConstraints cA true); a connector attests with an end-entity certificate`;
  }
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  // RFC 5280 §4.2.1.3: keyCertSign is asserted only together with basicConstraints cA.
  if (ku && ku.usages & x509.KeyUsageFlags.keyCertSign) return `${at(path, 0)} asserts keyUsage keyCertSign without being a CA`;
  if (ku && !(ku.usages & x509.KeyUsageFlags.digitalSignature)) {
    return `${at(path, 0)} has a keyUsage without digitalSignature, which TLS ${purpose === EKU.serverAuth ? 'server' : 'client'} authentication needs`;
  }
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).includes(purpose)) {
    return `${at(path, 0)} has an extendedKeyUsage without ${purposeName(purpose)} (${purpose})`;
  }
  return undefined;
};

/**
 * A CA whose extendedKeyUsage excludes the purpose cannot vouch for it (as OpenSSL's and
 * Go's verifiers treat it; anyExtendedKeyUsage allows everything).
 */
const checkIssuerExtendedKeyUsage: PathCheck = (path, _now, purpose) => {
  for (let i = 1; i < path.length; i++) {
    const eku = path[i]!.parsed.getExtension(x509.ExtendedKeyUsageExtension);
    const usages = eku?.usages.map(String);
    if (usages && !usages.includes(purpose) && !usages.includes(EKU.anyExtendedKeyUsage)) {
      return `${at(path, i)} restricts extendedKeyUsage to ${usages.join(', ')}, which excludes ${purposeName(purpose)}`;
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
  checkLeafForPurpose,
  checkValidity,
  checkIssuersAreCas,
  checkPathLength,
  checkIssuerExtendedKeyUsage,
  checkSignatureAlgorithms,
  checkRsaExponents,
  checkExtensions,
];

/** The first reason the path is not valid at `now` for `purpose`, or undefined when it is. */
function validatePath(path: CertificatePath, now: Date, purpose: string): string | undefined {
  for (const check of PATH_CHECKS) {
    const reason = check(path, now, purpose);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
