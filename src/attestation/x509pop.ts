import { X509Certificate as NodeX509 } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { x509 } from '../ca/x509';
import type { Clock } from '../core/clock';
import { sha256 } from '../core/hash';
import { ConfigError } from '../config/errors';
import type { AttestationContext, AttestationResult, Attestor } from './attestor';
import { AttestationError } from './errors';
import { DEFAULT_MAX_PATH_CERTIFICATES, EKU, parseCertificate, validateCertificatePath, type PathCertificate } from './path-validation';
import { nameAttributes } from './x509pop-name';

/**
 * The `x509pop` attestor: X.509 proof of possession against an existing enterprise PKI.
 *
 * The connector presents a certificate of its PKI as its TLS client certificate when it
 * calls the attest endpoint. The TLS handshake (CertificateVerify) proves that it holds
 * the key; the HTTPS server accepts any client certificate and hands the chain it saw
 * (DER, leaf first) to this attestor, which validates the path to a configured CA as
 * RFC 5280 §6 describes (`./path-validation.ts`) and answers with selectors read from the
 * certificate alone:
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
export const MAX_PATH_CERTIFICATES = DEFAULT_MAX_PATH_CERTIFICATES;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const COMMON_NAME = '2.5.4.3';

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
  return sha256(der, 'hex');
}

export class X509PopAttestor implements Attestor {
  readonly name = 'x509pop';
  readonly #anchors: readonly PathCertificate[];
  readonly #intermediates: readonly PathCertificate[];
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
    const result = validateCertificatePath(chain[0]!, {
      presented: chain.slice(1),
      configured: this.#intermediates,
      anchors: this.#anchors,
      time: this.#clock.now(),
      purpose: EKU.clientAuth,
      maxCertificates: MAX_PATH_CERTIFICATES,
    });
    if (!result.ok) throw refuse(result.reason);
    return { selectors: selectorsFor(result.path[0]!, result.path[result.path.length - 1]!) };
  }
}

const refuse = (reason: string, cause?: unknown): AttestationError => new AttestationError('invalid-evidence', reason, cause);

function readCaFile(setting: 'ca_bundle_file' | 'intermediates_file', file: string): PathCertificate[] {
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
    let cert: PathCertificate;
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

// ---------------------------------------------------------------------------------------
// Selectors, from the validated leaf and the trust anchor it chains to.

function selectorsFor(leaf: PathCertificate, anchor: PathCertificate): string[] {
  const out: string[] = [];
  for (const cn of nameAttributes(leaf.subjectDer, COMMON_NAME)) if (printable(cn)) out.push(`x509pop:subject_cn:${cn}`);
  out.push(`x509pop:ca:${sha256(anchor.der, 'hex')}`);
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
