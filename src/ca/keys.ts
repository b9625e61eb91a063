import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { subtle } from './x509';

/** A private key as WebCrypto and @peculiar/x509 need it, with the algorithm it signs with. */
export interface SigningKey {
  readonly privateKey: CryptoKey;
  /** DER SubjectPublicKeyInfo of the matching public key. */
  readonly publicKeySpki: Uint8Array;
  readonly signingAlgorithm: EcdsaParams | RsaHashedImportParams;
}

/** ECDSA P-256 with SHA-256: the algorithm of every key Writ generates. */
export const P256: EcKeyImportParams & EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

const EC_HASH: Record<string, string> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512' };
const NODE_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Generates an extractable ECDSA P-256 key pair. */
export async function generateP256(): Promise<CryptoKeyPair> {
  return subtle.generateKey(P256, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

export async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
}

/**
 * Imports a PEM private key (PKCS#8, SEC1 or PKCS#1) for signing certificates.
 * Supports ECDSA P-256/P-384/P-521 and RSA (PKCS#1 v1.5 with SHA-256). Throws on anything else.
 */
export async function importSigningKey(pem: string | Buffer): Promise<SigningKey> {
  const key: KeyObject = createPrivateKey(pem);
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  const publicKeySpki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  if (key.asymmetricKeyType === 'ec') {
    const namedCurve = NODE_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!namedCurve) throw new Error(`unsupported EC curve ${key.asymmetricKeyDetails?.namedCurve}`);
    const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve }, false, ['sign']);
    return { privateKey, publicKeySpki, signingAlgorithm: { name: 'ECDSA', hash: EC_HASH[namedCurve]! } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const privateKey = await subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
    return { privateKey, publicKeySpki, signingAlgorithm: alg };
  }
  throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
}

/** The WebCrypto public key for a DER SubjectPublicKeyInfo with a known algorithm. */
export async function importSpki(spki: Uint8Array, alg: EcKeyImportParams | RsaHashedImportParams): Promise<CryptoKey> {
  return subtle.importKey('spki', spki, alg, true, ['verify']);
}
