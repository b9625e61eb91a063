/**
 * The shape of Writ's access tokens: JWTs in the JWT access token profile (RFC 9068), bound
 * to the connector's X.509-SVID (RFC 8705 §3.1 `cnf.x5t#S256`) or to its DPoP key (RFC 9449
 * §6.1 `cnf.jkt`), naming the acting connector
 * chain in `act` (RFC 8693 §4.1) and carrying the granted `authorization_details` (RFC 9396
 * §9.1). Signing is `./sign`, verifying `./verify`; both share these definitions.
 *
 * ```ts
 * if (!('x5t#S256' in claims.cnf) || claims.cnf['x5t#S256'] !== certificateThumbprint(peer.raw)) refuse(); // RFC 8705 §3
 * ```
 */
import { base64url } from 'jose';
import type { McpToolDetail } from './authorization-details';
import { sha256 } from '../core/hash';

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_JWT_TYPE = 'at+jwt';
/** The only algorithm Writ signs access tokens with. */
export const ACCESS_TOKEN_ALGORITHM = 'ES256';
/** Deeper `act` nesting than this is refused when verifying (the configured chain depth is far lower). */
export const MAX_ACT_NESTING = 16;

/** RFC 8693 §4.1: the actor, and the actor before it in a delegation chain. */
export interface Act {
  readonly sub: string;
  readonly act?: Act;
}

/** RFC 8705 §3.1: the token is bound to the certificate whose DER hashes to this. */
export interface CertificateConfirmation {
  readonly 'x5t#S256': string;
}

/** RFC 9449 §6.1: the token is bound to the DPoP key with this RFC 7638 SHA-256 thumbprint. */
export interface DpopConfirmation {
  readonly jkt: string;
}

/** The token's sender constraint (`cnf`, RFC 7800 §3.1): exactly one of a certificate or a DPoP key. */
export type Confirmation = CertificateConfirmation | DpopConfirmation;

/** Which binding a confirmation is: `mtls` (RFC 8705) or `dpop` (RFC 9449). */
export type Binding = 'mtls' | 'dpop';

/** Whether a token is DPoP-bound (RFC 9449 §6.1 `cnf.jkt`). */
export const isDpopBound = (cnf: Confirmation): cnf is DpopConfirmation => 'jkt' in cnf;

/** The binding a confirmation names. */
export const bindingOf = (cnf: Confirmation): Binding => (isDpopBound(cnf) ? 'dpop' : 'mtls');

/** The claims of a Writ access token (RFC 9068 §2.2). */
export interface AccessTokenClaims {
  readonly iss: string;
  /** The end user. */
  readonly sub: string;
  /** The one resource (RFC 8707) the token is for. */
  readonly aud: string;
  /** The connector's SPIFFE ID (RFC 9068 §2.2, RFC 8693 §4.3). */
  readonly client_id: string;
  /** The connector acting for the user, nesting the connectors before it. */
  readonly act: Act;
  readonly cnf: Confirmation;
  readonly authorization_details: readonly McpToolDetail[];
  readonly task_id: string;
  /** The user's session at the identity provider, when the subject token named one. */
  readonly sid?: string;
  /**
   * The granted tools every call of which needs a decision from Writ's PDP at call time (the
   * registry marks them `per_call`, or the policy set reads the task's history): a resource
   * server without per-call decisions must refuse their calls. Absent when there are none.
   */
  readonly per_call?: readonly string[];
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
}

/**
 * RFC 8705 §3.1: `x5t#S256`, the base64url-encoded (no padding) SHA-256 of the DER encoding
 * of an X.509 certificate — what `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url` prints.
 */
export function certificateThumbprint(der: Uint8Array): string {
  return base64url.encode(sha256(der));
}
