import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { BrokerRefused, BrokerUnreachable, oneLine } from './errors';

/**
 * A small HTTPS client for the broker's API: trust only `ca` when given (else Node's
 * roots), present a client certificate for mTLS routes, or an admin bearer token. It
 * knows nothing of the routes; the commands do.
 *
 * ```ts
 * const client = new BrokerClient({ server: 'https://localhost:8443', ca, bearer });
 * const { entries } = await client.json<{ entries: unknown[] }>('GET', '/v1/admin/entries');
 * ```
 */
export interface ClientOptions {
  /** The broker's base URL (https). */
  readonly server: string;
  /** PEM trust anchors for the broker's TLS certificate. */
  readonly ca?: string;
  /** Client certificate chain (PEM, leaf first) and its key, for mTLS routes. */
  readonly cert?: string;
  readonly key?: string;
  /** The admin bearer token. Sent only in the Authorization header, never logged. */
  readonly bearer?: string;
  readonly timeoutMs?: number;
}

/** The largest JSON answer read into memory. */
const MAX_BODY = 16 * 1024 * 1024;

const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
]);

export class BrokerClient {
  constructor(private readonly opts: ClientOptions) {}

  get server(): string {
    return this.opts.server;
  }

  /** A JSON request; resolves with the parsed answer (undefined for 204), rejects with BrokerRefused for 4xx/5xx. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body === undefined ? undefined : { type: 'application/json', data: JSON.stringify(body) });
    return this.parse<T>(res);
  }

  /** An application/x-www-form-urlencoded POST (the OAuth endpoints). */
  async form<T>(path: string, params: URLSearchParams): Promise<T> {
    const res = await this.send('POST', path, { type: 'application/x-www-form-urlencoded', data: params.toString() });
    return this.parse<T>(res);
  }

  /**
   * Streams a GET answer into `sink`. Rejects when the broker refuses, or when it cuts the
   * answer short (the audit export does so on a failure mid-way), so a truncated stream never
   * looks complete.
   */
  async stream(path: string, sink: Writable): Promise<void> {
    const res = await this.send('GET', path);
    if ((res.statusCode ?? 0) >= 300) {
      await this.parse(res);
      return;
    }
    try {
      await pipeline(res, sink);
    } catch (err) {
      throw new BrokerUnreachable(`the broker cut the answer short: ${(err as Error).message}`);
    }
    if (!res.complete) throw new BrokerUnreachable('the broker cut the answer short');
  }

  private send(method: string, path: string, body?: { type: string; data: string }): Promise<IncomingMessage> {
    const url = `${this.opts.server.replace(/\/+$/, '')}${path}`;
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (this.opts.bearer !== undefined) headers.authorization = `Bearer ${this.opts.bearer}`;
    if (body) {
      headers['content-type'] = body.type;
      headers['content-length'] = String(Buffer.byteLength(body.data));
    }
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        headers,
        agent: false,
        ...(this.opts.ca !== undefined && { ca: this.opts.ca }),
        ...(this.opts.cert !== undefined && { cert: this.opts.cert, key: this.opts.key }),
      }, resolve);
      req.setTimeout(this.opts.timeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(this.opts.server, err)));
      req.end(body?.data);
    });
  }

  private async parse<T>(res: IncomingMessage): Promise<T> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new BrokerUnreachable('the broker\'s answer is too large');
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      if (status < 300) throw new BrokerUnreachable(`the broker's answer is not JSON (HTTP ${status})`);
    }
    if (status >= 300) throw refusal(status, parsed, text);
    return parsed as T;
  }
}

/** The broker's refusal in one line: the problem's `detail` (and its validation errors), or the OAuth `error_description`. */
function refusal(status: number, body: unknown, text: string): BrokerRefused {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof b.error === 'string') {
    return new BrokerRefused(status, b.error, oneLine(typeof b.error_description === 'string' ? b.error_description : b.error));
  }
  const reason = typeof b.type === 'string' ? b.type.replace(/^urn:writ:problem:/, '') : 'http-error';
  let detail = typeof b.detail === 'string' ? b.detail : typeof b.title === 'string' ? b.title : oneLine(text).slice(0, 200) || `HTTP ${status}`;
  // A policy set with several errors says how many; the errors themselves are what the operator needs.
  if (Array.isArray(b.errors) && b.errors.length > 1) detail += `: ${b.errors.map(String).join('; ')}`;
  return new BrokerRefused(status, reason, oneLine(detail));
}

function unreachable(server: string, err: NodeJS.ErrnoException): BrokerUnreachable {
  const code = err.code ?? '';
  if (TLS_TRUST_ERRORS.has(code)) {
    return new BrokerUnreachable(`the TLS certificate of ${server} is not trusted (${code}): give the broker's CA with --ca or WRIT_CA`);
  }
  // TLS to a plain HTTP listener fails in the record layer ("wrong version number"): most likely the ops port.
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(err.message))
    return new BrokerUnreachable(`${server} does not speak TLS: is it the ops port (plain HTTP, /healthz and /metrics)? --server names the HTTPS API (WRIT_PORT, 8443 by default)`);
  return new BrokerUnreachable(`cannot reach ${server}: ${oneLine(err.message)}`);
}
