import { signWebhook } from './webhooks';

describe('signWebhook (Standard Webhooks)', () => {
  it('signs as the specification\'s libraries do (their published test vector)', () => {
    expect(signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).toEqual({
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    });
  });

  it('takes a secret without the whsec_ prefix as its UTF-8 bytes, and any change of id, time or body changes the signature', () => {
    const base = signWebhook('a secret of at least thirty-two characters', 'id-1', 1, '{}')['webhook-signature'];
    expect(base).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    for (const [id, ts, body] of [['id-2', 1, '{}'], ['id-1', 2, '{}'], ['id-1', 1, '{ }']] as const)
      expect(signWebhook('a secret of at least thirty-two characters', id, ts, body)['webhook-signature']).not.toBe(base);
  });
});
