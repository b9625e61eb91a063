/**
 * Whether cached reads may be trusted, and which generation of the data they must be from.
 * A replica listening for changes (LISTEN/NOTIFY) is current; every change it hears of, every
 * reconnect and every change it makes itself starts a new generation.
 */
export interface Freshness {
  /** False while changes may go unheard (no listener, listener lost): read the database. */
  readonly current: boolean;
  readonly generation: number;
  /** This process changed cached data: start a new generation now rather than when the announcement arrives. */
  touch(): void;
}

/** No listener (the embedded database, tests): nothing is cached. */
export const neverFresh: Freshness = { current: false, generation: 0, touch: () => undefined };

/**
 * A read-through cache of database reads, valid for one generation of the data. A value
 * loaded while the generation changed is tagged with the older one, so it is reloaded on
 * the next read.
 */
export class ReadCache<V> {
  #entries = new Map<string, { value: V; generation: number }>();

  constructor(
    private readonly freshness: Freshness,
    /** Entries kept at most; beyond it the cache starts over. */
    private readonly max = 10_000,
  ) {}

  async get(key: string, load: () => Promise<V>): Promise<V> {
    if (!this.freshness.current) return load();
    const generation = this.freshness.generation;
    const hit = this.#entries.get(key);
    if (hit && hit.generation === generation) return hit.value;
    const value = await load();
    if (this.#entries.size >= this.max) this.#entries.clear();
    this.#entries.set(key, { value, generation });
    return value;
  }
}

/**
 * Freshness of a change feed, trusted only while the database is open too: otherwise every
 * cached read asks the database (and fails closed).
 */
export function whileOpen(db: { readonly open: boolean }, feed: Freshness): Freshness {
  return {
    get current() {
      return db.open && feed.current;
    },
    get generation() {
      return feed.generation;
    },
    touch: () => feed.touch(),
  };
}
