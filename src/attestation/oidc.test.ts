import { createSign, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { ManualClock } from '../core/clock';
import { AttestationError } from './errors';
import { OidcAttestor, oidcIssuerSchema, oidcIssuersSchema, type OidcAttestorDeps, type OidcIssuerInput } from './oidc';

const context = { peerCertificates: [] };
const ISSUER = 'https://issuer.example';
const AUDIENCE = 'writ';
const T0 = new Date('2026-11-27T12:00:00Z');
const epoch = (d: Date) => Math.floor(d.getTime() / 1000);

interface KeyPair {
  privateKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: string, kid: string | undefined): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), alg, use: 'sig', ...(kid === undefined ? {} : { kid }) };
  return { privateKey, jwk };
}

interface TokenOptions {
  key: KeyPair;
  alg?: string;
  kid?: string | null;
  claims?: JWTPayload;
  iss?: string;
  aud?: string | string[];
  sub?: string | null;
  /** Seconds relative to T0; null leaves the claim out. */
  exp?: number | null;
  nbf?: number;
}

function sign(o: TokenOptions): Promise<string> {
  const alg = o.alg ?? (o.key.jwk.alg as string);
  const kid = o.kid === undefined ? o.key.jwk.kid : o.kid ?? undefined;
  const claims: JWTPayload = { iss: o.iss ?? ISSUER, aud: o.aud ?? AUDIENCE, iat: epoch(T0), ...o.claims };
  if (o.sub !== null) claims.sub = o.sub ?? 'system:serviceaccount:prod:mcp-github';
  if (o.exp !== null) claims.exp = epoch(T0) + (o.exp ?? 600);
  if (o.nbf !== undefined) claims.nbf = epoch(T0) + o.nbf;
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) }).sign(o.key.privateKey);
}

/** A JWKS endpoint on 127.0.0.1 that counts its hits per path. */
class JwksServer {
  keys: JWK[] = [];
  broken = false;
  readonly hits = new Map<string, number>();
  #server!: Server;
  #base = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  url(path: string): string {
    return `${this.#base}${path}`;
  }

  count(path: string): number {
    return this.hits.get(path) ?? 0;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    this.hits.set(path, this.count(path) + 1);
    if (path.startsWith('/jwks')) {
      if (this.broken) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: this.keys }));
    } else if (path === '/large') {
      // 128 KiB of valid JSON, streamed without a content-length.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[], "padding":"');
      let sent = 0;
      const more = () => {
        while (sent < 128 * 1024) {
          sent += 4096;
          if (!res.write('x'.repeat(4096))) return void res.once('drain', more);
        }
        res.end('"}');
      };
      more();
    } else if (path === '/slow') {
      // Headers never come.
    } else if (path === '/redirect') {
      res.writeHead(302, { location: this.url('/jwks') }).end();
    } else {
      res.writeHead(404).end();
    }
  }
}

async function refusal(promise: Promise<unknown>): Promise<AttestationError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    expect((err as AttestationError).code).toBe('invalid-evidence');
    expect((err as AttestationError).status).toBe(400);
    return err as AttestationError;
  }
  throw new Error('expected the attestation to be refused');
}

const issuer = (overrides: Partial<OidcIssuerInput>): OidcIssuerInput => ({ issuer: ISSUER, audience: AUDIENCE, ...overrides }) as OidcIssuerInput;

let server: JwksServer;
let es256: KeyPair;
let rs256: KeyPair;
let es384: KeyPair;

beforeAll(async () => {
  [es256, rs256, es384] = await Promise.all([keyPair('ES256', 'k1'), keyPair('RS256', 'r1'), keyPair('ES384', 'k384')]);
  server = new JwksServer();
  server.keys = [es256.jwk, rs256.jwk, es384.jwk];
  await server.start();
});

afterAll(async () => {
  await server.stop();
});

