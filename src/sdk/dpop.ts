/**
 * The client side of DPoP (RFC 9449): a key pair made in this process, and a proof JWT for each
 * request, so that a task token bound to the key (`cnf.jkt`) is useless to whoever copies it
 * without the key. For agents whose requests reach an MCP server through a proxy that
 * terminates TLS, where the certificate binding of RFC 8705 cannot be checked.
 *
 * The proofs are signed here with `node:crypto` rather than with a JOSE library: `@writ/sdk`
 * has no dependencies, and a DPoP proof is one fixed JWS shape (ES256, `typ` dpop+jwt, the
 * public key in the header, RFC 9449 §4.2) that takes a dozen lines to produce exactly.
 */
import { createHash, generateKeyPair, randomUUID, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { systemClock, type Clock } from './time';

const b64url = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url');

/** What a proof is for: the request it accompanies (RFC 9449 §4.2). */
export interface DpopProofRequest {
  /** `htm`: the HTTP method. */
  readonly method: string;
  /** `htu`: the request's URL; the query and fragment are left out (RFC 9449 §4.2). */
  readonly url: string | URL;
  /** The access token sent with the request: its hash is `ath` (RFC 9449 §4.2), required at resource servers. */
  readonly accessToken?: string;
  /** The server's last `DPoP-Nonce` (RFC 9449 §8, §9). */
  readonly nonce?: string;
}

/** An ES256 DPoP key pair; the private key never leaves the process. */
export class DpopKey {
  readonly #privateKey: KeyObject;
  readonly #clock: Clock;
  /** The public key as a JWK (`kty`, `crv`, `x`, `y`): the proof header's `jwk`. */
  readonly publicJwk: Readonly<JsonWebKey>;
  /** RFC 7638 SHA-256 thumbprint of the public key, base64url: the `cnf.jkt` of tokens bound to this key (RFC 9449 §6.1). */
  readonly jkt: string;

  private constructor(privateKey: KeyObject, publicKey: KeyObject, clock: Clock) {
    this.#privateKey = privateKey;
    this.#clock = clock;
    const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
    this.publicJwk = Object.freeze({ kty, crv, x, y });
    // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    this.jkt = createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
  }

  /** Makes a new P-256 key pair. */
  static async generate(opts: { clock?: Clock } = {}): Promise<DpopKey> {
    const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
    return new DpopKey(privateKey, publicKey, opts.clock ?? systemClock);
  }

  /** A fresh proof for one request (RFC 9449 §4.2): a new `jti`, `iat` now. */
  proof(request: DpopProofRequest): string {
    const url = new URL(String(request.url));
    url.search = '';
    url.hash = '';
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: this.publicJwk };
    const claims = {
      jti: randomUUID(),
      htm: request.method.toUpperCase(),
      htu: url.href,
      iat: Math.floor(this.#clock.now().getTime() / 1000),
      ...(request.accessToken !== undefined && { ath: createHash('sha256').update(request.accessToken).digest('base64url') }),
      ...(request.nonce !== undefined && { nonce: request.nonce }),
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // RFC 7518 §3.4: ES256 signatures are R || S, 64 bytes, not DER.
    const signature = sign('sha256', Buffer.from(input), { key: this.#privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(signature)}`;
  }
}
