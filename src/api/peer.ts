import type { Request, RequestHandler } from 'express';
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { PeerSvid } from '../attestation/issuer';
import { EKU, parseCertificate, validateCertificatePath, type PathCertificate } from '../attestation/path-validation';
import type { Clock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import { InvalidRequest } from '../tokens/errors';
import { ProxyTrust, type TrustedProxies } from '../tokens/client-cert';

const tlsSocket = (req: Request) => req.socket as TLSSocket;

/** What Writ reads of a verified client certificate. */
export interface PeerLeaf {
  readonly uris: readonly string[];
  /** Hex, lower case. */
  readonly serial: string;
  /** SHA-256 of the DER, hex, lower case. */
  readonly fingerprint: string;
  readonly der: Uint8Array;
  readonly notAfter: Date;
}

/**
 * A connection's client certificate is parsed once per connection, not per request. TLS 1.3
 * has no renegotiation and the API listener refuses it for TLS 1.2 (SSL_OP_NO_RENEGOTIATION),
 * so the certificate a connection was verified with is the one it keeps.
 */
const leaves = new WeakMap<TLSSocket, PeerLeaf>();

/**
 * What a trusted proxy told about the request's client (RFC 9440): its certificate, verified
 * here against the trust bundle (`leaf`, undefined when it does not verify), and the chain as
 * forwarded. `null`: the request came from a trusted proxy without a client certificate. A
 * request from a trusted proxy never counts the proxy's own certificate as the client's.
 */
interface Forwarded {
  readonly leaf: PeerLeaf | undefined;
  readonly chain: readonly Uint8Array[];
}
const forwardedOf = new WeakMap<Request, Forwarded | null>();

/** The verified client certificate of the request: the TLS peer's, or, from a trusted proxy, the one it forwarded and Writ verified. */
export function peerLeaf(req: Request): PeerLeaf | undefined {
  if (forwardedOf.has(req)) return forwardedOf.get(req)?.leaf;
  return connectionLeaf(req);
}

/** The verified client certificate of the request's own TLS connection. */
function connectionLeaf(req: Request): PeerLeaf | undefined {
  const socket = tlsSocket(req);
  if (!socket.authorized) return undefined;
  let leaf = leaves.get(socket);
  if (!leaf) {
    const cert = socket.getPeerCertificate();
    // RFC 8446 §2.2: a resumed session presents no certificate; when its first handshake had none either, Node still reports it authorized.
    if (!cert?.raw || typeof cert.serialNumber !== 'string' || typeof cert.fingerprint256 !== 'string') return undefined;
    leaf = leafOf(cert);
    leaves.set(socket, leaf);
  }
  return leaf;
}

/** The client's certificate chain as presented (to this server, or to a trusted proxy that forwarded it), DER, leaf first (verified or not). */
export function peerCertificates(req: Request): Uint8Array[] {
  if (forwardedOf.has(req)) return [...(forwardedOf.get(req)?.chain ?? [])];
  const socket = tlsSocket(req);
  if (typeof socket.getPeerCertificate !== 'function') return [];
  const chain: Uint8Array[] = [];
  let cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
  while (cert && 'raw' in cert && cert.raw && chain.length < 10) {
    chain.push(new Uint8Array(cert.raw));
    const next = cert.issuerCertificate;
    if (!next || next === cert || next.fingerprint256 === cert.fingerprint256) break;
    cert = next;
  }
  return chain;
}

/**
 * The caller's X.509-SVID on an mTLS route: present only when TLS verified the client
 * certificate against the bundle and it carries exactly one SPIFFE ID of this trust domain.
 */
export function peerSvid(req: Request, trustDomain: string): PeerSvid | undefined {
  const leaf = peerLeaf(req);
  if (!leaf || leaf.uris.length !== 1 || !leaf.uris[0]!.startsWith(`spiffe://${trustDomain}/`)) return undefined;
  return { spiffeId: leaf.uris[0]!, serial: leaf.serial, fingerprint: leaf.fingerprint };
}

/**
 * RFC 9440 behind a proxy that terminates TLS: from a configured trusted proxy (by the SPIFFE
 * ID of its own X.509-SVID on the connection, or its address), the client certificate is the one
 * in `Client-Cert` (and `Client-Cert-Chain`), which Writ verifies against the current trust
 * bundle itself — the proxy proved the client holds the key, not that Writ issued it; the
 * proxy's own certificate is then never taken for the client's. From any other peer the headers
 * are refused (400), so that nobody can pass off another workload's certificate.
 */
export function forwardedClientCertificates(deps: { proxies: TrustedProxies; bundle: { current(): Promise<TrustBundle> }; clock: Clock }): RequestHandler {
  const trust = new ProxyTrust(deps.proxies);
  // The bundle's authorities, parsed once per bundle sequence rather than per request.
  let anchors: { sequence: number; parsed: PathCertificate[] } | undefined;
  const anchorsNow = async (): Promise<PathCertificate[]> => {
    const bundle = await deps.bundle.current();
    if (anchors?.sequence !== bundle.sequence) anchors = { sequence: bundle.sequence, parsed: bundle.x509Authorities.map((der) => parseCertificate(der)) };
    return anchors.parsed;
  };
  return async (req, _res, next) => {
    const own = connectionLeaf(req);
    const peer = { address: req.socket.remoteAddress, spiffeId: own?.uris.length === 1 ? own.uris[0] : undefined };
    const forwarded = trust.forwarded(req.headers, peer); // throws for the headers from an untrusted peer
    if (forwarded === undefined) {
      if (trust.configured && trust.trusts(peer)) forwardedOf.set(req, null);
      return next();
    }
    const chain = [forwarded.certificate, ...forwarded.chain];
    forwardedOf.set(req, { leaf: verifiedLeaf(chain, await anchorsNow(), deps.clock), chain });
    next();
  };
}

/** The forwarded leaf as a PeerLeaf when it chains to an X.509 authority of the bundle now (RFC 5280 §6), else undefined. */
function verifiedLeaf(chain: readonly Uint8Array[], anchors: readonly PathCertificate[], clock: Clock): PeerLeaf | undefined {
  let parsed: PathCertificate[];
  try {
    parsed = chain.map((der) => parseCertificate(der));
  } catch {
    throw new InvalidRequest('Client-Cert does not hold an X.509 certificate (RFC 9440 §2.2)');
  }
  const result = validateCertificatePath(parsed[0]!, { presented: parsed.slice(1), configured: [], anchors, time: clock.now(), purpose: EKU.clientAuth });
  if (!result.ok) return undefined;
  const cert = new X509Certificate(chain[0]!);
  return leafOf({ subjectaltname: cert.subjectAltName ?? '', serialNumber: cert.serialNumber, fingerprint256: cert.fingerprint256, raw: cert.raw, valid_to: cert.validTo });
}

/** What Writ reads of a certificate, from the fields of Node's TLS peer certificate. */
function leafOf(cert: Pick<DetailedPeerCertificate, 'subjectaltname' | 'serialNumber' | 'fingerprint256' | 'raw' | 'valid_to'>): PeerLeaf {
  return {
    uris: (cert.subjectaltname ?? '')
      .split(', ')
      .filter((n) => n.startsWith('URI:'))
      .map((n) => n.slice(4)),
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    der: new Uint8Array(cert.raw),
    notAfter: new Date(cert.valid_to),
  };
}
