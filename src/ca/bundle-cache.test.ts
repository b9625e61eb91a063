import pino from 'pino';
import { ManualClock } from '../core/clock';
import type { TrustBundle } from '../spiffe/bundle';
import { BundleCache, sameDocument } from './bundle-cache';
import type { BundleStore } from './bundle-store';

const jwk = (x: string) => ({ kty: 'EC', crv: 'P-256', x, y: 'y' });
const bundle = (over: Partial<TrustBundle> = {}): TrustBundle => ({
  trustDomain: 'cache.test',
  sequence: 3,
  refreshHint: 300,
  x509Authorities: [Uint8Array.of(1, 2, 3)],
  jwtAuthorities: [{ kid: 'k1', publicJwk: jwk('a') }],
  ...over,
});

/** A store whose load() answers the next document given (each a fresh object, as reading the database gives). */
function storeOf(documents: TrustBundle[]): BundleStore {
  let i = 0;
  return { load: async () => structuredClone(documents[Math.min(i++, documents.length - 1)]!) } as unknown as BundleStore;
}

describe('BundleCache', () => {
  it('keeps the object it serves while reloads find the same document, so what is remembered per bundle lives on', async () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const cache = new BundleCache(storeOf([bundle(), bundle(), bundle()]), { clock, maxAgeSeconds: 5, logger: pino({ level: 'silent' }) });
    const first = await cache.current();
    clock.advance(6);
    const second = await cache.current();
    expect(second).toBe(first);
    expect(second.jwtAuthorities).toBe(first.jwtAuthorities);
  });

  it('serves a new object once the document changed: a key added or gone, a new sequence, another CA', async () => {
    for (const changed of [
      bundle({ jwtAuthorities: [{ kid: 'k1', publicJwk: jwk('a') }, { kid: 'k2', publicJwk: jwk('b') }] }),
      bundle({ jwtAuthorities: [] }),
      bundle({ jwtAuthorities: [{ kid: 'k1', publicJwk: jwk('other') }] }),
      bundle({ sequence: 4 }),
      bundle({ refreshHint: 60 }),
      bundle({ x509Authorities: [Uint8Array.of(1, 2, 4)] }),
      bundle({ x509Authorities: [] }),
    ]) {
      expect(sameDocument(bundle(), changed)).toBe(false);
      const clock = new ManualClock('2026-12-04T00:00:00Z');
      const cache = new BundleCache(storeOf([bundle(), changed]), { clock, maxAgeSeconds: 5, logger: pino({ level: 'silent' }) });
      const first = await cache.current();
      clock.advance(6);
      const next = await cache.current();
      expect(next).not.toBe(first);
      expect(next).toEqual(changed);
    }
    expect(sameDocument(bundle(), structuredClone(bundle()))).toBe(true);
  });
});
