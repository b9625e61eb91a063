import { X509Certificate } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { toPem } from '../core/pem';

/** A JWT authority: a public key that verifies JWT-SVIDs, named by its key ID. */
export interface JwtAuthority {
  readonly kid: string;
  /** The public key as a JWK (kty and key parameters only). */
  readonly publicJwk: JsonWebKey;
}

/** A trust domain's bundle: the authorities that peers trust for it (SPIFFE Trust Domain and Bundle §3). */
export interface TrustBundle {
  readonly trustDomain: string;
  /** Incremented whenever the set of authorities changes. */
  readonly sequence: number;
  /** Seconds after which a consumer should poll for a new bundle. */
  readonly refreshHint: number;
  /** DER of each X.509 authority (a CA certificate). */
  readonly x509Authorities: readonly Uint8Array[];
  readonly jwtAuthorities: readonly JwtAuthority[];
}

/** One key of the bundle's JWK Set (SPIFFE Trust Domain and Bundle §4.2). */
export type BundleJwk = JsonWebKey & { use: 'x509-svid' | 'jwt-svid'; kid?: string; x5c?: string[] };

/** The SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4). */
export interface SpiffeBundleDocument {
  keys: BundleJwk[];
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

/** The public key of a certificate as a bare JWK (kty and key parameters). */
export function certificatePublicJwk(der: Uint8Array): JsonWebKey {
  const cert = new X509Certificate(der);
  return cert.publicKey.export({ format: 'jwk' });
}

/**
 * Renders a bundle as the SPIFFE bundle JWK Set.
 * §4.2.1: an X.509 authority has `use: "x509-svid"` and `x5c` holding exactly one
 * certificate, and no `kid`. §4.2.2: a JWT authority has `use: "jwt-svid"` and a `kid`.
 */
export function toSpiffeBundleDocument(bundle: TrustBundle): SpiffeBundleDocument {
  const x509Keys: BundleJwk[] = bundle.x509Authorities.map((der) => ({
    use: 'x509-svid',
    ...certificatePublicJwk(der),
    x5c: [Buffer.from(der).toString('base64')],
  }));
  const jwtKeys: BundleJwk[] = bundle.jwtAuthorities.map((a) => ({ use: 'jwt-svid', kid: a.kid, ...a.publicJwk }));
  return {
    keys: [...x509Keys, ...jwtKeys],
    spiffe_sequence: bundle.sequence,
    spiffe_refresh_hint: bundle.refreshHint,
  };
}

/** PEM encoding of one DER certificate (RFC 7468 §5.1). */
export const certificateToPem = (der: Uint8Array): string => toPem(der, 'CERTIFICATE');

/** The bundle's X.509 authorities as concatenated PEM certificates. */
export function toPemBundle(bundle: TrustBundle): string {
  return bundle.x509Authorities.map(certificateToPem).join('');
}
