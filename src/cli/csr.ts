import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, contextTag, oid, sequence, set, smallInteger, tlv, TAG } from '../ca/der';
import { toPem } from '../core/pem';

/** ecdsa-with-SHA256 (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const COMMON_NAME = '2.5.4.3';

/** A fresh key and a PKCS#10 request proving it is held. The key never leaves this process but to the caller's files. */
export interface KeyAndCsr {
  readonly key: KeyObject;
  /** The private key, PKCS#8 PEM. */
  readonly keyPem: string;
  readonly csrPem: string;
}


/**
 * Generates an EC P-256 key and a CSR for it (RFC 2986). The broker uses only the CSR's
 * public key, once the signature proves possession; the subject is a placeholder.
 *
 * ```ts
 * const { keyPem, csrPem } = newKeyAndCsr();
 * await client.json('POST', '/v1/attest', { attestor: 'join_token', evidence: { token }, csr: csrPem });
 * ```
 */
export function newKeyAndCsr(): KeyAndCsr {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const subject = sequence(set(sequence(oid(COMMON_NAME), tlv(TAG.UTF8_STRING, Buffer.from('writ-cli')))));
  const info = sequence(smallInteger(0), subject, spki, contextTag(0, true)); // no attributes
  const signature = sign('sha256', info, privateKey); // DER ECDSA-Sig-Value
  const csr = sequence(info, sequence(oid(ECDSA_WITH_SHA256)), bitString(signature));
  return { key: privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, csrPem: toPem(csr, 'CERTIFICATE REQUEST') };
}

/** The DER of each PEM block with `label` in `text`, in order. */
export function pemBlocks(text: string, label = 'CERTIFICATE'): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}
