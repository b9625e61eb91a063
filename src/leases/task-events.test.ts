import { EMPTY_TASK_HISTORY, summarize } from './task-events';

const at = (s: number) => new Date(Date.UTC(2026, 11, 3, 10, 0, s));
const call = (over: Partial<Parameters<typeof summarize>[0][number]> = {}) => ({ server: 'https://a.test/mcp', callId: 'c', tool: 'search', actions: ['read' as const], classification: 'internal' as const, egress: false, resource: undefined, occurredAt: at(0), ...over });

describe('summarize (what policy sees as context.task)', () => {
  it('is empty for a task that did nothing', () => {
    expect(summarize([])).toBe(EMPTY_TASK_HISTORY);
    expect(EMPTY_TASK_HISTORY).toMatchObject({ calls: 0, maxClassificationRead: -1, maxClassificationWritten: -1 });
  });

  it('counts every call, the tools, servers and resources, and the highest level read and written', () => {
    const h = summarize([
      call({ callId: '1', resource: 'r-1' }),
      call({ callId: '2', server: 'https://b.test/mcp', tool: 'send', actions: ['write'], classification: 'confidential', egress: true }),
      call({ callId: '3', tool: 'read_record', classification: 'restricted', occurredAt: at(5) }),
      call({ callId: '4', tool: 'read_record', classification: 'restricted', occurredAt: at(2), server: 'https://c.test/mcp' }),
    ]);
    expect(h).toEqual({
      calls: 4,
      toolsCalled: ['read_record', 'search', 'send'],
      servers: ['https://a.test/mcp', 'https://b.test/mcp', 'https://c.test/mcp'],
      resources: ['r-1'],
      maxClassificationRead: 3,
      maxClassificationWritten: 2,
      egressCalls: 1,
      // the earliest call that read at the highest level
      maxReadBy: { server: 'https://c.test/mcp', tool: 'read_record', callId: '4', at: at(2).toISOString() },
    });
  });

  it('does not count a write as a read, nor an execute as a write', () => {
    const h = summarize([call({ actions: ['write'], classification: 'restricted' }), call({ callId: 'x', actions: ['execute'], classification: 'restricted' })]);
    expect([h.maxClassificationRead, h.maxClassificationWritten, h.maxReadBy]).toEqual([-1, 3, undefined]);
  });
});
