import type { Request } from 'express';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { PeerSvid } from '../attestation/issuer';

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

/** The verified client certificate of the request's connection, if TLS verified one. */
export function peerLeaf(req: Request): PeerLeaf | undefined {
  const socket = tlsSocket(req);
  if (!socket.authorized) return undefined;
  let leaf = leaves.get(socket);
  if (!leaf) {
    const cert = socket.getPeerCertificate();
    // RFC 8446 §2.2: a resumed session presents no certificate; when its first handshake had none either, Node still reports it authorized.
    if (!cert?.raw || typeof cert.serialNumber !== 'string' || typeof cert.fingerprint256 !== 'string') return undefined;
    leaf = {
      uris: (cert.subjectaltname ?? '')
        .split(', ')
        .filter((n) => n.startsWith('URI:'))
        .map((n) => n.slice(4)),
      serial: cert.serialNumber.toLowerCase(),
      fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
      der: new Uint8Array(cert.raw),
      notAfter: new Date(cert.valid_to),
    };
    leaves.set(socket, leaf);
  }
  return leaf;
}

/** The client's certificate chain as presented, DER, leaf first (verified or not). */
export function peerCertificates(req: Request): Uint8Array[] {
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
