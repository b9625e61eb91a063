/**
 * The token exchange against a real OpenID Provider (`oidc-provider`, as `writ dev` runs it):
 * Writ finds its keys by OpenID Connect Discovery, verifies ID tokens from its authorization
 * code flow, follows its key rotation (an unknown `kid` refetches the JWKS, at most once per
 * cooldown; a retired key stops verifying once the cached set ages out), and verifies tokens
 * that carry no `kid` against the keys it publishes.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { ManualClock } from '../../src/core/clock';
import { systemClock } from '../../src/core/clock';
import { IdentityProviders, identityProvidersSchema } from '../../src/tokens/subject-token';
import { startBrokerFixture, type BrokerFixture } from '../support/fixture';
import { startTestOp, type TestOp } from '../support/oidc-op';

const TOOLS = 'https://mcp.idp.test/tools';
const POLICIES = `
@id("eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") };
`;

let op: TestOp;
let fx: BrokerFixture<'agent'>;
const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);

const exchange = (subjectToken: string) =>
  fx.form(
    '/oauth2/token',
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      resource: TOOLS,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', tools: ['search'], actions: ['read'] }]),
    },
    fx.connectors.agent,
  );

beforeAll(async () => {
  op = await startTestOp({ alice: ['eng'], carol: [] });
  fx = await startBrokerFixture({
    prefix: 'writ-idp-',
    trustDomain: 'idp.test',
    policies: POLICIES,
    clock,
    env: { WRIT_IDENTITY_PROVIDERS: JSON.stringify([op.trusted]) },
    resources: [{ uri: TOOLS, spiffe_id: 'spiffe://idp.test/mcp/tools', tools: [{ name: 'search', actions: ['read'], classification: 'internal' }] }],
    connectors: { agent: { spiffeId: 'spiffe://idp.test/agent', owner: 'platform' } },
  });
});

afterAll(async () => {
  await fx?.close();
  await op?.close();
});

describe('a real OpenID Provider, trusted by discovery', () => {
  let firstToken: string;

  it('accepts an ID token from its code flow, the keys found through its discovery document, and audits the person with their issuer', async () => {
    firstToken = await op.idToken('alice');
    expect(decodeProtectedHeader(firstToken).kid).toBe(op.signing[0]!.kid);
    const res = await exchange(firstToken);
    expect(res.status).toBe(200);
    expect(res.json.authorization_details).toEqual([expect.objectContaining({ tools: ['search'], actions: ['read'] })]);
    expect(decodeJwt(res.json.access_token)).toMatchObject({ sub: 'alice' });
    const issued = await fx.broker.db.prisma.auditEvent.findFirst({ where: { type: 'token.issued' }, orderBy: { seq: 'desc' } });
    expect(issued).toMatchObject({ subject: 'alice', subjectIssuer: op.issuer });
  });

  it('refuses a user policy allows nothing (carol: no groups), though her token verifies', async () => {
    const res = await exchange(await op.idToken('carol'));
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('access_denied');
  });

  it('follows a key rotation: an unknown kid refetches the JWKS, but not within the cooldown', async () => {
    const next = await op.rotate({ keepPrevious: true });
    const rotated = await op.idToken('alice');
    expect(decodeProtectedHeader(rotated).kid).toBe(next.kid);
    // The set was fetched moments ago: a token naming a key not in it cannot make Writ fetch again yet.
    const early = await exchange(rotated);
    expect(early.status).toBe(400);
    expect(early.json.error).toBe('invalid_grant');
    clock.advance(30);
    expect((await exchange(rotated)).status).toBe(200);
    // The previous key is still published: tokens it signed still verify.
    expect((await exchange(firstToken)).status).toBe(200);
  });

  it('verifies a token without a kid against each published key (RFC 7515 §4.1.4), and refuses one no published key signed', async () => {
    const [current, previous] = op.signing;
    expect((await exchange(await op.kidlessToken('alice', current!))).status).toBe(200);
    expect((await exchange(await op.kidlessToken('alice', previous!))).status).toBe(200);
    const retired = previous!;
    await op.rotate({ keepPrevious: false });
    clock.advance(601); // past the cached set's age: the next use fetches it again
    const fresh = await op.idToken('alice');
    expect((await exchange(fresh)).status).toBe(200);
    const stale = await exchange(await op.kidlessToken('alice', retired));
    expect(stale.status).toBe(400);
    expect(stale.json.error).toBe('invalid_grant');
  });

  it('refuses a token signed by a key the provider retired, once the cached set is refreshed', async () => {
    // firstToken is unexpired, but its key is no longer in the provider's JWKS.
    const res = await exchange(firstToken);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
  });
});

describe('discovery that does not name the issuer configured', () => {
  it('is refused (OpenID Connect Discovery 1.0 §4.3): the document at localhost names 127.0.0.1', async () => {
    const other = op.issuer.replace('127.0.0.1', 'localhost');
    const idps = new IdentityProviders(identityProvidersSchema.parse([{ ...op.trusted, issuer: other }]), { clock: systemClock });
    // A token claiming the localhost issuer, signed with the provider's own key: only discovery stands between it and acceptance.
    const claimed = await op.kidlessToken('alice', op.signing[0]!, { iss: other });
    const refusal = await idps.verify(claimed).catch((err: unknown) => err as Error & { cause?: Error });
    expect(refusal).toBeInstanceOf(Error);
    expect(`${(refusal as Error).message} ${(refusal as { cause?: Error }).cause?.message ?? ''}`).toMatch(/names issuer "http:\/\/127\.0\.0\.1:\d+", not http:\/\/localhost:\d+/);
  });
});
