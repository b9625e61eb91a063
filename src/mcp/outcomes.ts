/**
 * How the `tools/call` requests of one HTTP exchange ended, read from the response the MCP
 * transport writes: a JSON-RPC result without `isError` is `ok`; an error, or a result with
 * `isError: true` (MCP's tool execution error), is `error`; a response that never completes, is
 * too large to read, or does not name the call is `unknown`. Both Streamable HTTP answers are
 * read: `application/json` and `text/event-stream` (each `data:` line a JSON-RPC message).
 */
import type { ServerResponse } from 'node:http';

export type CallOutcome = 'ok' | 'error' | 'unknown';

/** Bytes of a response kept for reading outcomes; beyond it, the calls' outcomes are `unknown`. */
const MAX_OBSERVED = 1024 * 1024;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The outcome of each JSON-RPC id among the messages of a response body. */
export function outcomesOf(body: string, contentType: string): Map<string, CallOutcome> {
  const out = new Map<string, CallOutcome>();
  const messages: unknown[] = [];
  const parse = (text: string) => {
    try {
      const v: unknown = JSON.parse(text);
      messages.push(...(Array.isArray(v) ? v : [v]));
    } catch {
      // not JSON: says nothing of any call
    }
  };
  if (contentType.toLowerCase().startsWith('text/event-stream')) {
    // WHATWG Server-Sent Events: an event's data is its data lines joined by newlines.
    for (const event of body.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
      if (data.length > 0) parse(data.join('\n'));
    }
  } else parse(body);
  for (const m of messages) {
    if (!isRecord(m) || (typeof m.id !== 'string' && typeof m.id !== 'number')) continue;
    const key = JSON.stringify(m.id);
    if ('error' in m) out.set(key, 'error');
    else if (isRecord(m.result)) out.set(key, m.result.isError === true ? 'error' : m.result.resultType === 'input_required' ? 'unknown' : 'ok');
  }
  return out;
}

/**
 * Calls `done` once with the outcome of each JSON-RPC id in `ids`, when the response finishes
 * (or closes unfinished), by reading what is written to it. Writes pass through unchanged.
 */
export function observeOutcomes(res: ServerResponse, ids: readonly unknown[], done: (outcomes: CallOutcome[]) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  const keep = (chunk: unknown, encoding?: unknown) => {
    if (overflow || chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf = Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > MAX_OBSERVED) {
      overflow = true;
      chunks.length = 0;
    } else chunks.push(buf);
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  (res as { write: unknown }).write = (...args: unknown[]) => {
    keep(args[0], args[1]);
    return write(...args);
  };
  (res as { end: unknown }).end = (...args: unknown[]) => {
    keep(args[0], args[1]);
    return end(...args);
  };
  let reported = false;
  const report = (finished: boolean) => {
    if (reported) return;
    reported = true;
    const outcomes = !finished || overflow ? new Map<string, CallOutcome>() : outcomesOf(Buffer.concat(chunks).toString('utf8'), String(res.getHeader('content-type') ?? ''));
    done(ids.map((id) => outcomes.get(JSON.stringify(id)) ?? 'unknown'));
  };
  res.once('finish', () => report(true));
  res.once('close', () => report(res.writableFinished));
}
