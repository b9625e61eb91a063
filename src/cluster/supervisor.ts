import cluster, { type Worker } from 'node:cluster';

/** What a worker sends the primary once its broker is up and listening. */
export const WORKER_LISTENING = 'writ:listening';

export interface SupervisorOptions {
  /** How many broker processes to keep running (WRIT_WORKERS). */
  workers: number;
  /** Replacements allowed within `restartWindowMs`; one more death gives up (exit 1). */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** Where the supervisor's one-line messages go; stderr by default. */
  write?: (line: string) => void;
}

interface Entry {
  readonly worker: Worker;
  /** Forked while Writ starts: its failing to come up stops Writ. */
  readonly initial: boolean;
  listening: boolean;
}

/** Delay before the nth replacement within the window: 250 ms doubling, at most 5 s. */
const backoffMs = (n: number) => Math.min(250 * 2 ** (n - 1), 5000);

/**
 * The primary of a clustered Writ: it opens neither the database nor the CA. It forks one
 * worker and waits until it listens (that one creates the CA, applies migrations and
 * bootstraps the admin credential), then forks the others, which share the API and ops
 * listeners through node:cluster. SIGTERM or SIGINT is passed to every worker as SIGTERM
 * (each drains as a single broker does); a second signal kills them. A worker that fails
 * to start stops Writ; one that dies later is replaced, with a back-off, until too many die
 * within the window. Resolves with the exit code: 0 when every worker stopped cleanly.
 */
export function superviseWorkers(options: SupervisorOptions): Promise<number> {
  const { workers: count, maxRestarts = 5, restartWindowMs = 60_000 } = options;
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const running = new Map<number, Entry>();
  const restarts: number[] = [];
  const pending = new Set<NodeJS.Timeout>();
  let stopping = false;
  let failed = false;
  let forkedRest = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));

  const checkDone = () => {
    if (stopping && running.size === 0) finish(failed ? 1 : 0);
  };

  const stop = (reason: string | undefined) => {
    if (stopping) return;
    stopping = true;
    if (reason) write(`writ: ${reason}`);
    for (const t of pending) clearTimeout(t);
    pending.clear();
    for (const { worker } of running.values()) worker.process.kill('SIGTERM');
    checkDone();
  };

  const fork = (initial: boolean) => {
    const worker = cluster.fork();
    const entry: Entry = { worker, initial, listening: false };
    running.set(worker.id, entry);
    worker.on('message', (message: unknown) => {
      if ((message as { type?: unknown } | null)?.type !== WORKER_LISTENING || entry.listening) return;
      entry.listening = true;
      // The first worker has created what the others share: now they may start together.
      if (!forkedRest && !stopping) {
        forkedRest = true;
        for (let i = 1; i < count; i++) fork(true);
      }
    });
    worker.on('exit', (code, signal) => {
      running.delete(worker.id);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (stopping) {
        // A worker SIGTERM reached before it had set up its handlers had not started anything.
        const clean = code === 0 || (signal === 'SIGTERM' && !entry.listening);
        if (!clean) failed = true;
        return checkDone();
      }
      if (entry.initial && !entry.listening) {
        // The worker wrote why on stderr; a signal leaves no line, so name it.
        failed = true;
        return stop(signal ? `worker ${worker.id} (pid ${worker.process.pid}) ${how} during start-up; stopping` : undefined);
      }
      const now = Date.now();
      while (restarts.length > 0 && restarts[0]! <= now - restartWindowMs) restarts.shift();
      if (restarts.length >= maxRestarts) {
        failed = true;
        return stop(`worker ${worker.id} (pid ${worker.process.pid}) ${how}; ${restarts.length} replacements within ${restartWindowMs / 1000} s already, giving up`);
      }
      restarts.push(now);
      const delay = backoffMs(restarts.length);
      write(`writ: worker ${worker.id} (pid ${worker.process.pid}) ${how}; starting a replacement in ${delay / 1000} s`);
      const timer = setTimeout(() => {
        pending.delete(timer);
        if (!stopping) fork(false);
      }, delay);
      pending.add(timer);
    });
  };

  // Installed before the first fork, so that a signal at any moment of start-up is handled.
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!signalled) {
      signalled = true;
      return stop(`${signal} received, stopping ${running.size} worker${running.size === 1 ? '' : 's'}`);
    }
    write(`writ: ${signal} received again, killing the workers`);
    failed = true;
    for (const { worker } of running.values()) worker.process.kill('SIGKILL');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  fork(true);
  return done;
}

/** Tells the primary that this worker's broker is up and listening. */
export function notifyListening(): void {
  process.send?.({ type: WORKER_LISTENING });
}
