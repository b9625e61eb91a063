/**
 * The client certificate of a request that reached this server through a proxy that terminated
 * TLS: RFC 9440 `Client-Cert` (the leaf, DER, as a Structured Field Byte Sequence) and
 * `Client-Cert-Chain` (the rest, a List of Byte Sequences), believed only when the request comes
 * from a configured trusted proxy — identified by its own X.509-SVID on the connection, or by
 * its address — and never otherwise (RFC 9440 §4: anyone can send the header).
 *
 * A header from a peer that is not a trusted proxy is refused rather than ignored: it is either
 * a misconfiguration or an attempt to pass off another client's certificate, and both should
 * be seen.
 */
import { BlockList, isIP } from 'node:net';
import { InvalidRequest } from './errors';

/** Which peers may tell this server a client's certificate. */
export interface TrustedProxies {
  /** The SPIFFE IDs of proxies that connect with their own X.509-SVID (mTLS between proxy and server). */
  readonly spiffeIds?: readonly string[];
  /** Source addresses or CIDR blocks of proxies (`10.0.0.7`, `10.0.0.0/24`, `fd00::/8`). */
  readonly addresses?: readonly string[];
}

/** The connection a request came over, as far as proxy trust needs it. */
export interface ProxyPeer {
  /** The remote address of the TCP connection (an IPv4-mapped IPv6 address is read as IPv4). */
  readonly address: string | undefined;
  /** The SPIFFE ID of the TLS client certificate of the connection, when TLS verified one. */
  readonly spiffeId?: string | undefined;
}

/** The forwarded certificate: the leaf and the chain above it, DER. */
export interface ForwardedCertificate {
  readonly certificate: Uint8Array;
  readonly chain: readonly Uint8Array[];
}

/** RFC 9440 §2.2, §2.3 header names (lower case, as Node gives them). */
export const CLIENT_CERT_HEADER = 'client-cert';
export const CLIENT_CERT_CHAIN_HEADER = 'client-cert-chain';

/** Largest header value read: a certificate chain of a few certificates, base64. */
const MAX_HEADER_LENGTH = 32 * 1024;
/** Most certificates in a forwarded chain. */
const MAX_CHAIN = 8;

/** Compiled proxy trust: `trusts(peer)` answers whether the peer is a trusted proxy. */
export class ProxyTrust {
  readonly #ids: ReadonlySet<string>;
  readonly #blocks = new BlockList();
  readonly #any: boolean;

  constructor(proxies: TrustedProxies = {}) {
    this.#ids = new Set(proxies.spiffeIds ?? []);
    for (const id of this.#ids) if (!id.startsWith('spiffe://')) throw new TypeError(`trusted proxy ${JSON.stringify(id)} is not a SPIFFE ID`);
    for (const a of proxies.addresses ?? []) {
      const [address, bits] = a.split('/');
      const family = isIP(address ?? '');
      if (family === 0) throw new TypeError(`trusted proxy address ${JSON.stringify(a)} is not an IP address or CIDR block`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.#blocks.addAddress(address!, type);
      else {
        const prefix = Number(bits);
        if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new TypeError(`trusted proxy block ${JSON.stringify(a)} has a bad prefix length`);
        // A block this wide trusts most of the network to vouch for client certificates: a mistake, never a proxy fleet.
        if (prefix < (family === 4 ? 8 : 16)) throw new TypeError(`trusted proxy block ${JSON.stringify(a)} is wider than /${family === 4 ? 8 : 16}`);
        this.#blocks.addSubnet(address!, prefix, type);
      }
    }
    this.#any = this.#ids.size > 0 || (proxies.addresses ?? []).length > 0;
  }

  /** Whether any proxy is trusted at all. */
  get configured(): boolean {
    return this.#any;
  }

  trusts(peer: ProxyPeer): boolean {
    if (peer.spiffeId !== undefined && this.#ids.has(peer.spiffeId)) return true;
    const address = unmapped(peer.address);
    const family = address === undefined ? 0 : isIP(address);
    return family !== 0 && this.#blocks.check(address!, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The certificate a trusted proxy forwarded for this request; undefined when the request
   * carries no `Client-Cert` (for a trusted proxy: the client presented none). Throws
   * {@link InvalidRequest} for the headers from a peer that is not trusted, or malformed.
   */
  forwarded(headers: Readonly<Record<string, string | string[] | undefined>>, peer: ProxyPeer): ForwardedCertificate | undefined {
    const leaf = headers[CLIENT_CERT_HEADER];
    const chain = headers[CLIENT_CERT_CHAIN_HEADER];
    if (leaf === undefined && chain === undefined) return undefined;
    if (!this.trusts(peer)) throw new InvalidRequest('Client-Cert is accepted only from a trusted proxy (RFC 9440 §4), and this peer is not one');
    if (leaf === undefined) throw new InvalidRequest('Client-Cert-Chain without Client-Cert (RFC 9440 §2.3)');
    if (Array.isArray(leaf)) throw new InvalidRequest('Client-Cert must be sent once (RFC 9440 §2.2)');
    return { certificate: parseClientCert(leaf), chain: chain === undefined ? [] : parseClientCertChain(Array.isArray(chain) ? chain.join(',') : chain) };
  }
}

/** `::ffff:10.0.0.7` → `10.0.0.7`. */
const unmapped = (address: string | undefined) => (address?.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);

/** RFC 8941 §3.3.5 Byte Sequence: `:` base64 (RFC 4648 §4, padded) `:`. */
const BYTE_SEQUENCE = /^:([A-Za-z0-9+/]*={0,2}):$/;

function byteSequence(text: string, what: string): Uint8Array {
  const m = BYTE_SEQUENCE.exec(text.trim());
  // RFC 8941 §4.2.7: a parser SHOULD NOT fail when the "=" padding is missing.
  const length = m?.[1]!.replace(/=+$/, '').length ?? 0;
  if (!m || length === 0 || length % 4 === 1 || (m[1]!.includes('=') && m[1]!.length % 4 !== 0)) throw new InvalidRequest(`${what} is not a Structured Field Byte Sequence of base64 DER (RFC 9440 §2.2, RFC 8941 §3.3.5)`);
  return new Uint8Array(Buffer.from(m[1]!, 'base64'));
}

/** RFC 9440 §2.2: the `Client-Cert` value, the leaf certificate's DER. */
export function parseClientCert(value: string): Uint8Array {
  if (typeof value !== 'string' || value.length > MAX_HEADER_LENGTH) throw new InvalidRequest(`Client-Cert is longer than ${MAX_HEADER_LENGTH} characters`);
  return byteSequence(value, 'Client-Cert');
}

/** RFC 9440 §2.3: the `Client-Cert-Chain` value (a List of Byte Sequences), the certificates above the leaf, DER. */
export function parseClientCertChain(value: string): Uint8Array[] {
  if (typeof value !== 'string' || value.length > MAX_HEADER_LENGTH) throw new InvalidRequest(`Client-Cert-Chain is longer than ${MAX_HEADER_LENGTH} characters`);
  const members = value.split(',');
  if (members.length > MAX_CHAIN) throw new InvalidRequest(`Client-Cert-Chain holds more than ${MAX_CHAIN} certificates`);
  return members.map((m) => byteSequence(m, 'a Client-Cert-Chain member'));
}

/** The RFC 9440 `Client-Cert` value for a certificate's DER (for proxies and tests). */
export const formatClientCert = (der: Uint8Array): string => `:${Buffer.from(der).toString('base64')}:`;
