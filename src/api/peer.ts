import type { Request } from 'express';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { PeerSvid } from '../attestation/issuer';

const tlsSocket = (req: Request) => req.socket as TLSSocket;

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
  const socket = tlsSocket(req);
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1 || !uris[0]!.startsWith(`spiffe://${trustDomain}/`)) return undefined;
  return { spiffeId: uris[0]!, serial: cert.serialNumber.toLowerCase(), fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase() };
}
