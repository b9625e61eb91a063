/**
 * Group commit: callers submit rows to write and wait; one flush at a time writes every
 * row that is waiting, in one transaction, and only then resolves their promises. Under
 * load many requests share one round trip to the database; alone, a row waits for no one
 * (the flush starts on the next turn of the event loop).
 *
 * A batch that fails fails every caller in it, and is not retried: after a lost connection
 * the batch may have committed, and writing it again would duplicate audit events or burn
 * join tokens. Callers answer "try again" (503), so nothing is reported done that was not.
 */
export class GroupCommit<T, R = void> {
  #queue: { item: T; resolve: (result: R) => void; reject: (err: unknown) => void }[] = [];
  #draining = false;

  constructor(
    /** Writes the items in one transaction; returns one result per item, in order. */
    private readonly write: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 256,
    /** Told the size of each batch once it is committed (for metrics). */
    private readonly committed: (size: number) => void = () => undefined,
  ) {}

  /** Resolves once `item` is committed; rejects if it could not be. */
  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#draining) {
        this.#draining = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Rows waiting to be written (for metrics and tests). */
  get pending(): number {
    return this.#queue.length;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.maxBatch);
        try {
          const results = await this.write(batch.map((b) => b.item));
          this.committed(batch.length);
          batch.forEach((b, i) => b.resolve(results[i]!));
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}
