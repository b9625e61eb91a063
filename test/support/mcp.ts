import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

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
