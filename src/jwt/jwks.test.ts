import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { ManualClock } from '../core/clock';
import { JwksUnavailable } from './errors';
import { fetchJwks, parseJwks, RemoteJwks } from './jwks';

let jwk: JWK;
beforeAll(async () => {
  jwk = { ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), kid: 'k1', alg: 'ES256' };
});

const stubFetch = (respond: () => Response) => jest.fn(async (_url: string, _init?: RequestInit) => respond()) as jest.Mock & typeof fetch;
const limits = { timeoutMs: 1000, maxBytes: 1024 };

describe('JWK Set (RFC 7517 §5) shape', () => {
  it('accepts a set of public keys', () => {
    expect(parseJwks({ keys: [jwk] })).toEqual({ keys: [jwk] });
  });

  it.each([
    [null, /not a JWK Set/],
    [[], /not a JWK Set/],
    [{ keys: {} }, /not a JWK Set/],
    [{ keys: [] }, /holds no keys/],
    [{ keys: ['x'] }, /keys\[0\] is not a JWK/],
    [{ keys: [{ kid: 'a' }] }, /keys\[0\] is not a JWK: it has no "kty"/],
    [{ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, /symmetric/],
    [{ keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' }] }, /private key material/],
  ])('refuses %j', (value, why) => {
    expect(() => parseJwks(value)).toThrow(why);
  });
});

describe('fetching a jwks_uri', () => {
  it('answers the key set and refuses redirects', async () => {
    const f = stubFetch(() => new Response(JSON.stringify({ keys: [jwk] })));
    expect(await fetchJwks('https://issuer.example/keys', f, limits)).toEqual({ keys: [jwk] });
    expect(f.mock.calls[0]![1]).toMatchObject({ redirect: 'error' });
  });

  it('refuses a declared content-length over the limit without reading the body', async () => {
    let pulled = 0;
    const body = new ReadableStream({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(512));
      },
    });
    const f = stubFetch(() => new Response(body, { headers: { 'content-length': '4096' } }));
    await expect(fetchJwks('https://issuer.example/keys', f, limits)).rejects.toThrow(/larger than 1024 bytes/);
    expect(pulled).toBeLessThanOrEqual(1); // the stream may pre-pull one chunk; it is never read through
  });

  it('stops reading an endless body just past the limit', async () => {
    let pulled = 0;
    const body = new ReadableStream({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(256).fill(0x20));
      },
    });
    await expect(fetchJwks('https://issuer.example/keys', stubFetch(() => new Response(body)), limits)).rejects.toThrow(JwksUnavailable);
    expect(pulled).toBeLessThan(10);
  });

  it.each([
    ['an HTTP error', () => new Response('nope', { status: 500 }), /HTTP 500/],
    ['a body that is not JSON', () => new Response('<html>'), /not valid JSON/],
    ['a body that is not UTF-8', () => new Response(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid JSON/],
    ['JSON that is not a JWK Set', () => new Response('{"keys":[{"kty":"oct","k":"eA"}]}'), /the key set keys\[0\] is a symmetric/],
  ])('fails on %s', async (_what, respond, why) => {
    await expect(fetchJwks('https://issuer.example/keys', stubFetch(respond), limits)).rejects.toThrow(why);
  });

  describe('with a server that stalls', () => {
    let server: Server;
    let base: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        // Headers at once, then a body that never ends.
        if (req.url === '/stall-body') res.writeHead(200, { 'content-type': 'application/json' }).write('{"keys":');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('times out waiting for the headers', async () => {
      await expect(fetchJwks(`${base}/stall-headers`, fetch, { ...limits, timeoutMs: 100 })).rejects.toThrow(/no answer within 100 ms/);
    });

    it('times out waiting for the rest of the body', async () => {
      await expect(fetchJwks(`${base}/stall-body`, fetch, { ...limits, timeoutMs: 100 })).rejects.toThrow(/no answer within 100 ms/);
    });
  });
});

describe('RemoteJwks cache', () => {
  it('shares one fetch between concurrent callers', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const f = jest.fn(async () => {
      await gate;
      return new Response(JSON.stringify({ keys: [jwk] }));
    });
    const keys = new RemoteJwks('https://issuer.example/keys', { clock: new ManualClock(), fetch: f as unknown as typeof fetch });
    const pending = Array.from({ length: 5 }, () => keys.getKey({ alg: 'ES256', kid: 'k1' }, { payload: '', signature: '', protected: '' }));
    release();
    const resolved = await Promise.all(pending);
    expect(resolved.every((k) => k.type === 'public')).toBe(true);
    expect(f).toHaveBeenCalledTimes(1);
    expect(keys.fetches).toBe(1);
  });

  it('does not retry a failed fetch within the cooldown', async () => {
    const clock = new ManualClock();
    const f = stubFetch(() => new Response('', { status: 503 }));
    const keys = new RemoteJwks('https://issuer.example/keys', { clock, fetch: f, cooldownSeconds: 30 });
    const get = () => keys.getKey({ alg: 'ES256', kid: 'k1' }, { payload: '', signature: '', protected: '' });
    await expect(get()).rejects.toThrow(/HTTP 503/);
    clock.advance(29);
    await expect(get()).rejects.toThrow(/HTTP 503/);
    expect(f).toHaveBeenCalledTimes(1);
    clock.advance(1);
    await expect(get()).rejects.toThrow(/HTTP 503/);
    expect(f).toHaveBeenCalledTimes(2);
  });
});
