import type { Classification, McpToolDetail } from './authorization-details';
import { actChain, attenuate, ceilingOf, chainDepth, DEFAULT_MAX_CHAIN_DEPTH, nestAct, nextChainDepth } from './attenuate';
import { AccessDenied } from './errors';

const A = 'spiffe://writ.local/connector/agent';
const B = 'spiffe://writ.local/connector/github';
const C = 'spiffe://writ.local/connector/ci';
const D = 'spiffe://writ.local/connector/deploy';

const tool = (tools: string[], actions: McpToolDetail['actions'], data_classification?: Classification): McpToolDetail => ({
  type: 'mcp_tool',
  tools,
  actions,
  ...(data_classification ? { data_classification } : {}),
});

const registry: Record<string, Classification> = { list_runs: 'internal', read_logs: 'confidential', rotate_keys: 'restricted', status: 'public' };
const registryClassification = (name: string): Classification | undefined => registry[name];

function denied(fn: () => unknown): AccessDenied {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AccessDenied);
    expect((err as AccessDenied).type).toBe('access_denied');
    return err as AccessDenied;
  }
  throw new Error('expected access_denied');
}

describe('RFC 8693 §4.1 act: nesting the chain of actors', () => {
  it('a first token names its connector; each hop nests the previous act', () => {
    const first = nestAct(A);
    expect(first).toEqual({ sub: A });
    const second = nestAct(B, first);
    expect(second).toEqual({ sub: B, act: { sub: A } });
    expect(nestAct(C, second)).toEqual({ sub: C, act: { sub: B, act: { sub: A } } });
  });

  it('chainDepth counts hops: the act levels nested under the outermost', () => {
    expect(chainDepth(undefined)).toBe(0);
    expect(chainDepth({ sub: A })).toBe(0);
    expect(chainDepth({ sub: B, act: { sub: A } })).toBe(1);
    expect(chainDepth({ sub: C, act: { sub: B, act: { sub: A } } })).toBe(2);
  });

  it('actChain lists the actors, current first (the policy context "chain")', () => {
    expect(actChain({ sub: C, act: { sub: B, act: { sub: A } } })).toEqual([C, B, A]);
    expect(actChain(undefined)).toEqual([]);
  });
});

describe('chaining: maximum chain depth', () => {
  it(`allows ${DEFAULT_MAX_CHAIN_DEPTH} hops by default and refuses the next with access_denied`, () => {
    expect(nextChainDepth({ sub: A })).toBe(1);
    expect(nextChainDepth({ sub: B, act: { sub: A } })).toBe(2);
    const err = denied(() => nextChainDepth({ sub: C, act: { sub: B, act: { sub: A } } }));
    expect(err.message).toBe('the delegation chain would be 3 hops long; at most 2 are allowed');
  });

  it('follows a configured maximum', () => {
    denied(() => nextChainDepth({ sub: A }, 0));
    expect(nextChainDepth({ sub: D, act: { sub: C, act: { sub: B, act: { sub: A } } } }, 4)).toBe(4);
  });

  it('attenuate refuses past the maximum before anything else', () => {
    const parent = { act: { sub: B, act: { sub: A } }, authorizationDetails: [tool(['x'], ['read'], 'restricted')] };
    expect(attenuate({ parent, requested: [tool(['status'], ['read'])], registryClassification }).depth).toBe(2);
    denied(() => attenuate({ parent, requested: [tool(['status'], ['read'])], registryClassification, maxDepth: 1 }));
  });
});

