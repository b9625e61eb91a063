/**
 * Task history from the resource server's side: each `tools/call` the middleware let through,
 * and how it ended, reported to Writ (`POST /v1/task-events`, authenticated by this server's
 * X.509-SVID), so that policy can decide on what the task did before, on any server.
 *
 * Reports are batched and sent in the background, so a call is never slowed by them. They wait
 * in a bounded buffer while Writ cannot be reached and are sent again with backoff; none is
 * dropped. When the buffer is full, new calls are refused (JSON-RPC -32603) until Writ takes
 * reports again: a call whose history could not be kept does not run. Calls of tools that need
 * history (the token's `per_call`) also get a decision from Writ first, which records them
 * there before they run, so their taint never waits for a report.
 */
import type { Clock } from '../core/clock';
import type { Action } from '../tokens/authorization-details';
import { tlsFetch, type TlsClientOptions } from './tls-fetch';

export interface ReportingOptions {
  /** Writ's task events endpoint: `<issuer>/v1/task-events` by default. */
  readonly url?: string;
  /** This server's X.509-SVID and key, and Writ's trust bundle; by default the ones `decisions` or `introspect` use. */
  readonly tls?: TlsClientOptions;
  /** Reports per request; 100 by default (Writ takes at most 500). */
  readonly batchSize?: number;
  /** How long a report may wait for others to share its request (ms); 200 by default. */
  readonly flushIntervalMs?: number;
  /** Reports kept while Writ cannot be reached; 10,000 by default. When full, calls are refused. */
  readonly maxBuffered?: number;
  /** What a call touches, as policy should see it in `context.task.resources` (a record id, a repository), from its arguments. */
  readonly resourceOf?: (tool: string, args: unknown) => string | undefined;
  /** Replaces the fetch built from `tls` (tests). */
  readonly fetch?: typeof fetch;
  /** Told when a batch could not be delivered (it will be sent again); for logs. */
  readonly onError?: (error: Error) => void;
}

/** One call as `POST /v1/task-events` takes it. */
export interface CallReport {
  readonly task_id: string;
  readonly call_id: string;
  readonly tool: string;
  readonly actions?: readonly Action[];
  readonly classification?: string;
  readonly resource?: string;
  readonly outcome: 'ok' | 'error' | 'unknown';
  readonly occurred_at: string;
}

const MAX_BACKOFF_MS = 10_000;

/** The buffered, batched sender of call reports. */
export class TaskEventReporter {
  readonly #url: string;
  readonly #fetch: typeof fetch;
  readonly #batchSize: number;
  readonly #interval: number;
  readonly #max: number;
  readonly #buffer: CallReport[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sending: Promise<void> | undefined;
  #failures = 0;
  #closed = false;

  constructor(
    private readonly options: ReportingOptions & { readonly url: string; readonly server: string },
    private readonly clock: Clock,
  ) {
    if (!options.fetch && !options.tls) throw new Error('writProtection: reporting needs "tls" (this server\'s SVID) or "fetch"');
    this.#url = options.url;
    this.#fetch = options.fetch ?? tlsFetch(options.tls!, { keepAlive: true });
    this.#batchSize = Math.min(500, Math.max(1, options.batchSize ?? 100));
    this.#interval = Math.max(0, options.flushIntervalMs ?? 200);
    this.#max = Math.max(1, options.maxBuffered ?? 10_000);
  }

  /** Whether a new call may run: its report would find room. */
  get accepting(): boolean {
    return !this.#closed && this.#buffer.length < this.#max;
  }

  /** Reports waiting to be delivered. */
  get pending(): number {
    return this.#buffer.length;
  }

  /** Queues a report (the caller checked {@link accepting} before the call ran). */
  add(report: Omit<CallReport, 'occurred_at'> & { occurred_at?: string }): void {
    this.#buffer.push({ ...report, occurred_at: report.occurred_at ?? this.clock.now().toISOString() });
    if (this.#buffer.length >= this.#batchSize) void this.#drain();
    else this.#schedule(this.#interval);
  }

  /** Sends everything buffered now; resolves when the buffer is empty or a send failed. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#drain();
  }

  /** Flushes, then takes no more reports (new calls are refused). */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #schedule(ms: number): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#drain();
    }, ms);
    this.#timer.unref?.();
  }

  /** One send at a time, batch by batch, in order; a failure leaves the batch at the head and retries with backoff. */
  #drain(): Promise<void> {
    if (this.#sending) return this.#sending;
    this.#sending = (async () => {
      try {
        while (this.#buffer.length > 0) {
          const batch = this.#buffer.slice(0, this.#batchSize);
          try {
            await this.#send(batch);
          } catch (err) {
            this.#failures++;
            this.options.onError?.(err as Error);
            // Exponential backoff, capped: Writ is down or refusing; the reports stay buffered.
            this.#schedule(Math.min(MAX_BACKOFF_MS, this.#interval * 2 ** Math.min(this.#failures, 10) + 100));
            return;
          }
          this.#failures = 0;
          this.#buffer.splice(0, batch.length);
        }
      } finally {
        this.#sending = undefined;
      }
    })();
    return this.#sending;
  }

  async #send(events: readonly CallReport[]): Promise<void> {
    const res = await this.#fetch(this.#url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ server: this.options.server, events }),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 400) {
      // A report Writ will never take (a tool not registered): kept, it would block every later one.
      // Drop the batch's refused event and send the rest again: the problem names it as events[i].
      const problem = (await res.json().catch(() => ({}))) as { detail?: string };
      const index = /^events\[(\d+)\]/.exec(problem.detail ?? '')?.[1];
      if (index !== undefined) {
        const bad = events[Number(index)];
        this.#buffer.splice(this.#buffer.indexOf(bad!), 1);
        throw new Error(`Writ refused a call report (${problem.detail}); it was dropped, the rest is sent again`);
      }
    }
    if (res.status !== 200) throw new Error(`Writ answered ${res.status} to the call reports`);
    await res.arrayBuffer();
  }
}
