/**
 * TLS between workloads with X.509-SVIDs (after go-spiffe's `tlsconfig`): each side presents
 * its current SVID, verifies the peer's chain against the current bundle, and then authorizes
 * the peer's SPIFFE ID (its single URI SAN) with an {@link Authorizer}. Host names play no part:
 * SPIFFE ID authorization replaces them, as in go-spiffe.
 *
 * Node has no per-handshake hook on a TLS server to check the client's certificate after
 * verification, so servers are made with {@link createTlsServer} or {@link createHttpsServer},
 * which install that check; the options of {@link tlsServerOptions} refuse every handshake on a
 * server not made by them (fail closed) rather than serve without authorizing.
 */
import { constants, X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import * as https from 'node:https';
import { isIP, type Socket } from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Authorizer } from './authorize';
import { PeerNotAuthorizedError } from './errors';
import { spiffeIdOfCertificate, type SpiffeId } from './svid';
import { accessOf, type SourceMaterial, type X509Source } from './x509-source';

/**
 * Client options with the current SVID and bundle: for `tls.connect`, `https.request` and
 * `https.get`, or an undici `Agent({ connect })`. A snapshot: take new ones per connection (it is
 * cheap), or use {@link mtlsAgent} / {@link mtlsConnector} for long-lived agents.
 */
export interface TlsClientOptions {
  /** The SVID's certificate chain, PEM, leaf first. */
  readonly cert: string;
  /** The SVID's private key, PKCS#8 PEM. */
  readonly key: string;
  /** The bundle's X.509 authorities, PEM: the only trust anchors. */
  readonly ca: string;
  readonly rejectUnauthorized: true;
  readonly minVersion: 'TLSv1.2';
  /** Authorizes the server's SPIFFE ID after its chain verified (instead of its host name). */
  readonly checkServerIdentity: (hostname: string, cert: tls.PeerCertificate) => Error | undefined;
  /**
   * No connection pooling with `https.request`: a pooled TLS session would be resumed without
   * `checkServerIdentity`, and Node's global agent pools by certificate, not by authorizer.
   */
  readonly agent: false;
}

/**
 * Options to connect as the source's SVID to a server whose SPIFFE ID the authorizer accepts.
 * Throws {@link SvidExpiredError} when the SVID has expired, {@link SourceClosedError} after close.
 *
 * @example
 * const socket = tls.connect({ host: 'mcp.internal', port: 8443, ...tlsClientOptions(source, authorizeId('spiffe://writ.local/mcp/github')) });
 * https.get('https://mcp.internal:8443/healthz', tlsClientOptions(source, authorizeMemberOf('writ.local')), onResponse);
 */
export function tlsClientOptions(source: X509Source, authorizer: Authorizer): TlsClientOptions {
  const m = accessOf(source).material();
  return {
    cert: m.svid.certificatesPem,
    key: m.keyPem,
    ca: m.bundle.x509AuthoritiesPem,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    checkServerIdentity: (_hostname, cert) => authorizePeer(chainOf(cert), authorizer),
    agent: false,
  };
}

/**
 * An `https.Agent` that connects as the source's current SVID, trusting its current bundle, and
 * authorizes each server's SPIFFE ID. Connections are pooled per SVID and bundle: after a
 * renewal new connections use the new SVID, and idle ones made with the old one close by themselves.
 * TLS sessions are not resumed (`maxCachedSessions` is 0): Node skips `checkServerIdentity` on a
 * resumed session, so every new connection is a full handshake that the authorizer sees.
 *
 * @example
 * const agent = mtlsAgent(source, authorizeId('spiffe://writ.local/mcp/github'), { keepAlive: true });
 * https.request('https://mcp.internal:8443/mcp', { agent, method: 'POST' }, onResponse);
 */
export function mtlsAgent(source: X509Source, authorizer: Authorizer, options: https.AgentOptions = {}): https.Agent {
  accessOf(source); // a closed source fails now, not at the first request
  return new SpiffeAgent(source, authorizer, options);
}

class SpiffeAgent extends https.Agent {
  constructor(
    private readonly source: X509Source,
    private readonly authorizer: Authorizer,
    options: https.AgentOptions,
  ) {
    super({ ...options, maxCachedSessions: 0 });
  }

  override getName(options?: https.RequestOptions): string {
    let generation = 'closed';
    try {
      generation = String(accessOf(this.source).material().generation);
    } catch {
      // createConnection reports why
    }
    return `${super.getName(options)}:spiffe:${generation}`;
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    let current: TlsClientOptions;
    try {
      current = tlsClientOptions(this.source, this.authorizer);
    } catch (err) {
      callback?.(err as Error, undefined as unknown as Duplex);
      return undefined;
    }
    const { agent: _agent, ...tlsOptions } = current;
    return super.createConnection({ ...options, ...tlsOptions }, callback);
  }
}

/** The connect options undici passes to a connector function. */
export interface ConnectorOptions {
  readonly hostname: string;
  readonly host?: string;
  readonly protocol: string;
  readonly port: string;
  readonly servername?: string;
  readonly localAddress?: string | null;
  readonly httpSocket?: Socket;
}