describe('chaining: a token never grants more than its parent (actions subset, classification not higher)', () => {
  const parentOf = (...details: McpToolDetail[]) => ({ act: { sub: A }, authorizationDetails: details });

  it('the ceiling is the union of the parent\'s actions and its highest classification (missing counts as public)', () => {
    expect(ceilingOf([tool(['a'], ['read'], 'internal'), tool(['b'], ['write', 'read'], 'confidential')])).toEqual({ actions: ['read', 'write'], classification: 'confidential' });
    expect(ceilingOf([tool(['a'], ['read'])])).toEqual({ actions: ['read'], classification: 'public' });
  });

  it('passes a request within the ceiling unchanged', () => {
    const requested = [tool(['list_runs', 'status'], ['read'])];
    const result = attenuate({ parent: parentOf(tool(['issues'], ['read', 'write'], 'internal')), requested, registryClassification });
    expect(result).toEqual({ depth: 1, ceiling: { actions: ['read', 'write'], classification: 'internal' }, details: requested, removed: [] });
  });

  it('drops actions the parent does not grant', () => {
    const result = attenuate({ parent: parentOf(tool(['issues'], ['read'], 'internal')), requested: [tool(['list_runs'], ['read', 'delete'])], registryClassification });
    expect(result.details).toEqual([tool(['list_runs'], ['read'])]);
    expect(result.removed).toEqual([{ tool: 'list_runs', actions: ['delete'], reason: 'the parent token grants none of delete' }]);
  });

  it('drops tools classified above the parent (the registry classification)', () => {
    const result = attenuate({ parent: parentOf(tool(['issues'], ['read'], 'internal')), requested: [tool(['list_runs', 'read_logs', 'rotate_keys'], ['read'])], registryClassification });
    expect(result.details).toEqual([tool(['list_runs'], ['read'])]);
    expect(result.removed.map((r) => [r.tool, r.reason])).toEqual([
      ['read_logs', 'classified confidential, above the parent token\'s internal'],
      ['rotate_keys', 'classified restricted, above the parent token\'s internal'],
    ]);
  });

  it('a declared data_classification raises the downstream classification (and is kept)', () => {
    const parent = parentOf(tool(['issues'], ['read'], 'internal'));
    denied(() => attenuate({ parent, requested: [tool(['status'], ['read'], 'confidential')], registryClassification }));
    expect(attenuate({ parent, requested: [tool(['status'], ['read'], 'internal')], registryClassification }).details).toEqual([tool(['status'], ['read'], 'internal')]);
    // Declaring lower than the registry does not lower it.
    denied(() => attenuate({ parent, requested: [tool(['read_logs'], ['read'], 'public')], registryClassification }));
  });

  it('a parent without recorded classification allows only public tools (fail closed)', () => {
    const parent = parentOf(tool(['issues'], ['read']));
    expect(attenuate({ parent, requested: [tool(['status', 'list_runs'], ['read'])], registryClassification }).details).toEqual([tool(['status'], ['read'])]);
  });

  it('leaves tools the registry does not know for the tool resolution step (counted as public here)', () => {
    const result = attenuate({ parent: parentOf(tool(['issues'], ['read'], 'internal')), requested: [tool(['no_such_tool'], ['read'])], registryClassification });
    expect(result.details).toEqual([tool(['no_such_tool'], ['read'])]);
  });

  it('refuses with access_denied when nothing remains, saying why', () => {
    const err = denied(() => attenuate({ parent: parentOf(tool(['issues'], ['read'], 'restricted')), requested: [tool(['list_runs'], ['write', 'delete'])], registryClassification }));
    expect(err.message).toBe('the parent token allows none of the requested tools and actions: list_runs (the parent token grants none of write, delete)');
  });

  it('keeps the parent\'s grant as the ceiling for each object of a multi-object request', () => {
    const result = attenuate({
      parent: parentOf(tool(['a'], ['read'], 'public'), tool(['b'], ['execute'], 'confidential')),
      requested: [tool(['status'], ['read', 'write']), tool(['read_logs'], ['execute']), tool(['rotate_keys'], ['execute'])],
      registryClassification,
    });
    expect(result.ceiling).toEqual({ actions: ['read', 'execute'], classification: 'confidential' });
    expect(result.details).toEqual([tool(['status'], ['read']), tool(['read_logs'], ['execute'])]);
  });
});
