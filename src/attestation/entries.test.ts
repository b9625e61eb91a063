import { entrySchema } from './entries';

const schema = entrySchema({ trustDomain: 'writ.local', x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 });
const issueOf = (spiffeId: string) => schema.safeParse({ spiffe_id: spiffeId }).error?.issues[0];

describe('entrySchema: the broker\'s own namespace (/writ) is reserved', () => {
  it.each(['spiffe://writ.local/writ', 'spiffe://writ.local/writ/server', 'spiffe://writ.local/writ/a/b'])('refuses %s, on spiffe_id', (id) => {
    expect(issueOf(id)).toMatchObject({ path: ['spiffe_id'], message: 'SPIFFE IDs under /writ are reserved for the broker\'s own identity' });
  });

  it.each(['spiffe://writ.local/writer', 'spiffe://writ.local/writ.old/server', 'spiffe://writ.local/team/writ/server', 'spiffe://writ.local/Writ/server'])('accepts %s', (id) => {
    expect(schema.safeParse({ spiffe_id: id }).success).toBe(true);
  });

  it('refuses it in an update too (the partial schema)', () => {
    expect(schema.partial().safeParse({ spiffe_id: 'spiffe://writ.local/writ/server' }).error?.issues[0]?.path).toEqual(['spiffe_id']);
  });
});
