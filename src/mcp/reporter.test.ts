import { TaskEventReporter } from './reporter';
import { outcomesOf } from './outcomes';

const clock = { now: () => new Date('2026-12-03T10:00:00Z') };
const report = (n: number) => ({ task_id: '4f1c2b9e-8d7a-4c3b-9e2f-1a2b3c4d5e6f', call_id: `c-${n}`, tool: 'search', outcome: 'ok' as const });

/** A Writ stand-in that answers each POST with the next status and keeps the bodies. */
function writ(statuses: number[], body: (i: number) => unknown = () => ({ recorded: 1 })) {
  const posts: { server: string; events: { call_id: string }[] }[] = [];
  const fetch = (async (_url: string, init: RequestInit) => {
    const i = posts.length;
    posts.push(JSON.parse(String(init.body)));
    const status = statuses[Math.min(i, statuses.length - 1)]!;
    return new Response(JSON.stringify(status === 200 ? body(i) : { detail: status === 400 ? 'events[1].tool: gone is not a registered tool' : 'down' }), { status });
  }) as unknown as typeof globalThis.fetch;
  return { posts, fetch };
}

describe('TaskEventReporter', () => {
  it('sends reports in batches, in order, with the server named', async () => {
    const w = writ([200]);
    const r = new TaskEventReporter({ url: 'https://writ.test/v1/task-events', server: 'https://a.test/mcp', fetch: w.fetch, batchSize: 2, flushIntervalMs: 10_000 }, clock);
    for (let i = 0; i < 5; i++) r.add(report(i));
    await r.flush();
    expect(w.posts.map((p) => p.events.map((e) => e.call_id))).toEqual([['c-0', 'c-1'], ['c-2', 'c-3'], ['c-4']]);
    expect(w.posts[0]!.server).toBe('https://a.test/mcp');
    expect(r.pending).toBe(0);
  });

  it('keeps what Writ did not take, sends it again, and refuses new calls while the buffer is full', async () => {
    const w = writ([503, 503, 200]);
    const r = new TaskEventReporter({ url: 'https://writ.test/v1/task-events', server: 'https://a.test/mcp', fetch: w.fetch, maxBuffered: 2, flushIntervalMs: 10_000 }, clock);
    r.add(report(1));
    r.add(report(2));
    await r.flush();
    expect([r.pending, r.accepting]).toEqual([2, false]); // nothing lost, and no room: calls are refused
    await r.flush();
    expect(r.pending).toBe(2);
    await r.flush();
    expect([r.pending, r.accepting]).toEqual([0, true]);
    expect(w.posts.map((p) => p.events.length)).toEqual([2, 2, 2]);
  });

  it('drops only the report Writ refuses as such (400 naming events[i]), and sends the rest', async () => {
    const w = writ([400, 200]);
    const errors: string[] = [];
    const r = new TaskEventReporter({ url: 'https://writ.test/v1/task-events', server: 'https://a.test/mcp', fetch: w.fetch, flushIntervalMs: 10_000, onError: (e) => errors.push(e.message) }, clock);
    r.add(report(1));
    r.add({ ...report(2), tool: 'gone' });
    r.add(report(3));
    await r.flush();
    await r.flush();
    expect(w.posts.map((p) => p.events.map((e) => e.call_id))).toEqual([['c-1', 'c-2', 'c-3'], ['c-1', 'c-3']]);
    expect(errors).toEqual([expect.stringContaining('events[1].tool: gone is not a registered tool')]);
  });

  it('takes no more calls once closed', async () => {
    const r = new TaskEventReporter({ url: 'https://writ.test/v1/task-events', server: 'https://a.test/mcp', fetch: writ([200]).fetch }, clock);
    await r.close();
    expect(r.accepting).toBe(false);
  });
});

describe('outcomesOf (how each tools/call ended, from the transport\'s response)', () => {
  it('reads JSON and Server-Sent Events answers', () => {
    const json = JSON.stringify([{ jsonrpc: '2.0', id: 1, result: { content: [] } }, { jsonrpc: '2.0', id: 'b', result: { isError: true, content: [] } }, { jsonrpc: '2.0', id: 3, error: { code: -1, message: 'x' } }]);
    expect([...outcomesOf(json, 'application/json')]).toEqual([['1', 'ok'], ['"b"', 'error'], ['3', 'error']]);
    const sse = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 7, result: { content: [] } })}\n\nevent: message\ndata: {"jsonrpc":"2.0",\ndata: "id":8,"result":{"resultType":"input_required"}}\n\n`;
    expect([...outcomesOf(sse, 'text/event-stream')]).toEqual([['7', 'ok'], ['8', 'unknown']]);
  });

  it('says nothing of a body that is not JSON-RPC', () => {
    expect(outcomesOf('<html>', 'text/html').size).toBe(0);
    expect(outcomesOf('{"id":{"x":1},"result":{}}', 'application/json').size).toBe(0);
  });
});
