/**
 * A WHATWG `fetch` that speaks mutual TLS with an X.509-SVID: Node 20's `fetch` takes no client
 * certificate, so this one runs over `node:https`. For reaching Writ (JWKS, introspection) and
 * for MCP clients (the SDK transports' `fetch` option).
 */
import { Agent, request as httpsRequest } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { Readable } from 'node:stream';

/** PEM text (or several, or DER buffers) as `tls.createSecureContext` takes them. */
export type PemInput = string | Buffer | readonly (string | Buffer)[];

/** TLS settings for talking to Writ, or for any HTTPS client with an X.509-SVID. */
export interface TlsClientOptions {
  /** Trust anchors: Writ's trust bundle (PEM). Without it, the system's CAs. */
  readonly ca?: PemInput;
  /** Client certificate chain (the X.509-SVID, PEM, leaf first) for mutual TLS. */
  readonly cert?: PemInput;
  /** Its private key (PEM). */
  readonly key?: PemInput;
  /** Replaces the host name check, e.g. to check the server's SPIFFE ID instead (X509-SVID §5). */
  readonly checkServerIdentity?: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

/** Statuses whose responses have no body (Fetch standard "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * A WHATWG `fetch` over `node:https` that trusts `ca` and presents `cert`/`key` as the client
 * certificate: for reaching Writ, or for an MCP client's transport (the SDK's `fetch` option).
 * The response body streams (Server-Sent Events work); `signal` aborts the request and the
 * body; redirects are never followed (with `redirect: 'error'` one fails the request, as
 * fetch does). One connection per request.
 */
export function tlsFetch(tls: TlsClientOptions, options: { keepAlive?: boolean } = {}): typeof fetch {
  // Keep-alive (Writ's own endpoints: decisions, call reports, introspection): connections and
  // their TLS sessions are reused; an idle one is closed after 4 s, before Node's servers close
  // theirs (5 s), and a request whose reused connection the server had closed is sent once more
  // (those endpoints are idempotent: a decision or a report names its call).
  const agent = options.keepAlive
    ? new Agent({
        keepAlive: true,
        maxSockets: 64,
        timeout: 4000,
        ...(tls.ca !== undefined && { ca: tls.ca as string | Buffer | (string | Buffer)[] }),
        ...(tls.cert !== undefined && { cert: tls.cert as string | Buffer | (string | Buffer)[] }),
        ...(tls.key !== undefined && { key: tls.key as string | Buffer | (string | Buffer)[] }),
        ...(tls.checkServerIdentity !== undefined && { checkServerIdentity: tls.checkServerIdentity }),
      })
    : undefined;
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== 'https:') throw new TypeError(`tlsFetch: only https URLs are fetched, not ${url.protocol}`);
    const body = request.body === null ? undefined : Buffer.from(await request.arrayBuffer());
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => (headers[name] = value));
    if (body !== undefined) headers['content-length'] = String(body.length);
    const signal = request.signal;
    signal.throwIfAborted();
    const send = (retry: boolean): Promise<Response> => new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: request.method,
          headers,
          agent: agent ?? false,
          ...(tls.ca !== undefined && { ca: tls.ca as string | Buffer | (string | Buffer)[] }),
          ...(tls.cert !== undefined && { cert: tls.cert as string | Buffer | (string | Buffer)[] }),
          ...(tls.key !== undefined && { key: tls.key as string | Buffer | (string | Buffer)[] }),
          ...(tls.checkServerIdentity !== undefined && { checkServerIdentity: tls.checkServerIdentity }),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400 && request.redirect === 'error') {
            res.destroy();
            return reject(new TypeError(`tlsFetch: redirect refused (HTTP ${status})`));
          }
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const noBody = NULL_BODY.has(status) || request.method === 'HEAD';
          if (noBody) res.resume();
          resolve(
            new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status,
              statusText: res.statusMessage ?? '',
              headers: responseHeaders,
            }),
          );
        },
      );
      // Aborting destroys the connection: before the response that rejects, after it the body stream errors.
      const abort = () => req.destroy(signal.reason instanceof Error ? signal.reason : new DOMException('the request was aborted', 'AbortError'));
      const done = () => signal.removeEventListener('abort', abort);
      signal.addEventListener('abort', abort, { once: true });
      req.on('response', (res) => res.on('close', done));
      req.on('error', (err: NodeJS.ErrnoException) => {
        done();
        // The server closed a kept-alive connection as it was reused: once more, on a new one.
        if (retry && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return void send(false).then(resolve, reject);
        reject(err);
      });
      req.end(body);
    });
    return send(agent !== undefined);
  };
}
