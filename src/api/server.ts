import { constants as cryptoConstants } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsCredentials } from '../ca';
import { ConfigError } from '../config';
import { certificateToPem, type TrustBundle } from '../spiffe/bundle';

/** The API's TLS listener, whose certificate and client trust anchors change at run time. */
export interface ApiServer extends HttpsServer {
  /** Serves `credentials` from the next handshake on, trusting client certificates from `anchors`. */
  serve(credentials: TlsCredentials, anchors: TrustBundle): void;
}

/** Client certificates are checked against the bundle's X.509 authorities. */
const tlsOptions = (c: TlsCredentials, anchors: TrustBundle) => ({ cert: c.certChainPem, key: c.keyPem, ca: anchors.x509Authorities.map(certificateToPem).join('') });

/** The HTTPS server of the API, with the server SVID as its certificate. */
export function createApiServer(credentials: TlsCredentials, anchors: TrustBundle, handler: (req: IncomingMessage, res: ServerResponse) => void): ApiServer {
  const server = createHttpsServer(
    {
      ...tlsOptions(credentials, anchors),
      requestCert: true, // mTLS is offered; routes that need it check the peer themselves
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION, // a connection keeps the client certificate it was verified with
    },
    handler,
  );
  return Object.assign(server, { serve: (c: TlsCredentials, a: TrustBundle) => server.setSecureContext(tlsOptions(c, a)) });
}

/** Listens on host:port; a port that cannot be bound stops start-up naming `setting`. */
export function listen(server: Server | HttpsServer, port: number, host: string, setting: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new ConfigError(setting, `cannot listen on ${host}:${port}: ${e.code}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

export const urlOf = (scheme: string, a: AddressInfo) => `${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;

/** Stops accepting and lets in-flight requests finish, closing idle keep-alive connections; after `graceSeconds`, closes the rest. */
export async function drain(server: HttpsServer, graceSeconds: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const idle = setInterval(() => server.closeIdleConnections(), 100);
  const force = setTimeout(() => server.closeAllConnections(), graceSeconds * 1000);
  server.closeIdleConnections();
  await closed;
  clearInterval(idle);
  clearTimeout(force);
}

/** Closes a listener and every connection it has now (the ops listener: probes and metrics). */
export function closeNow(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