function attestor(configs: OidcIssuerInput[], deps: Partial<OidcAttestorDeps> = {}, clock = new ManualClock(T0)): OidcAttestor {
  return new OidcAttestor(oidcIssuersSchema.parse(configs), { clock, ...deps });
}

describe('oidc_issuers configuration', () => {
  it('applies the defaults: RS256 and ES256, 60 s clock skew, no claims', () => {
    expect(oidcIssuerSchema.parse({ issuer: ISSUER, jwks_uri: 'https://issuer.example/keys', audience: AUDIENCE })).toEqual({
      issuer: ISSUER,
      jwksUri: 'https://issuer.example/keys',
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256'],
      clockSkew: 60,
      claims: [],
    });
  });

  it('reads snake_case keys: jwks_file, clock_skew as seconds or a duration, claims', () => {
    const parsed = oidcIssuerSchema.parse({ issuer: ISSUER, jwks_file: '/etc/writ/jwks.json', audience: AUDIENCE, algorithms: ['EdDSA', 'PS256'], clock_skew: '2m', claims: ['repository', 'kubernetes.io.namespace'] });
    expect(parsed).toMatchObject({ jwksFile: '/etc/writ/jwks.json', algorithms: ['EdDSA', 'PS256'], clockSkew: 120, claims: ['repository', 'kubernetes.io.namespace'] });
    expect(parsed).not.toHaveProperty('jwksUri');
  });

  it.each(['HS256', 'HS384', 'HS512', 'none'])('RFC 8725 §3.1: refuses %s in algorithms', (alg) => {
    const r = oidcIssuerSchema.safeParse({ ...issuer({ jwks_uri: 'https://issuer.example/keys' }), algorithms: ['ES256', alg] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['algorithms', 1]);
    expect(r.error!.issues[0]!.message).toMatch(alg === 'none' ? /unsigned/ : /shared-secret \(HMAC\)/);
  });

  it('refuses an unknown algorithm and an empty list', () => {
    expect(oidcIssuerSchema.safeParse(issuer({ jwks_uri: 'https://i.example/k', algorithms: ['RS1'] as never })).error?.issues[0]?.message).toMatch(/not a supported algorithm/);
    expect(oidcIssuerSchema.safeParse(issuer({ jwks_uri: 'https://i.example/k', algorithms: [] })).success).toBe(false);
  });

  it('refuses both jwks_file and jwks_uri', () => {
    const r = oidcIssuerSchema.safeParse(issuer({ jwks_file: '/k.json', jwks_uri: 'https://issuer.example/keys' }));
    expect(r.error?.issues.map((i) => i.message)).toEqual(['set one of jwks_file or jwks_uri, not both']);
  });

  it('refuses neither jwks_file nor jwks_uri', () => {
    expect(oidcIssuerSchema.safeParse(issuer({})).error?.issues[0]?.message).toMatch(/set one of jwks_file or jwks_uri/);
  });

  it.each([
    ['http://issuer.example/keys', /https/],
    ['http://10.0.0.1/keys', /https/],
    ['ftp://issuer.example/keys', /https/],
    ['https://user:pw@issuer.example/keys', /credentials/],
    ['not a url', /not a URL/],
  ])('refuses jwks_uri %s', (uri, why) => {
    const r = oidcIssuerSchema.safeParse(issuer({ jwks_uri: uri }));
    expect(r.error?.issues[0]?.path).toEqual(['jwks_uri']);
    expect(r.error?.issues[0]?.message).toMatch(why);
  });

  it.each(['http://127.0.0.1:8080/keys', 'http://localhost/keys', 'https://issuer.example/keys'])('accepts jwks_uri %s', (uri) => {
    expect(oidcIssuerSchema.safeParse(issuer({ jwks_uri: uri })).success).toBe(true);
  });

  it.each([301, -1, 1.5, '6m', 'soon'])('refuses clock_skew %p (0 to 300 s)', (skew) => {
    expect(oidcIssuerSchema.safeParse(issuer({ jwks_uri: 'https://i.example/k', clock_skew: skew as never })).error?.issues[0]?.path).toEqual(['clock_skew']);
  });

  it('refuses an issuer that is not a URL, a missing audience, unknown keys and claim names with ":"', () => {
    const base = { jwks_uri: 'https://i.example/k' };
    expect(oidcIssuerSchema.safeParse({ ...issuer(base), issuer: 'kubernetes/serviceaccount' }).success).toBe(false);
    expect(oidcIssuerSchema.safeParse({ issuer: ISSUER, ...base }).success).toBe(false);
    expect(oidcIssuerSchema.safeParse({ ...issuer(base), jwks_url: 'https://i.example/k' }).success).toBe(false);
    expect(oidcIssuerSchema.safeParse(issuer({ ...base, claims: ['a:b'] })).success).toBe(false);
    expect(oidcIssuerSchema.safeParse(issuer({ ...base, claims: ['a..b'] })).success).toBe(false);
  });

  it('refuses the same issuer twice in the list', () => {
    const r = oidcIssuersSchema.safeParse([issuer({ jwks_uri: 'https://i.example/k' }), issuer({ jwks_file: '/k.json' })]);
    expect(r.error?.issues[0]).toMatchObject({ path: [1, 'issuer'], message: expect.stringMatching(/more than once/) });
  });
});

describe('OIDC attestor (RFC 7519 §4.1 registered claims)', () => {
  const make = (overrides: Partial<OidcIssuerInput> = {}, clock?: ManualClock) => attestor([issuer({ jwks_uri: server.url('/jwks'), ...overrides })], {}, clock);

  it('answers oidc:iss, oidc:sub and a selector per configured claim value', async () => {
    const a = make({ claims: ['repository', 'run_attempt', 'enabled', 'groups', 'kubernetes.io.namespace', 'kubernetes.io.serviceaccount.name', 'object', 'absent', 'nothing', 'blank'] });
    const token = await sign({
      key: es256,
      claims: {
        repository: 'acme/mcp-github',
        run_attempt: 2,
        enabled: true,
        groups: ['ops', 'dev', { nested: 1 }, ['x'], 'ops'],
        'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'mcp-github', uid: 'c0ffee' } },
        object: { a: 1 },
        nothing: null,
        blank: '',
      },
    });
    expect(a.name).toBe('oidc');
    expect(await a.attest({ token }, context)).toEqual({
      selectors: [
        `oidc:iss:${ISSUER}`,
        'oidc:sub:system:serviceaccount:prod:mcp-github',
        'oidc:claim:repository:acme/mcp-github',
        'oidc:claim:run_attempt:2',
        'oidc:claim:enabled:true',
        'oidc:claim:groups:ops',
        'oidc:claim:groups:dev',
        'oidc:claim:kubernetes.io.namespace:prod',
        'oidc:claim:kubernetes.io.serviceaccount.name:mcp-github',
      ],
    });
  });

  it('verifies RS256 tokens too (the default algorithms are RS256 and ES256)', async () => {
    const token = await sign({ key: rs256, sub: 'repo:acme/mcp-github:ref:refs/heads/main' });
    expect((await make().attest({ token }, context)).selectors).toContain('oidc:sub:repo:acme/mcp-github:ref:refs/heads/main');
  });

  it('§4.1.4 refuses an expired token', async () => {
    const clock = new ManualClock(T0);
    const a = make({ clock_skew: 30 }, clock);
    const token = await sign({ key: es256, exp: 600 });
    await expect(a.attest({ token }, context)).resolves.toBeDefined();
    clock.advance(600 + 29); // within the clock skew
    await expect(a.attest({ token }, context)).resolves.toBeDefined();
    clock.advance(1);
    expect((await refusal(a.attest({ token }, context))).message).toMatch(/expired \("exp"/);
  });

  it('§4.1.4 refuses a token without exp', async () => {
    const token = await sign({ key: es256, exp: null });
    expect((await refusal(make().attest({ token }, context))).message).toBe('the token has no "exp" claim, which is required');
  });

  it('§4.1.4 refuses an exp that is not a NumericDate', async () => {
    const token = await sign({ key: es256, exp: null, claims: { exp: 'tomorrow' as never } });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/"exp" claim is not a NumericDate/);
  });

  it('§4.1.5 refuses a token before its nbf, beyond the clock skew', async () => {
    const token = await sign({ key: es256, nbf: 120 });
    const clock = new ManualClock(T0);
    const a = make({ clock_skew: 60 }, clock);
    expect((await refusal(a.attest({ token }, context))).message).toMatch(/not valid yet \("nbf"/);
    clock.advance(60);
    await expect(a.attest({ token }, context)).resolves.toBeDefined();
  });

  it('§4.1.3 refuses a token for another audience', async () => {
    const token = await sign({ key: es256, aud: 'sts.amazonaws.com' });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/audience \("aud"\) does not include "writ"/);
  });

  it('§4.1.3 accepts an aud array that includes the audience', async () => {
    const token = await sign({ key: es256, aud: ['https://kubernetes.default.svc', AUDIENCE] });
    await expect(make().attest({ token }, context)).resolves.toBeDefined();
  });

  it('§4.1.2 refuses a token without sub', async () => {
    const token = await sign({ key: es256, sub: null });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/no "sub" claim/);
  });

  it('refuses a control character in sub or in a configured claim\'s value, naming the claim (a selector no entry can hold)', async () => {
    const a = make({ claims: ['repository', 'groups'] });
    const sub = await sign({ key: es256, sub: 'system:serviceaccount:prod:a\u0000' });
    expect((await refusal(a.attest({ token: sub }, context))).message).toBe('the token\'s "sub" claim contains a control character');
    const claim = await sign({ key: es256, claims: { groups: ['ops', 'dev\n'] } });
    expect((await refusal(a.attest({ token: claim }, context))).message).toBe('the token\'s "groups" claim contains a control character');
    // A claim that is not configured makes no selector and is not looked at.
    expect((await a.attest({ token: await sign({ key: es256, claims: { other: 'x\u0000' } }) }, context)).selectors).toHaveLength(2);
  });

  it('§4.1.1 refuses an issuer that is not configured, naming it bounded and escaped', async () => {
    const token = await sign({ key: es256, iss: 'https://evil.example/' });
    expect((await refusal(make().attest({ token }, context))).message).toBe('the token\'s issuer "https://evil.example/" is not configured');
    const long = await sign({ key: es256, iss: `https://evil.example/${'a'.repeat(5000)}\n"` });
    const message = (await refusal(make().attest({ token: long }, context))).message;
    expect(message.length).toBeLessThan(150);
    expect(message).toMatch(/^the token's issuer "https:\/\/evil\.example\/a+…" is not configured$/);
  });

  it('§4.1.1 compares iss exactly (a trailing slash is another issuer)', async () => {
    const token = await sign({ key: es256, iss: `${ISSUER}/` });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/is not configured/);
  });

  it('§4.1.1 refuses a token without iss', async () => {
    const token = await new SignJWT({ sub: 'x', aud: AUDIENCE, exp: epoch(T0) + 60 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(es256.privateKey);
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/no "iss"/);
  });

  it.each([
    [{}, /evidence\.token must be a JWT/],
    [{ token: 42 }, /evidence\.token must be a JWT/],
    [{ token: '' }, /evidence\.token must be a JWT/],
    [{ token: 'not-a-jwt' }, /not a JWT in JWS Compact Serialization/],
    [{ token: 'a.b.c.d.e' }, /not a JWT in JWS Compact Serialization/],
    [{ token: 'x'.repeat(40 * 1024) }, /longer than/],
  ])('refuses evidence %#', async (evidence, why) => {
    expect((await refusal(make().attest(evidence, context))).message).toMatch(why);
  });
});

describe('OIDC attestor (RFC 7515 signatures, RFC 8725 §3.1 algorithm allowlist)', () => {
  const make = (overrides: Partial<OidcIssuerInput> = {}) => attestor([issuer({ jwks_uri: server.url('/jwks'), ...overrides })]);

  it('refuses a token signed by another key with the same kid', async () => {
    const impostor = await keyPair('ES256', 'k1');
    const token = await sign({ key: impostor });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/signature does not verify/);
  });

  it('refuses a token whose payload was altered after signing', async () => {
    const [h, , s] = (await sign({ key: es256 })).split('.');
    const forged = base64url.encode(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'admin', exp: epoch(T0) + 600 }));
    expect((await refusal(make().attest({ token: `${h}.${forged}.${s}` }, context))).message).toMatch(/signature does not verify/);
  });

  it('refuses an algorithm the issuer does not allow (ES384 when only ES256 is)', async () => {
    const token = await sign({ key: es384 });
    expect((await refusal(make({ algorithms: ['ES256'] }).attest({ token }, context))).message).toBe(
      'the token\'s algorithm "ES384" is not allowed for this issuer (allowed: ES256)',
    );
    // ...and accepts it once allowed.
    await expect(make({ algorithms: ['ES256', 'ES384'] }).attest({ token }, context)).resolves.toBeDefined();
  });

  it('refuses an HS256 token (a shared secret is never a verification key)', async () => {
    const secret = new TextEncoder().encode('a-secret-that-is-at-least-32-bytes-long');
    const token = await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: epoch(T0) + 600 }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(secret);
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/algorithm "HS256" is not allowed/);
  });

  it('refuses an unsigned token (alg "none")', async () => {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const token = `${enc({ alg: 'none' })}.${enc({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: epoch(T0) + 600 })}.`;
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/algorithm "none" is not allowed/);
  });

  it('refuses a token whose RSA key is under 2048 bits (RFC 7518 §3.3)', async () => {
    // jose will not make such a key or sign with one; node:crypto will.
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const file = join(mkdtempSync(join(tmpdir(), 'writ-oidc-')), 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), alg: 'RS256', kid: 'weak' }] }));
    const a = attestor([issuer({ jwks_file: file })]);
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const input = `${enc({ alg: 'RS256', kid: 'weak' })}.${enc({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: epoch(T0) + 600 })}`;
    const token = `${input}.${base64url.encode(createSign('RSA-SHA256').update(input).sign(privateKey))}`;
    expect((await refusal(a.attest({ token }, context))).message).toMatch(/cannot be verified with the issuer's keys/);
  });

  it('RFC 7515 §4.1.4: without kid, tries each key of the algorithm', async () => {
    const [one, two] = await Promise.all([keyPair('ES256', undefined), keyPair('ES256', undefined)]);
    const file = join(mkdtempSync(join(tmpdir(), 'writ-oidc-')), 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [one.jwk, two.jwk] }));
    const a = attestor([issuer({ jwks_file: file })]);
    await expect(a.attest({ token: await sign({ key: two, kid: null }) }, context)).resolves.toBeDefined();
    const stranger = await keyPair('ES256', undefined);
    expect((await refusal(a.attest({ token: await sign({ key: stranger, kid: null }) }, context))).message).toMatch(/signature does not verify/);
    // Claims are still checked once a key verifies.
    expect((await refusal(a.attest({ token: await sign({ key: one, kid: null, aud: 'other' }) }, context))).message).toMatch(/audience/);
  });

  it('refuses a token that names a kid the issuer does not have', async () => {
    const token = await sign({ key: await keyPair('ES256', 'gone') });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/no key of the issuer matches the token \(key ID "gone"/);
  });

  it('refuses an unknown critical header parameter (RFC 7515 §4.1.11)', async () => {
    const token = await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: epoch(T0) + 600 })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', crit: ['x-writ'], 'x-writ': true })
      .sign(es256.privateKey, { crit: { 'x-writ': true } });
    expect((await refusal(make().attest({ token }, context))).message).toMatch(/does not support/);
  });
});

