import { Agent, request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { oauthErrorFrom, WritProblemError, WritProtocolError, WritUnavailableError, type ProblemDetails } from './errors';

/** The TLS credentials of one call: the trust (the current bundle) and, on mTLS routes, the SVID. */
export interface CallCredentials {
  /** PEM CA certificates that the broker's certificate must chain to. */
  readonly ca: string;
  /** PEM client certificate chain (mTLS routes and x509pop attestation). */
  readonly cert?: string | Buffer;
  /** PEM private key of `cert`. */
  readonly key?: string | Buffer;
}

export interface BrokerCall {
  readonly method: 'GET' | 'POST';
  /** Path and query, from the root of the broker's URL. */
  readonly path: string;
  readonly credentials: CallCredentials;
  readonly json?: unknown;
  readonly form?: URLSearchParams;
  readonly accept?: string;
  /** Further request headers (e.g. `DPoP`); they cannot replace accept, content-type or content-length. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A 2xx answer. */
export interface BrokerAnswer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * Checks the broker's certificate after it chained to the bundle: by default its DNS name or IP
 * address (RFC 9110 §4.3.4, as any HTTPS client does); or, given the broker's SPIFFE ID, that the
 * certificate is an X.509-SVID of exactly that ID (for brokers reached by a name their
 * certificate does not carry).
 */
export type BrokerIdentityCheck = (hostname: string, cert: PeerCertificate) => Error | undefined;

const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * HTTPS calls to the broker. Connections are kept alive per set of credentials (an `https.Agent`
 * keys its pools by CA, certificate and key), so calls made with the same SVID share them.
 */
export class BrokerConnection {
  readonly #base: URL;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #checkIdentity: BrokerIdentityCheck;

  constructor(server: string | URL, opts: { timeoutMs: number; brokerId?: string }) {
    const base = new URL(server);
    if (base.protocol !== 'https:') throw new TypeError(`the broker URL must be https: (got ${base.protocol})`);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.#timeoutMs = opts.timeoutMs;
    this.#checkIdentity = opts.brokerId === undefined ? checkServerIdentity : brokerIdCheck(opts.brokerId);
    this.#agent = new Agent({ keepAlive: true, maxFreeSockets: 4, scheduling: 'lifo', timeout: 60_000 });
  }

  /** Sends a call; answers 2xx bodies, throws the typed error of anything else. */
  async call(call: BrokerCall): Promise<BrokerAnswer> {
    try {
      return await this.#send(call);
    } catch (err) {
      // A kept-alive connection the broker closed meanwhile: one retry on a new one, as Node's documentation advises.
      if ((err as { reusedSocket?: boolean }).reusedSocket && (err as { cause?: { code?: string } }).cause?.code === 'ECONNRESET') return this.#send(call);
      throw err;
    }
  }

  /** Closes every kept-alive connection; calls in flight fail with WritUnavailableError. */
  close(): void {
    this.#agent.destroy();
  }

  #send(call: BrokerCall): Promise<BrokerAnswer> {
    const url = new URL(call.path.replace(/^\//, ''), this.#base);
    const headers: Record<string, string> = { ...call.headers, accept: call.accept ?? 'application/json' };
    let body: string | undefined;
    if (call.json !== undefined) {
      body = JSON.stringify(call.json);
      headers['content-type'] = 'application/json';
    } else if (call.form !== undefined) {
      body = call.form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    return new Promise<BrokerAnswer>((resolve, reject) => {
      const req = request(
        url,
        {
          method: call.method,
          headers,
          agent: this.#agent,
          ca: call.credentials.ca,
          ...(call.credentials.cert !== undefined && { cert: call.credentials.cert, key: call.credentials.key }),
          rejectUnauthorized: true,
          checkServerIdentity: this.#checkIdentity,
          minVersion: 'TLSv1.2',
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on('error', (err) => reject(unavailable(url, err)));
          res.on('end', () => {
            try {
              resolve(answer(res.statusCode ?? 0, String(res.headers['content-type'] ?? ''), Buffer.concat(chunks).toString('utf8')));
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.setTimeout(this.#timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${this.#timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => {
        const e = unavailable(url, err);
        if (req.reusedSocket) Object.assign(e, { reusedSocket: true });
        reject(e);
      });
      req.end(body);
    });
  }
}

const unavailable = (url: URL, err: Error) =>
  err instanceof WritUnavailableError ? err : new WritUnavailableError(`the broker at ${url.origin} cannot be reached: ${err.message}`, { cause: err });

/** The 2xx body, or the typed error of a refusal (RFC 6749 §5.2 on OAuth endpoints, RFC 9457 elsewhere). */
function answer(status: number, contentType: string, text: string): BrokerAnswer {
  let json: unknown;
  const isJson = /^application\/([a-z.+-]+\+)?json\b/i.test(contentType);
  if (isJson && text !== '') {
    try {
      json = JSON.parse(text);
    } catch (err) {
      if (status >= 500) throw new WritUnavailableError(`the broker answered ${status} with a body that is not JSON`, { status });
      throw new WritProtocolError(`the broker answered ${status} with a body that is not JSON`, status, { cause: err });
    }
  }
  if (status >= 200 && status < 300) {
    if (text !== '' && json === undefined) throw new WritProtocolError(`the broker answered ${status} with ${contentType || 'no content type'}, not JSON`, status);
    return { status, body: json };
  }
  const o = json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : undefined;
  if (o && typeof o.error === 'string') {
    return throwing(oauthErrorFrom(o.error, typeof o.error_description === 'string' ? o.error_description : '', status, o as Record<string, unknown>));
  }
  if (o && typeof o.type === 'string') {
    const problem: ProblemDetails = { ...o, type: o.type, title: typeof o.title === 'string' ? o.title : `HTTP ${status}`, status, ...(typeof o.detail === 'string' && { detail: o.detail }) };
    return throwing(new WritProblemError(problem));
  }
  if (status >= 500) throw new WritUnavailableError(`the broker answered ${status}`, { status });
  throw new WritProtocolError(`the broker answered ${status} without an error body`, status);
}

const throwing = (err: Error): never => {
  throw err;
};

/** Authorizes the broker by its SPIFFE ID instead of its DNS name. */
function brokerIdCheck(brokerId: string): BrokerIdentityCheck {
  return (_hostname, cert) => {
    const uris = (new X509Certificate(cert.raw).subjectAltName ?? '')
      .split(', ')
      .filter((n) => n.startsWith('URI:'))
      .map((n) => n.slice(4));
    if (uris.length === 1 && uris[0] === brokerId) return undefined;
    return new Error(`the broker's certificate names ${uris.join(', ') || 'no SPIFFE ID'}, not ${brokerId}`);
  };
}
