/**
 * oidc-provider's storage for `writ dev`: sessions, interactions, codes and grants in memory
 * (a restart logs everyone out, which a development provider may do). Ours rather than the
 * library's quick-start adapter, which warns on every start that it is not for production.
 * The interface is oidc-provider's Adapter (https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js).
 */

/** What oidc-provider stores: a model's payload (`uid`, `userCode`, `grantId`, `consumed`, …). */
export type AdapterPayload = Record<string, unknown> & { uid?: string; userCode?: string; grantId?: string; consumed?: number };

interface Stored {
  readonly payload: AdapterPayload;
  readonly expiresAt: number | undefined;
}

/** One store shared by the adapters of every model (oidc-provider constructs one per model name). */
export class MemoryStore {
  readonly #items = new Map<string, Stored>();
  readonly #now: () => number;
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }
  get(key: string): AdapterPayload | undefined {
    const item = this.#items.get(key);
    if (!item) return undefined;
    if (item.expiresAt !== undefined && item.expiresAt <= this.#now()) {
      this.#items.delete(key);
      return undefined;
    }
    return item.payload;
  }
  set(key: string, payload: AdapterPayload, expiresInSeconds: number | undefined): void {
    this.#items.set(key, { payload, expiresAt: expiresInSeconds ? this.#now() + expiresInSeconds * 1000 : undefined });
  }
  delete(key: string): void {
    this.#items.delete(key);
  }
  get size(): number {
    return this.#items.size;
  }
}

/** An adapter class bound to `store`, as oidc-provider's `adapter` configuration takes it. */
export function memoryAdapter(store: MemoryStore) {
  return class DevAdapter {
    readonly #model: string;
    constructor(model: string) {
      this.#model = model;
    }
    #key(id: string): string {
      return `${this.#model}:${id}`;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
      store.set(this.#key(id), payload, expiresIn);
      if (payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        const ids = (store.get(grantKey)?.ids as string[] | undefined) ?? [];
        store.set(grantKey, { ids: [...ids, this.#key(id)] }, expiresIn);
      }
      if (payload.userCode) store.set(`userCode:${payload.userCode}`, { id }, expiresIn);
      if (payload.uid) store.set(`uid:${this.#model}:${payload.uid}`, { id }, expiresIn);
    }
    async find(id: string): Promise<AdapterPayload | undefined> {
      return store.get(this.#key(id));
    }
    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const ref = store.get(`userCode:${userCode}`);
      return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const ref = store.get(`uid:${this.#model}:${uid}`);
      return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
    }
    async consume(id: string): Promise<void> {
      const payload = store.get(this.#key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      store.delete(this.#key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      const grantKey = `grant:${grantId}`;
      for (const key of (store.get(grantKey)?.ids as string[] | undefined) ?? []) store.delete(key);
      store.delete(grantKey);
    }
  };
}