describe('OIDC attestor keys from jwks_uri (RFC 7517 §5 JWK Sets)', () => {
  it('fetches once and caches', async () => {
    const path = '/jwks?cache';
    const a = attestor([issuer({ jwks_uri: server.url(path) })]);
    const token = await sign({ key: es256 });
    await Promise.all([a.attest({ token }, context), a.attest({ token }, context), a.attest({ token }, context)]);
    await a.attest({ token }, context);
    expect(server.count(path)).toBe(1);
  });

  it('refetches once on an unknown kid, so key rotation at the issuer works, and then cools down', async () => {
    const path = '/jwks?rotation';
    const clock = new ManualClock(T0);
    const a = attestor([issuer({ jwks_uri: server.url(path) })], {}, clock);
    await a.attest({ token: await sign({ key: es256 }) }, context);
    expect(server.count(path)).toBe(1);

    clock.advance(31);
    const rotated = await keyPair('ES256', 'k2');
    server.keys = [...server.keys, rotated.jwk];
    try {
      const signedByNewKey = await sign({ key: rotated, exp: 3600 });
      await expect(a.attest({ token: signedByNewKey }, context)).resolves.toBeDefined();
      expect(server.count(path)).toBe(2);

      // Made-up kids within the cooldown do not reach the issuer.
      const madeUp = async (kid: string) => sign({ key: await keyPair('ES256', kid), exp: 3600 });
      for (const kid of ['x1', 'x2', 'x3']) expect((await refusal(a.attest({ token: await madeUp(kid) }, context))).message).toMatch(/no key of the issuer matches/);
      clock.advance(29);
      await refusal(a.attest({ token: await madeUp('x4') }, context));
      expect(server.count(path)).toBe(2);

      // After the cooldown, one more fetch.
      clock.advance(1);
      await refusal(a.attest({ token: await madeUp('x5') }, context));
      await refusal(a.attest({ token: await madeUp('x6') }, context));
      expect(server.count(path)).toBe(3);
    } finally {
      server.keys = server.keys.filter((k) => k.kid !== 'k2');
    }
  });

  it('refetches keys older than their maximum age and fails closed if that fetch fails', async () => {
    const path = '/jwks?age';
    const clock = new ManualClock(T0);
    const a = attestor([issuer({ jwks_uri: server.url(path) })], { jwks: { maxAgeSeconds: 300 } }, clock);
    const token = await sign({ key: es256, exp: 3600 });
    await a.attest({ token }, context);
    clock.advance(299);
    await a.attest({ token }, context);
    expect(server.count(path)).toBe(1);
    clock.advance(1);
    await a.attest({ token }, context);
    expect(server.count(path)).toBe(2);

    server.broken = true;
    try {
      clock.advance(300);
      expect((await refusal(a.attest({ token }, context))).message).toBe("cannot fetch the issuer's keys");
      // Within the cooldown: still refused, without another request.
      expect((await refusal(a.attest({ token }, context))).message).toBe("cannot fetch the issuer's keys");
      expect(server.count(path)).toBe(3);
    } finally {
      server.broken = false;
    }
    clock.advance(30);
    await expect(a.attest({ token }, context)).resolves.toBeDefined();
    expect(server.count(path)).toBe(4);
  });

  it('fails closed when the key set is larger than the limit', async () => {
    const a = attestor([issuer({ jwks_uri: server.url('/large') })]);
    const err = await refusal(a.attest({ token: await sign({ key: es256 }) }, context));
    expect(err.message).toBe("cannot fetch the issuer's keys");
    expect((err.cause as Error).message).toMatch(/larger than 65536 bytes/);
  });

  it('fails closed when the endpoint does not answer in time', async () => {
    const a = attestor([issuer({ jwks_uri: server.url('/slow') })], { jwks: { timeoutMs: 200 } });
    const started = Date.now();
    const err = await refusal(a.attest({ token: await sign({ key: es256 }) }, context));
    expect(err.message).toBe("cannot fetch the issuer's keys");
    expect((err.cause as Error).message).toMatch(/no answer within 200 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('fails closed on an HTTP error, a redirect or an unreachable endpoint', async () => {
    for (const uri of [server.url('/missing'), server.url('/redirect'), 'http://127.0.0.1:1/jwks']) {
      const a = attestor([issuer({ jwks_uri: uri })]);
      expect((await refusal(a.attest({ token: await sign({ key: es256 }) }, context))).message).toBe("cannot fetch the issuer's keys");
    }
  });

  it('uses the injected fetch', async () => {
    const fetchImpl = jest.fn(async () => new Response(JSON.stringify({ keys: [es256.jwk] })));
    const a = attestor([issuer({ jwks_uri: 'https://issuer.example/keys' })], { fetch: fetchImpl as unknown as typeof fetch });
    await expect(a.attest({ token: await sign({ key: es256 }) }, context)).resolves.toBeDefined();
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(fetchImpl.mock.calls[0]).toEqual(['https://issuer.example/keys', expect.objectContaining({ redirect: 'error' })]);
  });
});

describe('OIDC attestor keys from jwks_file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-oidc-'));

  it('verifies with the keys of the file', async () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify({ keys: [es256.jwk, rs256.jwk] }));
    const a = attestor([issuer({ jwks_file: file })]);
    expect((await a.attest({ token: await sign({ key: rs256 }) }, context)).selectors[0]).toBe(`oidc:iss:${ISSUER}`);
  });

  it('reads the file once, at construction', async () => {
    const file = join(dir, 'once.json');
    writeFileSync(file, JSON.stringify({ keys: [es256.jwk] }));
    const a = attestor([issuer({ jwks_file: file })]);
    writeFileSync(file, 'garbage');
    await expect(a.attest({ token: await sign({ key: es256 }) }, context)).resolves.toBeDefined();
  });

  it.each([
    ['missing.json', undefined, /cannot read .*missing\.json: ENOENT/],
    ['bad.json', '{"keys": [', /bad\.json is not valid JSON/],
    ['nokeys.json', '{"issuer": "x"}', /nokeys\.json is not a JWK Set/],
    ['empty.json', '{"keys": []}', /empty\.json holds no keys/],
    ['oct.json', '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', /symmetric/],
  ])('refuses %s at construction, naming the issuer and the file', (name, content, why) => {
    const file = join(dir, name);
    if (content !== undefined) writeFileSync(file, content);
    expect(() => attestor([issuer({ jwks_file: file })])).toThrow(why);
    expect(() => attestor([issuer({ jwks_file: file })])).toThrow(new RegExp(`^oidc issuer ${ISSUER}: jwks_file `));
  });

  it('refuses a file that holds a private key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const file = join(dir, 'private.json');
    writeFileSync(file, JSON.stringify({ keys: [await exportJWK(privateKey)] }));
    expect(() => attestor([issuer({ jwks_file: file })])).toThrow(/private\.json keys\[0\] holds private key material/);
  });

  it('chooses the keys by issuer when several are configured', async () => {
    const other = await keyPair('ES256', 'k1'); // same kid, another issuer
    const file = join(dir, 'other.json');
    writeFileSync(file, JSON.stringify({ keys: [other.jwk] }));
    const a = attestor([issuer({ jwks_uri: server.url('/jwks?multi') }), { issuer: 'https://token.actions.githubusercontent.com', audience: AUDIENCE, jwks_file: file }]);
    const gh = await sign({ key: other, iss: 'https://token.actions.githubusercontent.com' });
    expect((await a.attest({ token: gh }, context)).selectors[0]).toBe('oidc:iss:https://token.actions.githubusercontent.com');
    // A token naming one issuer but signed with the other's key does not verify.
    expect((await refusal(a.attest({ token: await sign({ key: other }) }, context))).message).toMatch(/signature does not verify/);
  });
});
