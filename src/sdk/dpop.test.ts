import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify } from 'jose';
import { ManualClock } from '../core/clock';
import { DpopReplayCache, verifyDpopProof } from '../tokens/dpop';
import { DpopKey } from './dpop';

const clock = new ManualClock('2026-12-02T12:00:00Z');
const URL_ = 'https://mcp.example.com/github?x=1#frag';
/** The access token and its `ath` of RFC 9449 §7.1's example. */
const RFC9449_TOKEN = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
const RFC9449_ATH = 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo';

describe('DpopKey', () => {
  it('makes proofs that jose verifies with the embedded key, with the RFC 9449 §4.2 claims', async () => {
    const key = await DpopKey.generate({ clock });
    const proof = key.proof({ method: 'post', url: URL_, accessToken: RFC9449_TOKEN, nonce: 'n-1' });
    expect(decodeProtectedHeader(proof)).toEqual({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk });
    const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'], currentDate: clock.now() });
    expect(payload).toEqual({ jti: expect.stringMatching(/^[0-9a-f-]{36}$/), htm: 'POST', htu: 'https://mcp.example.com/github', iat: clock.now().getTime() / 1000, ath: RFC9449_ATH, nonce: 'n-1' });
    expect(key.jkt).toBe(await calculateJwkThumbprint(key.publicJwk as never, 'sha256'));
  });

  it("passes the broker's verifier, and every proof has its own jti", async () => {
    const key = await DpopKey.generate({ clock });
    const replay = new DpopReplayCache({ clock });
    const expect_ = { method: 'POST', url: 'https://writ.example.com/oauth2/token', clock, replay };
    const first = await verifyDpopProof(key.proof({ method: 'POST', url: expect_.url }), { ...expect_, jkt: key.jkt });
    const second = await verifyDpopProof(key.proof({ method: 'POST', url: expect_.url }), expect_);
    expect(first.jkt).toBe(key.jkt);
    expect(first.jti).not.toBe(second.jti);
  });

  it('keeps the private key to itself', async () => {
    const key = await DpopKey.generate();
    expect(Object.keys(key.publicJwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(JSON.stringify(key)).not.toMatch(/"d"/);
  });
});
