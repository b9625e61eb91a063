import { authorizeAny, authorizeId, authorizeMemberOf, authorizeOneOf } from './authorize';
import { PeerNotAuthorizedError } from './errors';
import { parseSpiffeId } from '../spiffe/id';

const peer = (uri: string) => parseSpiffeId(uri);
const AGENT = 'spiffe://writ.local/agent/assistant';

describe('SPIFFE authorizers (go-spiffe tlsconfig.Authorizer): accept by SPIFFE ID after the chain verified', () => {
  it('authorizeId accepts exactly that ID and refuses any other, naming the peer', () => {
    const authorize = authorizeId(AGENT);
    expect(authorize(peer(AGENT), [])).toBeUndefined();
    const refused = authorize(peer('spiffe://writ.local/agent/other'), []);
    expect(refused).toBeInstanceOf(PeerNotAuthorizedError);
    expect(refused).toMatchObject({ peerId: 'spiffe://writ.local/agent/other' });
    // A path that only starts like the wanted one, or the same path in another trust domain, is another ID.
    expect(authorize(peer(`${AGENT}/sub`), [])).toBeInstanceOf(PeerNotAuthorizedError);
    expect(authorize(peer('spiffe://evil.test/agent/assistant'), [])).toBeInstanceOf(PeerNotAuthorizedError);
  });

  it('authorizeId refuses to be built from something that is not a SPIFFE ID (SPIFFE ID §2: lowercase trust domain, no query)', () => {
    expect(() => authorizeId('spiffe://WRIT.local/agent/assistant')).toThrow();
    expect(() => authorizeId('https://writ.local/agent')).toThrow();
    expect(() => authorizeId('spiffe://writ.local/agent?x=1')).toThrow();
  });

  it('authorizeOneOf accepts any of the IDs given and needs at least one', () => {
    const authorize = authorizeOneOf(AGENT, 'spiffe://writ.local/mcp/github');
    expect(authorize(peer(AGENT), [])).toBeUndefined();
    expect(authorize(peer('spiffe://writ.local/mcp/github'), [])).toBeUndefined();
    expect(authorize(peer('spiffe://writ.local/mcp/jira'), [])).toBeInstanceOf(PeerNotAuthorizedError);
    expect(() => authorizeOneOf()).toThrow(TypeError);
  });

  it('authorizeMemberOf accepts any ID of the trust domain, including its own ID, and none of another', () => {
    const authorize = authorizeMemberOf('writ.local');
    expect(authorize(peer(AGENT), [])).toBeUndefined();
    expect(authorize(peer('spiffe://writ.local'), [])).toBeUndefined();
    expect(authorize(peer('spiffe://writ.local.evil.test/agent'), [])).toBeInstanceOf(PeerNotAuthorizedError);
    expect(authorize(peer('spiffe://other.test/agent/assistant'), [])).toBeInstanceOf(PeerNotAuthorizedError);
  });

  it('authorizeAny accepts every peer (the chain check before it is the only guard)', () => {
    expect(authorizeAny()(peer('spiffe://anything.test/x'), [])).toBeUndefined();
  });
});
