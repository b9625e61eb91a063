import { InvalidSpiffeId } from './errors';

/** A SPIFFE ID, parsed and validated (SPIFFE-ID §2). */
export interface SpiffeId {
  readonly trustDomain: string;
  /** "" for the trust domain's own ID, else "/seg/seg". */
  readonly path: string;
  /** The canonical URI form, `spiffe://<trust-domain><path>`. */
  readonly uri: string;
}

const SCHEME = 'spiffe://';
// SPIFFE-ID §2.1: trust domain names contain only lowercase letters, digits, dots, dashes and underscores.
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
// SPIFFE-ID §2.2: path segments contain only letters, digits, dots, dashes and underscores.
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;
// SPIFFE-ID §2.3: URIs are at most 2048 bytes; trust domain names at most 255 bytes.
const MAX_URI_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;

/** Returns why `name` is not a valid SPIFFE trust domain name, or undefined if it is (SPIFFE-ID §2.1). */
export function trustDomainProblem(name: string): string | undefined {
  if (name.length === 0) return 'trust domain is empty';
  if (Buffer.byteLength(name) > MAX_TRUST_DOMAIN_BYTES) return `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  if (name.includes(':')) return 'trust domain must not contain a scheme or a port';
  if (name.includes('@')) return 'trust domain must not contain userinfo';
  if (!TRUST_DOMAIN_CHARS.test(name)) return 'trust domain may contain only lowercase letters, digits, ".", "-" and "_"';
  return undefined;
}

/** Validates a trust domain name (SPIFFE-ID §2.1), throwing InvalidSpiffeId. */
export function parseTrustDomain(name: string): string {
  const problem = trustDomainProblem(name);
  if (problem) throw new InvalidSpiffeId(problem);
  return name;
}

/**
 * Parses and validates a SPIFFE ID (SPIFFE-ID §2).
 *
 * @example parseSpiffeId('spiffe://writ.local/writ/server').path // '/writ/server'
 */
export function parseSpiffeId(uri: string): SpiffeId {
  if (Buffer.byteLength(uri) > MAX_URI_BYTES) throw new InvalidSpiffeId(`SPIFFE ID is longer than ${MAX_URI_BYTES} bytes`);
  if (!uri.startsWith(SCHEME)) throw new InvalidSpiffeId('SPIFFE ID must start with "spiffe://" (scheme is lowercase)');
  const rest = uri.slice(SCHEME.length);
  if (/[?#]/.test(rest)) throw new InvalidSpiffeId('SPIFFE ID must not contain a query or a fragment');
  if (rest.includes('%')) throw new InvalidSpiffeId('SPIFFE ID must not contain percent-encoded characters');
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  parseTrustDomain(trustDomain);
  if (path !== '') {
    for (const segment of path.slice(1).split('/')) {
      if (segment === '') throw new InvalidSpiffeId('SPIFFE ID path must not contain empty segments or a trailing "/"');
      if (segment === '.' || segment === '..') throw new InvalidSpiffeId('SPIFFE ID path must not contain "." or ".." segments');
      if (!SEGMENT_CHARS.test(segment)) throw new InvalidSpiffeId('SPIFFE ID path segments may contain only letters, digits, ".", "-" and "_"');
    }
  }
  return { trustDomain, path, uri };
}

/**
 * The path under which the broker's own identities live (its server SVID is
 * `spiffe://<td>/writ/server`). Writ's reservation, not SPIFFE's: no registration entry may
 * name a path here, and the CA signs one only for the broker itself.
 */
export const BROKER_PATH = '/writ';

/** Whether a SPIFFE ID path is the broker's own: `/writ` or under `/writ/`. */
export const isBrokerPath = (path: string): boolean => path === BROKER_PATH || path.startsWith(`${BROKER_PATH}/`);

/** Builds the SPIFFE ID of a workload in `trustDomain`, validating the result. */
export function spiffeIdOf(trustDomain: string, path = ''): SpiffeId {
  return parseSpiffeId(`${SCHEME}${trustDomain}${path}`);
}
