import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { sha256 } from '../core/hash';
import { parseSpiffeId, type SpiffeId } from '../spiffe/id';
import { PeerNotAuthorizedError, WritProtocolError } from './errors';

export type { SpiffeId };

/**
 * An X.509-SVID with its private key (X509-SVID §3, §4): the certificate chain the broker
 * issued, leaf first, and the key made in this process.
 */
export interface X509Svid {
  /** The SPIFFE ID, e.g. `spiffe://writ.local/connector/github`. */
  readonly spiffeId: string;
  /** The SPIFFE ID, parsed. */
  readonly id: SpiffeId;
  /** The chain, leaf first (intermediates follow when the broker signs with one). */
  readonly certificates: readonly X509Certificate[];
  /** The chain as PEM, leaf first: the `cert` of TLS options. */
  readonly certificatesPem: string;
  /** The private key of the leaf (EC P-256). */
  readonly privateKey: KeyObject;
  /** The leaf's serial number, lowercase hex. */
  readonly serialNumber: string;
  /** SHA-256 of the leaf's DER, lowercase hex (the broker's lease fingerprint; base64url of it is `cnf.x5t#S256`, RFC 8705 §3.1). */
  readonly fingerprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** A JWT authority of the bundle: a key that verifies JWT-SVIDs and Writ access tokens, by key ID. */
export interface JwtAuthority {
  readonly kid: string;
  /** The public key as a JWK (SPIFFE Trust Domain and Bundle §4.2.2). */
  readonly jwk: JsonWebKey;
}

/**
 * The trust bundle of the broker's trust domain (SPIFFE Trust Domain and Bundle §3): the CA
 * certificates that X.509-SVIDs chain to, and the keys that verify JWT-SVIDs.
 */
export interface X509Bundle {
  /** The trust domain the bundle is for, once known (from the source's SVID). */
  readonly trustDomain: string | undefined;
  /** `spiffe_sequence`: increments whenever the set of authorities changes; undefined for the initial, operator-given bundle. */
  readonly sequence: number | undefined;
  /** `spiffe_refresh_hint`, seconds; undefined for the initial bundle. */
  readonly refreshHint: number | undefined;
  /** The X.509 authorities (CA certificates). */
  readonly x509Authorities: readonly X509Certificate[];
  /** The X.509 authorities as PEM: the `ca` of TLS options. */
  readonly x509AuthoritiesPem: string;
  /** The JWT authorities; empty for the initial bundle. */
  readonly jwtAuthorities: readonly JwtAuthority[];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM text, in order; throws when there are none or one does not parse. */
export function certificatesFromPem(pem: string | Buffer, what: string): X509Certificate[] {
  const blocks = String(pem).match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TypeError(`${what} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TypeError(`certificate ${i + 1} of ${what} cannot be parsed: ${(err as Error).message}`);
    }
  });
}

export const certificatesToPem = (certs: readonly X509Certificate[]): string => certs.map((c) => c.toString()).join('');

/**
 * The SPIFFE ID of an X.509-SVID leaf: exactly one URI SAN, a valid `spiffe://` ID
 * (X509-SVID §2), on a certificate that is not a CA (§4.1). Throws PeerNotAuthorizedError.
 */
export function spiffeIdOfCertificate(cert: X509Certificate): SpiffeId {
  if (cert.ca) throw new PeerNotAuthorizedError('the peer certificate is a CA certificate, not an X.509-SVID (X509-SVID §4.1)');
  // Node lists SANs as "DNS:a, URI:b"; a value it had to quote (commas, quotes) is not a SPIFFE ID anyway.
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1) throw new PeerNotAuthorizedError(`an X.509-SVID has exactly one URI SAN (X509-SVID §2); the peer certificate has ${uris.length}`);
  try {
    return parseSpiffeId(uris[0]!);
  } catch (err) {
    throw new PeerNotAuthorizedError(`the peer certificate's URI SAN is not a SPIFFE ID: ${(err as Error).message}`);
  }
}


/** An SVID from the broker's answer (`svid`: PEM chain, leaf first) and the key made for it; checks they belong together. */
export function svidFromAnswer(chainPem: unknown, privateKey: KeyObject, status: number): X509Svid {
  if (typeof chainPem !== 'string') throw new WritProtocolError('the broker\'s answer has no "svid"', status);
  let certificates: X509Certificate[];
  let id: SpiffeId;
  try {
    certificates = certificatesFromPem(chainPem, 'the issued SVID');
    id = spiffeIdOfCertificate(certificates[0]!);
  } catch (err) {
    throw new WritProtocolError(`the broker issued an SVID the SDK cannot use: ${(err as Error).message}`, status, { cause: err });
  }
  if (!certificates[0]!.checkPrivateKey(privateKey)) throw new WritProtocolError('the issued SVID does not certify the key of the CSR', status);
  return x509SvidOf(certificates, id, privateKey);
}

/** An {@link X509Svid} from its chain (leaf first, already checked to certify `privateKey`) and parsed SPIFFE ID. */
export function x509SvidOf(certificates: readonly X509Certificate[], id: SpiffeId, privateKey: KeyObject): X509Svid {
  const leaf = certificates[0]!;
  return {
    spiffeId: id.uri,
    id,
    certificates,
    certificatesPem: certificatesToPem(certificates),
    privateKey,
    serialNumber: leaf.serialNumber.toLowerCase(),
    fingerprint: sha256(leaf.raw, 'hex'),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
}

/** A bundle from PEM X.509 authorities (the operator's initial bundle, or the `bundle` of an attest/renew answer). */
export function bundleFromPem(pem: string | Buffer, trustDomain: string | undefined, what: string): X509Bundle {
  const x509Authorities = certificatesFromPem(pem, what);
  return { trustDomain, sequence: undefined, refreshHint: undefined, x509Authorities, x509AuthoritiesPem: certificatesToPem(x509Authorities), jwtAuthorities: [] };
}

/** A bundle from the SPIFFE bundle document of GET /v1/bundle (SPIFFE Trust Domain and Bundle §4). */
export function bundleFromDocument(doc: unknown, trustDomain: string | undefined, status: number): X509Bundle {
  const bad = (why: string, cause?: unknown) => new WritProtocolError(`the broker's bundle is not a SPIFFE bundle: ${why}`, status, { cause });
  const d = doc as { keys?: unknown; spiffe_sequence?: unknown; spiffe_refresh_hint?: unknown } | null;
  if (!d || typeof d !== 'object' || !Array.isArray(d.keys)) throw bad('no "keys"');
  const x509Authorities: X509Certificate[] = [];
  const jwtAuthorities: JwtAuthority[] = [];
  for (const key of d.keys as Record<string, unknown>[]) {
    if (key?.use === 'x509-svid') {
      // §4.2.1: x5c holds exactly one certificate, the authority.
      if (!Array.isArray(key.x5c) || key.x5c.length !== 1 || typeof key.x5c[0] !== 'string') throw bad('an x509-svid key without exactly one x5c certificate');
      try {
        x509Authorities.push(new X509Certificate(Buffer.from(key.x5c[0], 'base64')));
      } catch (err) {
        throw bad('an x509-svid certificate does not parse', err);
      }
    } else if (key?.use === 'jwt-svid') {
      // §4.2.2: a kid, and a public key.
      if (typeof key.kid !== 'string' || key.kid === '') throw bad('a jwt-svid key without "kid"');
      const { use: _use, kid, ...jwk } = key;
      try {
        createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      } catch (err) {
        throw bad(`jwt-svid key ${kid} is not a public key`, err);
      }
      jwtAuthorities.push({ kid: kid as string, jwk: jwk as JsonWebKey });
    }
    // §4.1: keys of other uses are ignored.
  }
  if (x509Authorities.length === 0) throw bad('no X.509 authority');
  if (!Number.isSafeInteger(d.spiffe_sequence)) throw bad('no "spiffe_sequence"');
  const hint = Number.isFinite(d.spiffe_refresh_hint) && (d.spiffe_refresh_hint as number) > 0 ? (d.spiffe_refresh_hint as number) : undefined;
  return { trustDomain, sequence: d.spiffe_sequence as number, refreshHint: hint, x509Authorities, x509AuthoritiesPem: certificatesToPem(x509Authorities), jwtAuthorities };
}

/** Whether two bundles hold the same X.509 authorities. */
export function sameAuthorities(a: readonly X509Certificate[], b: readonly X509Certificate[]): boolean {
  const key = (certs: readonly X509Certificate[]) => certs.map((c) => c.fingerprint256).sort().join(',');
  return key(a) === key(b);
}