/** A connector function for undici's `Agent({ connect })`. */
export type Connector = (options: ConnectorOptions, callback: (...args: [null, Socket | tls.TLSSocket] | [Error, null]) => void) => void;

/**
 * A connector for undici (`new Agent({ connect: mtlsConnector(source, authorizer) })`, or
 * `fetch`'s dispatcher): each connection uses the source's current SVID and bundle and
 * authorizes the server's SPIFFE ID.
 *
 * @example
 * const dispatcher = new undici.Agent({ connect: mtlsConnector(source, authorizeId('spiffe://writ.local/mcp/github')) });
 * await undici.request('https://mcp.internal:8443/mcp', { dispatcher });
 */
export function mtlsConnector(source: X509Source, authorizer: Authorizer): Connector {
  accessOf(source);
  return (options, callback) => {
    let current: TlsClientOptions;
    try {
      current = tlsClientOptions(source, authorizer);
    } catch (err) {
      callback(err as Error, null);
      return;
    }
    const { agent: _agent, ...tlsOptions } = current;
    const servername = options.servername ?? (isIP(options.hostname) ? undefined : options.hostname);
    const socket = tls.connect({
      ...tlsOptions,
      host: options.hostname,
      port: Number(options.port) || 443,
      ...(servername !== undefined && { servername }),
      ...(options.localAddress != null && { localAddress: options.localAddress }),
      ...(options.httpSocket !== undefined && { socket: options.httpSocket }),
      ALPNProtocols: ['http/1.1'],
    });
    socket.setNoDelay(true);
    const onError = (err: Error) => callback(err, null);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      callback(null, socket);
    });
  };
}

// ---------------------------------------------------------------------------------------
// Servers.

/** Where {@link tlsServerOptions} keeps what the server factories need. @internal */
export const binding: unique symbol = Symbol('writ.sdk.tlsServerBinding');

/** @internal */
export interface ServerBinding {
  readonly source: X509Source;
  readonly authorizer: Authorizer;
}

/** Options for {@link createTlsServer} and {@link createHttpsServer}; made by {@link tlsServerOptions}. */
export interface TlsServerOptions extends tls.TlsOptions {
  readonly requestCert: true;
  readonly rejectUnauthorized: true;
  /**
   * Refuses every handshake: Node's own `createServer` cannot authorize client SPIFFE IDs, so a
   * server made by it with these options serves nobody. The server factories replace it with one
   * that serves the current SVID.
   */
  readonly SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  /** @internal */
  readonly [binding]: ServerBinding;
}

/**
 * Server options that present the source's current SVID, require a client SVID that chains to
 * the current bundle, and authorize the client's SPIFFE ID, for {@link createTlsServer} and
 * {@link createHttpsServer}. Other server options may be spread in beside them. Given to Node's
 * own `tls.createServer` or `https.createServer` they refuse every handshake (fail closed):
 * Node offers no hook in options to authorize a client after its chain verified.
 *
 * @example
 * const server = createHttpsServer({ ...tlsServerOptions(source, authorizeId('spiffe://writ.local/agent/assistant')), requestTimeout: 10_000 }, app);
 */
export function tlsServerOptions(source: X509Source, authorizer: Authorizer): TlsServerOptions {
  accessOf(source);
  return {
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    SNICallback: (_servername, cb) => cb(unbound()),
    [binding]: { source, authorizer },
  };
}

/**
 * A `tls.Server` with {@link tlsServerOptions}: presents the current SVID (with or without SNI),
 * verifies each client's SVID against the current bundle, and closes connections whose SPIFFE ID
 * the authorizer refuses before `secureConnection` listeners see them (the refusal is emitted as
 * `tlsClientError`). It follows the source until it closes.
 *
 * @example
 * const server = createTlsServer(tlsServerOptions(source, authorizeMemberOf('writ.local')), (socket) => {
 *   console.log('client', peerId(socket).uri);
 * });
 */
export function createTlsServer(options: TlsServerOptions, secureConnectionListener?: (socket: tls.TLSSocket) => void): tls.Server {
  const server = tls.createServer(serverOptions(options), secureConnectionListener);
  bindServer(server, options);
  return server;
}

/**
 * An `https.Server` with {@link tlsServerOptions}: as {@link createTlsServer}, and requests come
 * only over connections whose client SPIFFE ID the authorizer accepted; `peerId(req.socket)`
 * names the client.
 *
 * @example
 * const server = createHttpsServer(tlsServerOptions(source, authorizeId(agentId)), (req, res) => {
 *   res.end(`hello ${peerId(req.socket).uri}`);
 * });
 */
export function createHttpsServer(options: TlsServerOptions, requestListener?: RequestListener): https.Server {
  const server = https.createServer(serverOptions(options), requestListener);
  bindServer(server, options);
  return server;
}

function bindingOf(options: TlsServerOptions): ServerBinding {
  const state = options?.[binding];
  if (!state) throw new TypeError('createTlsServer and createHttpsServer take the options of tlsServerOptions(source, authorizer)');
  return state;
}

