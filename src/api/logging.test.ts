import { Writable } from 'node:stream';
import { Router } from 'express';
import pino from 'pino';
import { InvalidGrant } from '../tokens/errors';
import { serveApi, type ServedApi } from '../../test/support/api';
import { oauthErrorHandler } from './oauth';

/** The request log lines a served app writes. */
function capture(): { logger: pino.Logger; lines: () => Record<string, any>[] } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const out: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (out.push(String(chunk)), done()) });
  return { logger: pino({ level: 'info' }, stream), lines: () => out.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request') };
}

describe('the request log line of a refused request names the refusal', () => {
  let api: ServedApi;
  const log = capture();

  beforeAll(async () => {
    const router = Router();
    router.post('/oauth2/token', () => {
      throw new InvalidGrant('the subject token has expired');
    });
    router.get('/ok', (_req, res) => void res.json({}));
    api = await serveApi({ routers: [router], errorHandlers: [oauthErrorHandler({ refused: async () => undefined } as never)], logger: log.logger });
  });
  afterAll(() => api.close());

  it('the OAuth error code, the problem type, and nothing for a success', async () => {
    await fetch(`${api.base}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=x' });
    await fetch(`${api.base}/nowhere`);
    await fetch(`${api.base}/ok`);
    await new Promise((resolve) => setImmediate(resolve));
    const byPath = Object.fromEntries(log.lines().map((l) => [l.req.path, l.res]));
    expect(byPath).toEqual({
      '/oauth2/token': { status: 400, error: 'invalid_grant' },
      '/nowhere': { status: 404, error: 'urn:writ:problem:not-found' },
      '/ok': { status: 200 },
    });
  });
});
