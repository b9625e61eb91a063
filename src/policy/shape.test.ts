import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { PolicyEngine, validatePolicies } from './index';
import { MAX_POLICY_NESTING, MAX_POLICY_OPERATORS, policyShapeProblem } from './shape';

// PUT /v1/admin/policies takes Cedar text from the network. Text nested or chained beyond
// what Cedar's WebAssembly stack survives must be refused before Cedar sees it: a trapped
// Cedar instance fails every later parse and decision of the process.

const RUNS = Number(process.env.FC_RUNS ?? 300);
const permit = (condition: string) => `permit (principal, action, resource) when { ${condition} };`;
const ALLOW_ALL = 'permit (principal, action, resource);';
const request = {
  kind: 'action' as const,
  action: 'read' as const,
  user: { sub: 'alice', iss: 'https://idp.example.com', groups: ['eng'], risk: 'low' },
  connector: { spiffeId: 'spiffe://writ.local/c', owner: 'platform', trustDomain: 'writ.local' },
  server: 'https://mcp.example.com/x',
  tool: { name: 't', classification: 'public' as const },
  classification: 'public' as const,
  chainDepth: 0,
  taskId: 'task-1',
  binding: 'mtls' as const,
};

/** Cedar still parses, validates and decides: the check below did not let anything break it. */
const expectCedarAlive = () => {
  expect(validatePolicies(ALLOW_ALL)).toEqual({ ok: true });
  expect(PolicyEngine.create(ALLOW_ALL, '1').decide(request).allowed).toBe(true);
};

describe('policy text shape limits (before Cedar)', () => {
  it.each([
    ['200 nested parentheses', permit(`${'('.repeat(200)}true${')'.repeat(200)}`), /nested more than 24 levels deep/],
    ['5000 nested parentheses', permit(`${'('.repeat(5000)}true${')'.repeat(5000)}`), /nested more than 24 levels deep/],
    ['200 nested sets', permit(`${'['.repeat(200)}1${']'.repeat(200)} == 1`), /nested more than 24 levels deep/],
    ['200 nested records', permit(`${'{a: '.repeat(200)}1${'}'.repeat(200)} == 1`), /nested more than 24 levels deep/],
    ['1000 if-then-else', permit(`${'if true then '.repeat(1000)}true${' else false'.repeat(1000)}`), /more than 128 operators/],
    ['a chain of 1000 additions (which validates, then breaks every decision)', permit(`${Array(1000).fill('1').join(' + ')} == 1`), /more than 128 operators/],
    ['a chain of 5000 conjunctions', permit(Array(5000).fill('true').join(' && ')), /more than 128 operators/],
  ])('refuses %s with a 400 naming the line, and Cedar keeps working', (_, text, message) => {
    const result = validatePolicies(text);
    expect(result).toEqual({ ok: false, errors: [expect.stringMatching(message)] });
    expect(() => PolicyEngine.create(text, '1')).toThrow(expect.objectContaining({ name: 'PolicyInvalid', status: 400 }));
    expectCedarAlive();
  });

  it('accepts the operator policies of the test data and what real policies look like at the limits', () => {
    expect(policyShapeProblem(readFileSync(join(__dirname, 'testdata', 'writ.cedar'), 'utf8'))).toBeUndefined();
    const deep = permit(`${'('.repeat(MAX_POLICY_NESTING - 1)}${Array(MAX_POLICY_OPERATORS - 1).fill('true').join(' && ')}${')'.repeat(MAX_POLICY_NESTING - 1)}`);
    expect(policyShapeProblem(deep)).toBeUndefined();
    expect(validatePolicies(deep)).toEqual({ ok: true });
    expect(PolicyEngine.create(deep, '1').decide(request).allowed).toBe(true);
  });

  it('counts per policy, and ignores brackets and operators in strings and comments', () => {
    const many = Array(40).fill(permit(Array(60).fill('true').join(' && '))).join('\n');
    expect(policyShapeProblem(many)).toBeUndefined();
    expect(policyShapeProblem(permit(`principal.sub == "${'(('.repeat(200)}${'&&'.repeat(300)}" // ${'['.repeat(100)}\n`))).toBeUndefined();
    expect(policyShapeProblem(`// line 1\n\n${permit(`${'('.repeat(30)}true${')'.repeat(30)}`)}`)).toMatch(/^line 3: /);
  });

  it('never throws on any text, and never lets through text nested beyond the limit', () => {
    const token = fc.constantFrom('(', ')', '[', ']', '{', '}', '"', '\\', '//', '\n', ';', '&&', '||', '+', '.', 'if ', ' then ', ' else ', ' in ', 'true', 'context', 'x');
    fc.assert(
      fc.property(fc.array(fc.oneof(token, fc.string({ maxLength: 4 })), { maxLength: 300 }), (parts) => {
        const text = parts.join('');
        const problem = policyShapeProblem(text);
        if (problem !== undefined) expect(problem).toMatch(/^line \d+: /);
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(fc.integer({ min: MAX_POLICY_NESTING + 1, max: 3000 }), fc.constantFrom('(', '['), (n, open) => {
        expect(policyShapeProblem(permit(open.repeat(n)))).toMatch(/nested more than/);
      }),
      { numRuns: 50 },
    );
  });
});
