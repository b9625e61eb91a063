import { request } from 'node:https';
import { assertDocumentedResponse } from './openapi';

export interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A request over TLS that trusts only `ca` (the broker's bundle), as a real client would. The
 * answer to a documented operation must fit the OpenAPI document (test/support/openapi.ts), or
 * the request rejects; `unchecked` skips that (for answers of another server or version).
 */
export function httpsRequest(
  url: string,
  opts: { ca: string; insecure?: boolean; method?: string; headers?: Record<string, string>; body?: string; servername?: string; cert?: string; key?: string; unchecked?: boolean },
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, ca: opts.ca, servername: opts.servername, cert: opts.cert, key: opts.key, agent: false, rejectUnauthorized: !opts.insecure },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          try {
            if (!opts.unchecked) assertDocumentedResponse(opts.method ?? 'GET', url, res.statusCode!, res.headers['content-type'], body);
          } catch (err) {
            return reject(err);
          }
          resolve({ status: res.statusCode!, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
