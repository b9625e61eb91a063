import { request } from 'node:https';

export interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request over TLS that trusts only `ca` (the broker's bundle), as a real client would. */
export function httpsRequest(
  url: string,
  opts: { ca: string; insecure?: boolean; method?: string; headers?: Record<string, string>; body?: string; servername?: string; cert?: string; key?: string },
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, ca: opts.ca, servername: opts.servername, cert: opts.cert, key: opts.key, agent: false, rejectUnauthorized: !opts.insecure },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
