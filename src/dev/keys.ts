/**
 * Keys of `writ dev`'s OpenID Provider, kept in its directory (mode 0600) so that ID tokens
 * stay verifiable across restarts: the ES256 signing key (RFC 7518 §3.4) and the cookie keys.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

/** What the provider signs and seals cookies with. */
export interface DevOpKeys {
  /** Private JWKs; the first signs, the others are published for tokens they signed (rotation). */
  readonly signing: JWK[];
  readonly cookies: string[];
}

/** A new ES256 signing key with `kid` its RFC 7638 thumbprint. */
export async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256', use: 'sig' };
}

/** Reads the keys at `path`, or makes and stores them there first. */
export async function loadOrCreateKeys(path: string): Promise<DevOpKeys> {
  if (existsSync(path)) {
    const keys = JSON.parse(readFileSync(path, 'utf8')) as Partial<DevOpKeys>;
    if (!Array.isArray(keys.signing) || keys.signing.length === 0 || !Array.isArray(keys.cookies) || keys.cookies.length === 0) {
      throw new Error(`${path} is not a writ dev key file (delete it to make new keys)`);
    }
    return { signing: keys.signing, cookies: keys.cookies };
  }
  const keys: DevOpKeys = { signing: [await newSigningKey()], cookies: [randomBytes(32).toString('base64url')] };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return keys;
}
