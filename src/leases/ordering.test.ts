import { LeaseRefused, parseRefusal } from './ordering';

describe('lease refusals at commit (writ_record_leases refused_reason)', () => {
  it('parses task-ended, a lease it relied on, and each marker kind', () => {
    expect(parseRefusal('task-ended')).toEqual({ reason: 'task-ended' });
    expect(parseRefusal('requires:0b7c1e52-0000-4000-8000-000000000001')).toEqual({ reason: 'requires', lease: '0b7c1e52-0000-4000-8000-000000000001' });
    for (const kind of ['jti', 'task', 'user', 'session', 'email', 'connector', 'audience', 'user-connector', 'kill-switch'] as const) {
      expect(parseRefusal(`marker:${kind}`)).toEqual({ reason: 'revoked', kind });
    }
  });

  it('a refused lease is a 409 revoked problem; a task that ended says so, a revocation race says a revocation arrived', () => {
    const ended = new LeaseRefused({ reason: 'task-ended' });
    expect(ended).toMatchObject({ status: 409, type: expect.stringMatching(/revoked$/), message: 'the task has ended', refusal: { reason: 'task-ended' } });
    const raced = new LeaseRefused(parseRefusal('marker:user'));
    expect(raced.message).toBe('a revocation naming this credential arrived while it was being issued');
    expect(new LeaseRefused(parseRefusal('requires:x')).message).toBe(raced.message);
  });
});
