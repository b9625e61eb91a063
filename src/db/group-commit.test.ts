import { GroupCommit } from './group-commit';

describe('group commit', () => {
  it('writes rows submitted together in one batch, in order, and resolves each with its result', async () => {
    const batches: number[][] = [];
    const commit = new GroupCommit<number, string>(async (items) => {
      batches.push(items);
      return items.map((i) => `row ${i}`);
    });
    const results = await Promise.all([1, 2, 3].map((i) => commit.submit(i)));
    expect(results).toEqual(['row 1', 'row 2', 'row 3']);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('rows submitted while a batch is being written go in the next batch; none resolves before its own write', async () => {
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const commit = new GroupCommit<number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return items.map(() => undefined);
    });
    const resolved: number[] = [];
    const first = commit.submit(1).then(() => resolved.push(1));
    await new Promise((r) => setImmediate(r));
    const later = [2, 3].map((i) => commit.submit(i).then(() => resolved.push(i)));
    await new Promise((r) => setImmediate(r));
    expect(resolved).toEqual([]);
    expect(commit.pending).toBe(2);
    release();
    await Promise.all([first, ...later]);
    expect(batches).toEqual([[1], [2, 3]]);
    expect(resolved).toEqual([1, 2, 3]);
  });

  it('caps a batch at its maximum size', async () => {
    const sizes: number[] = [];
    const commit = new GroupCommit<number>(async (items) => {
      sizes.push(items.length);
      return items.map(() => undefined);
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((i) => commit.submit(i)));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('a failed batch fails every caller in it and is not written again (it may have committed)', async () => {
    let writes = 0;
    const commit = new GroupCommit<number>(async (items) => {
      writes++;
      if (items.includes(2)) throw new Error('connection lost');
      return items.map(() => undefined);
    });
    const outcomes = await Promise.allSettled([1, 2, 3].map((i) => commit.submit(i)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(writes).toBe(1);
    await expect(commit.submit(4)).resolves.toBeUndefined(); // the next batch is written anew
  });

  it('when the database refuses everything, every caller is refused', async () => {
    const commit = new GroupCommit<number>(async () => {
      throw new Error('connection refused');
    });
    const outcomes = await Promise.allSettled([1, 2].map((i) => commit.submit(i)));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    // and the queue still works afterwards
    await expect(commit.submit(3)).rejects.toThrow('connection refused');
  });
  it('reports the size of each committed batch, and not of a failed one', async () => {
    const committed: number[] = [];
    const commit = new GroupCommit<number>(
      async (items) => {
        if (items.includes(9)) throw new Error('connection lost');
        return items.map(() => undefined);
      },
      2,
      (size) => committed.push(size),
    );
    await Promise.all([1, 2, 3].map((i) => commit.submit(i)));
    await expect(commit.submit(9)).rejects.toThrow('connection lost');
    expect(committed).toEqual([2, 1]);
  });
});
