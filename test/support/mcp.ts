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
