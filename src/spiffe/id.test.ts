import { InvalidSpiffeId, parseSpiffeId, parseTrustDomain, spiffeIdOf } from '.';

describe('SPIFFE-ID §2 parsing', () => {
  it('parses a workload ID into trust domain and path', () => {
    expect(parseSpiffeId('spiffe://writ.local/writ/server')).toEqual({ trustDomain: 'writ.local', path: '/writ/server', uri: 'spiffe://writ.local/writ/server' });
  });

  it('parses the trust domain ID (empty path)', () => {
    expect(parseSpiffeId('spiffe://example.org').path).toBe('');
  });

  it.each([
    ['http://writ.local/a', 'scheme'],
    ['SPIFFE://writ.local/a', 'scheme'],
    ['spiffe://Writ.local/a', 'lowercase'],
    ['spiffe://writ.local:8443/a', 'port'],
    ['spiffe://user@writ.local/a', 'userinfo'],
    ['spiffe:///a', 'empty'],
    ['spiffe://writ.local/a//b', 'empty segments'],
    ['spiffe://writ.local/a/', 'trailing'],
    ['spiffe://writ.local/a/../b', '".."'],
    ['spiffe://writ.local/./b', '"."'],
    ['spiffe://writ.local/a?b=c', 'query'],
    ['spiffe://writ.local/a#b', 'fragment'],
    ['spiffe://writ.local/a%20b', 'percent'],
    ['spiffe://writ.local/a b', 'letters'],
  ])('refuses %s (%s)', (uri, why) => {
    expect(() => parseSpiffeId(uri)).toThrow(InvalidSpiffeId);
    expect(() => parseSpiffeId(uri)).toThrow(new RegExp(why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'));
  });

  it('§2.3 refuses IDs longer than 2048 bytes', () => {
    expect(() => parseSpiffeId(`spiffe://writ.local/${'a'.repeat(2040)}`)).toThrow(/2048/);
  });

  it('§2.1 refuses trust domains longer than 255 bytes', () => {
    expect(() => parseTrustDomain('a'.repeat(256))).toThrow(/255/);
    expect(parseTrustDomain('a'.repeat(255))).toHaveLength(255);
  });

  it('builds IDs from a trust domain and a path', () => {
    expect(spiffeIdOf('prod.example_1-x', '/ns/default').uri).toBe('spiffe://prod.example_1-x/ns/default');
  });
});
