import { SetError } from '../signals/errors';
import { SignalIntake } from '../signals/intake';
import { signalsErrorHandler, signalsRouter } from './signals';
import { serveApi, type ServedApi } from '../../test/support/api';

// POST /v1/signals over fake signal services: the handler receives and applies, the error
// handler answers RFC 8935 §2.4 bodies and has the signals domain record every refusal.

const refused: { err: string; description: string }[] = [];
let receive: () => Promise<unknown> = async () => ({});
const applied: unknown[] = [];
let api: ServedApi;
let base: string;

beforeAll(async () => {
  api = await serveApi({
    routers: [signalsRouter({ intake: new SignalIntake({ receive: () => receive() as never }, { apply: async (set) => (applied.push(set), { replayed: false, applied: [] }), refused: async () => undefined }) })],
    errorHandlers: [signalsErrorHandler({ refused: async (r) => void refused.push(r) })],
  });
  base = api.base;
});
afterAll(() => api.close());
beforeEach(() => {
  refused.length = 0;
  applied.length = 0;
  receive = async () => ({ jti: 'j1' });
});

const push = (body: string, type = 'application/secevent+jwt') => fetch(`${base}/v1/signals`, { method: 'POST', headers: { 'content-type': type }, body });

describe('RFC 8935 push delivery', () => {
  it('§2: answers 202 once the SET is applied', async () => {
    const res = await push('a.b.c');
    expect(res.status).toBe(202);
    expect(applied).toEqual([{ jti: 'j1' }]);
    expect(refused).toEqual([]);
  });

  it('§2.4: a refused SET is 400 {err, description}, recorded by the signals domain', async () => {
    receive = async () => Promise.reject(new SetError('invalid_key', 'the SET is not signed by a configured transmitter'));
    const res = await push('a.b.c');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ err: 'invalid_key', description: 'the SET is not signed by a configured transmitter' });
    expect(refused).toEqual([{ err: 'invalid_key', description: 'the SET is not signed by a configured transmitter' }]);
  });

  it('RFC 9110 §15.5.14: a body over the cap is 413, refused as invalid_request and recorded', async () => {
    const res = await push('x'.repeat(70 * 1024));
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ err: 'invalid_request', description: 'the SET is too large' });
    expect(refused).toEqual([{ err: 'invalid_request', description: 'the SET is too large' }]);
  });
});
