import { ReadCache, type Freshness } from './read-cache';

const freshness = (current = true) => {
  const f = { current, generation: 0, touch: () => void f.generation++ };
  return f as Freshness & { current: boolean; generation: number };
};

describe('read cache (valid for one generation of the data)', () => {
  it('loads once per key while the generation holds', async () => {
    const cache = new ReadCache<string>(freshness());
    let loads = 0;
    const load = async () => `value ${++loads}`;
    expect(await cache.get('k', load)).toBe('value 1');
    expect(await cache.get('k', load)).toBe('value 1');
    expect(loads).toBe(1);
  });

  it('reloads after a change starts a new generation', async () => {
    const f = freshness();
    const cache = new ReadCache<string>(f);
    let value = 'old';
    await cache.get('k', async () => value);
    value = 'new';
    f.touch();
    expect(await cache.get('k', async () => value)).toBe('new');
  });

  it('never caches while not current (no listener): every read goes to the database', async () => {
    const f = freshness(false);
    const cache = new ReadCache<number>(f);
    let loads = 0;
    await cache.get('k', async () => ++loads);
    await cache.get('k', async () => ++loads);
    expect(loads).toBe(2);
  });

  it('a value loaded while the data changed is reloaded on the next read', async () => {
    const f = freshness();
    const cache = new ReadCache<string>(f);
    await cache.get('k', async () => {
      f.touch(); // a change announced while this (possibly stale) read was in flight
      return 'maybe stale';
    });
    expect(await cache.get('k', async () => 'fresh')).toBe('fresh');
  });

  it('starts over beyond its size', async () => {
    const cache = new ReadCache<number>(freshness(), 2);
    let loads = 0;
    for (const k of ['a', 'b', 'c', 'a']) await cache.get(k, async () => ++loads);
    expect(loads).toBe(4);
  });
});
