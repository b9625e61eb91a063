/**
 * RFC 8628, the device authorization grant, for `writ login --device`: the terminal shows a
 * code and a URL, the person signs in at their identity provider in any browser, and the CLI
 * polls the token endpoint until then. Written here rather than taken from openid-client: the
 * grant is two requests and a polling loop, and the CLI needs nothing else of a client library.
 */
import { CliFailure } from './errors';

export interface DeviceCode {
  readonly verification_uri: string;
  readonly verification_uri_complete?: string;
  readonly user_code: string;
  readonly expires_in: number;
}

export interface DeviceSignIn {
  readonly issuer: string;
  readonly clientId: string;
  readonly scope?: string;
  /** Told the code and URL to show the person (RFC 8628 §3.3). */
  readonly onCode: (code: DeviceCode) => void;
  readonly fetch?: typeof fetch;
  /** Waits between polls (tests pass a faster one). */
  readonly sleep?: (ms: number) => Promise<void>;
}

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Runs the grant; resolves with the ID token once the person signed in. Throws CliFailure naming the step that failed. */
export async function deviceSignIn(o: DeviceSignIn): Promise<string> {
  const fetchImpl = o.fetch ?? fetch;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const meta = (await fetchImpl(`${o.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .catch((err: Error) => {
      throw new CliFailure(`cannot read ${o.issuer}'s OpenID configuration: ${err.message}`);
    })) as { device_authorization_endpoint?: string; token_endpoint?: string };
  if (!meta.device_authorization_endpoint || !meta.token_endpoint) throw new CliFailure(`${o.issuer} offers no device authorization grant (RFC 8628 device_authorization_endpoint)`);
  const post = (url: string, form: Record<string, string>) =>
    fetchImpl(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: new URLSearchParams(form).toString(), signal: AbortSignal.timeout(10_000) });

  // RFC 8628 §3.1–3.2.
  const res = await post(meta.device_authorization_endpoint, { client_id: o.clientId, scope: o.scope ?? 'openid groups email' });
  const code = (await res.json().catch(() => ({}))) as Partial<DeviceCode> & { device_code?: string; interval?: number; error?: string; error_description?: string };
  if (!res.ok || typeof code.device_code !== 'string' || typeof code.user_code !== 'string' || typeof code.verification_uri !== 'string')
    throw new CliFailure(`the device authorization request was refused: ${code.error ?? res.status} ${code.error_description ?? ''}`.trim());
  o.onCode({ verification_uri: code.verification_uri, ...(code.verification_uri_complete && { verification_uri_complete: code.verification_uri_complete }), user_code: code.user_code, expires_in: code.expires_in ?? 600 });

  // RFC 8628 §3.4–3.5: poll at the interval; slow_down adds 5 s; pending waits; anything else ends it.
  let interval = (code.interval ?? 5) * 1000;
  const deadline = Date.now() + (code.expires_in ?? 600) * 1000;
  while (Date.now() < deadline) {
    await sleep(interval);
    const poll = await post(meta.token_endpoint, { grant_type: GRANT, device_code: code.device_code, client_id: o.clientId });
    const body = (await poll.json().catch(() => ({}))) as { id_token?: string; error?: string; error_description?: string };
    if (poll.ok && typeof body.id_token === 'string') return body.id_token;
    if (body.error === 'authorization_pending') continue;
    if (body.error === 'slow_down') {
      interval += 5000;
      continue;
    }
    throw new CliFailure(`sign-in ended: ${body.error ?? `HTTP ${poll.status}`}${body.error_description ? `: ${body.error_description}` : ''}`);
  }
  throw new CliFailure('the code expired before sign-in finished');
}
