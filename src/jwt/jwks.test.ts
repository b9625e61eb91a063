import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { ManualClock } from '../core/clock';
import { JwksUnavailable } from './errors';
import { discoverJwksUri, discoveryUrl, DiscoveredJwks, fetchJwks, parseJwks, RemoteJwks } from './jwks';

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

describe('OpenID Connect Discovery 1.0 §4', () => {
  const ISSUER = 'https://login.example.test/tenant';
  const meta = (over: Record<string, unknown> = {}) => new Response(JSON.stringify({ issuer: ISSUER, jwks_uri: `${ISSUER}/keys`, ...over }));
  /** Answers discovery, then the key set, by URL; counts requests per URL. */
  const site = (discovery: () => Response) => {
    const calls: string[] = [];
    const f = jest.fn(async (url: string) => {
      calls.push(url);
      return url.endsWith('/.well-known/openid-configuration') ? discovery() : new Response(JSON.stringify({ keys: [jwk] }));
    }) as jest.Mock & typeof fetch;
    return { f, calls };
  };

  it('§4.1: appends the well-known path to the issuer, dropping a terminating "/"', () => {
    expect(discoveryUrl('https://login.example.test/tenant/')).toBe('https://login.example.test/tenant/.well-known/openid-configuration');
    expect(discoveryUrl('https://login.example.test')).toBe('https://login.example.test/.well-known/openid-configuration');
  });

  it('answers the jwks_uri of a document naming the issuer, fetched without following redirects', async () => {
    const { f } = site(() => meta());
    expect(await discoverJwksUri(ISSUER, f, limits)).toBe(`${ISSUER}/keys`);
    expect(f.mock.calls[0]![1]).toMatchObject({ redirect: 'error' });
  });

  it.each([
    ['another issuer (§4.3)', { issuer: 'https://evil.example.test' }, /names issuer "https:\/\/evil.example.test", not https:\/\/login.example.test\/tenant/],
    ['the issuer with a trailing "/"', { issuer: `${ISSUER}/` }, /names issuer/],
    ['no jwks_uri', { jwks_uri: undefined }, /has no jwks_uri/],
    ['a plain-http jwks_uri', { jwks_uri: 'http://keys.example.test/jwks' }, /jwks_uri must be an https:\/\/ URL/],
    ['a jwks_uri with credentials', { jwks_uri: 'https://u:p@keys.example.test/jwks' }, /must not carry credentials/],
  ])('refuses a document with %s', async (_, over, why) => {
    const { f } = site(() => meta(over));
    await expect(discoverJwksUri(ISSUER, f, limits)).rejects.toThrow(why);
    await expect(discoverJwksUri(ISSUER, f, limits)).rejects.toBeInstanceOf(JwksUnavailable);
  });

  it('refuses an answer that is not a JSON object, or not 2xx', async () => {
    await expect(discoverJwksUri(ISSUER, site(() => new Response('[1]')).f, limits)).rejects.toThrow(/not a JSON object/);
    await expect(discoverJwksUri(ISSUER, site(() => new Response('nope', { status: 404 })).f, limits)).rejects.toThrow(/HTTP 404/);
  });

  it('DiscoveredJwks discovers once, then serves keys from the jwks_uri; a failed discovery fails closed until the cooldown', async () => {
    const clock = new ManualClock(Date.parse('2026-12-02T00:00:00Z'));
    let broken = true;
    const { f, calls } = site(() => (broken ? new Response('down', { status: 503 }) : meta()));
    const keys = new DiscoveredJwks(ISSUER, { clock, fetch: f, cooldownSeconds: 30, timeoutMs: 1000, maxBytes: 4096 });
    const header = { alg: 'ES256', kid: 'k1' };
    await expect(keys.getKey(header, {} as never)).rejects.toThrow(/HTTP 503/);
    broken = false;
    await expect(keys.getKey(header, {} as never)).rejects.toThrow(/HTTP 503/); // within the cooldown: no new request
    expect(calls).toHaveLength(1);
    clock.advance(30);
    expect(await keys.getKey(header, {} as never)).toBeDefined();
    expect(keys.jwksUri).toBe(`${ISSUER}/keys`);
    await keys.getKey(header, {} as never);
    expect(calls).toEqual([discoveryUrl(ISSUER), discoveryUrl(ISSUER), `${ISSUER}/keys`]);
  });
});
