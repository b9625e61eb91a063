import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { BrokerCalls, ClientCert } from './fixture';

/** The HTTP status the MCP SDK's client transport saw, from the error it threw; fails when the request was not refused. */
export async function statusOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof StreamableHTTPError) return err.code;
    throw err;
  }
  throw new Error('expected the MCP request to be refused');
}

/** X509-SVID §5: a TLS client checks the server's SPIFFE ID (its URI SAN), not a host name. */
export const spiffeIdIs = (expected: string) => (_host: string, cert: { subjectaltname?: string }) =>
  (cert.subjectaltname ?? '').split(', ').includes(`URI:${expected}`) ? undefined : new Error(`the server is not ${expected}`);

/** The claims of a JWT a test was issued, unverified (the test asserts on them). */
export const jwtClaims = (token: string): Record<string, any> => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()); // eslint-disable-line @typescript-eslint/no-explicit-any

/** A task token from the broker's token exchange (RFC 8693) as connector `as`, for `resource` and the `mcp_tool` details given; throws unless granted. */
export async function exchangeTaskToken(
  calls: Pick<BrokerCalls, 'form'>,
  as: ClientCert,
  request: { subjectToken: string; resource: string; details: readonly object[] },
): Promise<{ token: string; taskId: string; exp: number }> {
  const res = await calls.form(
    '/oauth2/token',
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: request.subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: request.resource,
      authorization_details: JSON.stringify(request.details),
    },
    as,
  );
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.body}`);
  return { token: res.json.access_token, taskId: res.json.task_id, exp: jwtClaims(res.json.access_token).exp };
}