/** The options with an SNICallback that serves the current SVID and bundle (one context per generation). */
function serverOptions(options: TlsServerOptions): tls.TlsOptions {
  const { source } = bindingOf(options);
  let cached: { generation: number; context: tls.SecureContext } | undefined;
  return {
    ...options,
    requestCert: true,
    rejectUnauthorized: true,
    secureOptions: noRenegotiation(options),
    SNICallback: (_servername, cb) => {
      try {
        const m = accessOf(source).material();
        if (cached?.generation !== m.generation) cached = { generation: m.generation, context: tls.createSecureContext(contextOptions(options, m)) };
        cb(null, cached.context);
      } catch (err) {
        cb(err as Error);
      }
    },
  };
}

function bindServer(server: tls.Server, options: TlsServerOptions): void {
  const { source, authorizer } = bindingOf(options);
  // The default context serves clients that send no SNI (e.g. those connecting to an IP address).
  const refresh = () => {
    try {
      server.setSecureContext(contextOptions(options, accessOf(source).material()));
    } catch {
      // Stale or closed: the SNI path refuses, and the last context's certificate expires as it must.
    }
  };
  refresh();
  source.on('update', refresh);
  server.once('close', () => source.off('update', refresh));
  // 'secureConnection' is how a server hands a connection to its listeners (https' own included):
  // a client the authorizer refuses is closed instead, and no listener ever sees it.
  const emit = server.emit as (this: tls.Server, event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = function (this: tls.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'secureConnection') {
      const socket = args[0] as tls.TLSSocket;
      const err = authorizeClient(socket, authorizer);
      if (err) {
        socket.destroy();
        return emit.call(this, 'tlsClientError', err, socket);
      }
    }
    return emit.call(this, event, ...args);
  } as typeof server.emit;
}

function authorizeClient(socket: tls.TLSSocket, authorizer: Authorizer): Error | undefined {
  if (!socket.authorized) return new PeerNotAuthorizedError(`the client certificate did not verify: ${String(socket.authorizationError)}`);
  if (!socket.getPeerX509Certificate()) return new PeerNotAuthorizedError('the client presented no certificate');
  return authorizePeer(chainOf(socket.getPeerCertificate(true)), authorizer);
}

const unbound = () => new Error('writ/sdk: a server with tlsServerOptions must be made by createTlsServer or createHttpsServer, which authorize client SPIFFE IDs');

/** The caller's context options (ciphers, versions, …) with the current SVID as certificate and the bundle as the only trust. */
function contextOptions(options: TlsServerOptions, m: SourceMaterial): tls.SecureContextOptions {
  return { ...options, cert: m.svid.certificatesPem, key: m.keyPem, ca: m.bundle.x509AuthoritiesPem, pfx: undefined, secureOptions: noRenegotiation(options) };
}

/**
 * The caller's secure options, and no renegotiation (as Go's servers, and so go-spiffe's): a
 * client could otherwise present another certificate after the authorizer accepted the first.
 */
const noRenegotiation = (options: TlsServerOptions): number => (options.secureOptions ?? 0) | constants.SSL_OP_NO_RENEGOTIATION;

// ---------------------------------------------------------------------------------------
// Peers.

/**
 * The verified peer's SPIFFE ID on a TLS connection (e.g. `req.socket` in a handler of
 * {@link createHttpsServer}). Throws {@link PeerNotAuthorizedError} when the connection has no
 * verified X.509-SVID peer.
 */
export function peerId(socket: tls.TLSSocket | Socket): SpiffeId {
  const s = socket as tls.TLSSocket;
  if (typeof s.getPeerX509Certificate !== 'function' || !s.authorized) throw new PeerNotAuthorizedError('the connection has no verified peer certificate');
  const cert = s.getPeerX509Certificate();
  if (!cert) throw new PeerNotAuthorizedError('the peer presented no certificate');
  return spiffeIdOfCertificate(cert);
}

/** Authorizes a verified chain, leaf first: a valid X.509-SVID whose SPIFFE ID the authorizer accepts. */
function authorizePeer(chain: readonly X509Certificate[], authorizer: Authorizer): Error | undefined {
  if (chain.length === 0) return new PeerNotAuthorizedError('the peer presented no certificate');
  let id: SpiffeId;
  try {
    id = spiffeIdOfCertificate(chain[0]!);
  } catch (err) {
    return err as Error;
  }
  try {
    return authorizer(id, chain);
  } catch (err) {
    return err instanceof Error ? err : new PeerNotAuthorizedError(String(err), id.uri); // an authorizer that throws refuses
  }
}

/** The chain a client verified, from `checkServerIdentity`'s detailed certificate. */
function chainOf(cert: tls.PeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let c: tls.DetailedPeerCertificate | undefined = cert as tls.DetailedPeerCertificate;
  while (c?.raw && chain.length < 10) {
    chain.push(new X509Certificate(c.raw));
    if (!c.issuerCertificate || c.issuerCertificate === c || c.issuerCertificate.fingerprint256 === c.fingerprint256) break;
    c = c.issuerCertificate;
  }
  return chain;
}
