/** A database read that did not answer within its bound: callers fail closed. */
export class DeadlineExceeded extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

/**
 * `work`, or a rejection with {@link DeadlineExceeded} once `ms` have passed, whichever comes
 * first. The work itself is not cancelled (a query on a silently partitioned connection keeps
 * waiting for its socket); only the caller stops waiting.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(what, ms)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
