import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { toPem } from '../core/pem';

/**
 * A fresh key pair and a PKCS#10 certificate signing request (RFC 2986) for it, made in this
 * process with node:crypto: an EC P-256 key (SEC 1) and a CSR signed with ECDSA-SHA256
 * (RFC 5758 §3.2). Only the CSR goes to the broker; the private key never leaves the process.
 * The broker reads the CSR's public key and nothing else, so the subject is a constant.
 *
 * @example
 * const { privateKey, csrPem } = await newKeyAndCsr();
 */
export async function newKeyAndCsr(): Promise<{ privateKey: KeyObject; privateKeyPem: string; csrPem: string }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) }, subject Name,
  //   subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }
  const info = seq(INTEGER_0, SUBJECT, spki, EMPTY_ATTRIBUTES);
  const signature = sign('sha256', info, privateKey); // DER Ecdsa-Sig-Value (RFC 3279 §2.2.3)
  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
  const csr = seq(info, ECDSA_WITH_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  return {
    privateKey,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: toPem(csr, 'CERTIFICATE REQUEST'),
  };
}


function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

const seq = (...parts: Uint8Array[]): Buffer => tlv(0x30, Buffer.concat(parts));

const INTEGER_0 = Buffer.from([0x02, 0x01, 0x00]);
/** Name: CN=writ-sdk (2.5.4.3, UTF8String). */
const SUBJECT = seq(tlv(0x31, seq(Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]), tlv(0x0c, Buffer.from('writ-sdk')))));
/** attributes [0]: no extension request; the broker builds the certificate from the registration entry. */
const EMPTY_ATTRIBUTES = Buffer.from([0xa0, 0x00]);
/** AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256 = seq(Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
