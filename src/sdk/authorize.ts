import type { X509Certificate } from 'node:crypto';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../spiffe/id';
import { PeerNotAuthorizedError } from './errors';

/**
 * Decides whether a TLS peer may talk to us, from its SPIFFE ID, after its certificate chain
 * verified against the bundle (as go-spiffe's `tlsconfig.Authorizer`). Returns `undefined` to
 * accept, or the error that refuses, as Node's `checkServerIdentity` does.
 *
 * @example
 * const onlyAgents: Authorizer = (id) =>
 *   id.path.startsWith('/agent/') ? undefined : new PeerNotAuthorizedError(`${id.uri} is not an agent`, id.uri);
 */
export type Authorizer = (peerId: SpiffeId, verifiedChain: readonly X509Certificate[]) => Error | undefined;

/**
 * Accepts exactly one SPIFFE ID.
 *
 * @example tlsClientOptions(source, authorizeId('spiffe://writ.local/mcp/github'))
 */
export function authorizeId(id: string): Authorizer {
  const wanted = parseSpiffeId(id).uri;
  return (peer) => (peer.uri === wanted ? undefined : new PeerNotAuthorizedError(`peer ${peer.uri} is not ${wanted}`, peer.uri));
}

/**
 * Accepts any of the SPIFFE IDs given (at least one).
 *
 * @example authorizeOneOf('spiffe://writ.local/agent/a', 'spiffe://writ.local/agent/b')
 */
export function authorizeOneOf(...ids: string[]): Authorizer {
  if (ids.length === 0) throw new TypeError('authorizeOneOf needs at least one SPIFFE ID');
  const wanted = new Set(ids.map((id) => parseSpiffeId(id).uri));
  return (peer) => (wanted.has(peer.uri) ? undefined : new PeerNotAuthorizedError(`peer ${peer.uri} is not one of ${[...wanted].join(', ')}`, peer.uri));
}

/**
 * Accepts any SPIFFE ID of one trust domain.
 *
 * @example authorizeMemberOf('writ.local')
 */
export function authorizeMemberOf(trustDomain: string): Authorizer {
  const td = parseTrustDomain(trustDomain);
  return (peer) => (peer.trustDomain === td ? undefined : new PeerNotAuthorizedError(`peer ${peer.uri} is not a member of trust domain ${td}`, peer.uri));
}

/**
 * Accepts any peer with a valid X.509-SVID that chains to the bundle. Never a default: name it
 * where you mean it.
 */
export function authorizeAny(): Authorizer {
  return () => undefined;
}
