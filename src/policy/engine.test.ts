import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { problemType } from '../core/errors';
import {
  CLASSIFICATIONS,
  PolicyEngine,
  PolicyInvalid,
  classificationLevel,
  toolEntityId,
  validatePolicies,
  type ActionRequest,
  type DelegateRequest,
  type PolicyRequest,
} from './index';

const OPERATOR_POLICIES = readFileSync(join(__dirname, 'testdata', 'writ.cedar'), 'utf8');
const GITHUB = 'https://mcp.example.com/github';
const DOCS = 'https://mcp.example.com/docs';

const alice = { sub: 'alice', iss: 'https://idp.example.com', groups: ['eng'], risk: 'low' };
const platformConnector = { spiffeId: 'spiffe://writ.local/connector/github', owner: 'platform', trustDomain: 'writ.local' };
const otherConnector = { spiffeId: 'spiffe://writ.local/connector/sales', owner: 'sales', trustDomain: 'writ.local' };

function action(overrides: Partial<ActionRequest> = {}): ActionRequest {
  return {
    kind: 'action',
    action: 'read',
    user: alice,
    connector: platformConnector,
    server: GITHUB,
    tool: { name: 'issues.read', classification: 'internal' },
    classification: 'internal',
    chainDepth: 0,
    taskId: 'task-1',
    binding: 'mtls',
    ...overrides,
  };
}

function delegate(overrides: Partial<DelegateRequest> = {}): DelegateRequest {
  return {
    kind: 'delegate',
    connector: { spiffeId: 'spiffe://writ.local/mcp/github', owner: 'platform', trustDomain: 'writ.local' },
    user: alice,
    chain: [platformConnector.spiffeId],
    chainDepth: 1,
    server: DOCS,
    tool: { name: 'search', classification: 'public' },
    classification: 'public',
    binding: 'mtls',
    ...overrides,
  };
}

const expectError = (result: ReturnType<typeof validatePolicies>, pattern: RegExp) => {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.errors.join('\n')).toMatch(pattern);
};

describe('data classifications (public < internal < confidential < restricted)', () => {
  it('orders the four classifications with levels 0 to 3', () => {
    expect(CLASSIFICATIONS).toEqual(['public', 'internal', 'confidential', 'restricted']);
    expect(CLASSIFICATIONS.map(classificationLevel)).toEqual([0, 1, 2, 3]);
  });

  it('refuses to guess the level of an unknown classification', () => {
    expect(() => classificationLevel('secret' as never)).toThrow(/unknown classification/);
  });

  it('names a tool entity <resource URI>#<tool name>', () => {
    expect(toolEntityId(GITHUB, 'issues.read')).toBe('https://mcp.example.com/github#issues.read');
  });
});

describe('policy validation against the Writ schema (strict mode)', () => {
  it('accepts a realistic operator policy set', () => {
    expect(validatePolicies(OPERATOR_POLICIES)).toEqual({ ok: true });
  });

  it('accepts an empty policy set (everything is denied)', () => {
    expect(validatePolicies('')).toEqual({ ok: true });
    expect(validatePolicies('// nothing yet\n')).toEqual({ ok: true });
  });

  it('refuses comparing classification_level (a Long) to a string, naming the policy and its line', () => {
    const text = `permit (principal, action, resource) when { true };\n@id("bad-level")\npermit (principal, action == Writ::Action::"read", resource)\nwhen { context.classification_level == "internal" };\n`;
    const result = validatePolicies(text);
    expectError(result, /^bad-level, line 4, column \d+: .*Long and String/m);
  });

  it('refuses a parse error with its line and column', () => {
    const result = validatePolicies('permit (principal, action, resource);\npermit (principal, action resource);\n');
    expectError(result, /^line 2, column \d+: .*unexpected token/m);
  });

  it('refuses a forbid reading principal.risk for every action (delegate\'s principal is a Connector)', () => {
    expectError(
      validatePolicies('forbid (principal, action, resource) when { principal.risk == "high" };'),
      /^policy0, line 1, column \d+: .*attribute `risk` on entity type `Writ::Connector` not found/m,
    );
  });

  it('refuses unknown entity types, actions and context attributes', () => {
    expectError(validatePolicies('permit (principal is Writ::Admin, action, resource);'), /Writ::Admin/);
    expectError(validatePolicies('permit (principal, action == Writ::Action::"admin", resource);'), /admin/);
    expectError(
      validatePolicies('permit (principal, action == Writ::Action::"read", resource) when { context.tenant == "x" };'),
      /tenant/,
    );
  });

  it('refuses duplicate and empty @id annotations, and templates', () => {
    expectError(
      validatePolicies('@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);'),
      /^policy1, line 2, column 1: duplicate policy id "a"/m,
    );
    expectError(validatePolicies('@id("") permit (principal, action, resource);'), /@id needs a value/);
    expectError(validatePolicies('@id permit (principal, action, resource);'), /@id needs a value/);
    expectError(validatePolicies('permit (principal == ?principal, action, resource);'), /templates .* not supported/);
  });

  it('PolicyEngine.create refuses an invalid set with PolicyInvalid (400, urn:writ:problem:invalid-policy)', () => {
    let error: unknown;
    try {
      PolicyEngine.create('permit (principal, action, resource) when { context.chain_depth == "0" };', '1');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PolicyInvalid);
    const invalid = error as PolicyInvalid;
    expect(invalid.status).toBe(400);
    expect(invalid.type).toBe(problemType('invalid-policy'));
    expect(invalid.errors).toHaveLength(1);
    expect(invalid.errors[0]).toMatch(/Long and String/);
    expect(invalid.message).toMatch(/^the policy set is not valid: /);
  });
});

describe('Cedar policy engine (default deny, request-time decisions)', () => {
  const engine = PolicyEngine.create(OPERATOR_POLICIES, '1');

  it('denies everything with an empty policy set, naming no policy and no error', () => {
    const empty = PolicyEngine.create('', '0');
    expect(empty.decide(action())).toEqual({ allowed: false, policyIds: [], errors: [], version: '0' });
    expect(empty.decide(delegate())).toEqual({ allowed: false, policyIds: [], errors: [], version: '0' });
  });

  it('permits "eng" to read a tool up to classification level 1 through a platform connector', () => {
    expect(engine.decide(action())).toEqual({ allowed: true, policyIds: ['eng-read-low'], errors: [], version: '1' });
    expect(engine.decide(action({ tool: { name: 'readme', classification: 'public' }, classification: 'public' })).allowed).toBe(true);
  });

  it('denies by default what no permit covers: higher classification, another group, another owner, another action', () => {
    const denied = [
      action({ classification: 'confidential' }),
      action({ user: { ...alice, groups: ['sales'] } }),
      action({ connector: otherConnector }),
      action({ action: 'write' }),
      action({ action: 'delete' }),
    ];
    for (const request of denied) {
      expect(engine.decide(request)).toEqual({ allowed: false, policyIds: [], errors: [], version: '1' });
    }
  });

  it('decides on the effective classification, not only the registry\'s', () => {
    const declaredHigher = action({ tool: { name: 'issues.read', classification: 'public' }, classification: 'confidential' });
    expect(engine.decide(declaredHigher).allowed).toBe(false);
  });

  it('matches tools by their server (Tool in Server) and the chain depth in context', () => {
    const sre = { ...alice, sub: 'sam', groups: ['sre'] };
    const run = action({ user: sre, action: 'execute', classification: 'confidential' });
    expect(engine.decide(run)).toMatchObject({ allowed: true, policyIds: ['sre-github'] });
    expect(engine.decide({ ...run, server: DOCS }).allowed).toBe(false);
    expect(engine.decide({ ...run, chainDepth: 1 }).allowed).toBe(false);
  });

  it('lets a forbid override a permit, and names the forbid', () => {
    const risky = action({ user: { ...alice, risk: 'high' } });
    expect(engine.decide(risky)).toEqual({ allowed: false, policyIds: ['deny-high-risk'], errors: [], version: '1' });
    const sre = { ...alice, groups: ['sre'] };
    expect(engine.decide(action({ user: sre, classification: 'restricted' }))).toMatchObject({
      allowed: false,
      policyIds: ['deny-restricted'],
    });
  });

  it('sees the token binding in context.binding: a policy can forbid DPoP-bound tokens', () => {
    const text = [
      '@id("all") permit (principal, action, resource);',
      '@id("no-dpop") forbid (principal, action, resource) when { context.binding == "dpop" };',
    ].join('\n');
    expect(validatePolicies(text)).toEqual({ ok: true });
    const strict = PolicyEngine.create(text, '7');
    expect(strict.decide(action({ binding: 'mtls' }))).toMatchObject({ allowed: true, policyIds: ['all'] });
    expect(strict.decide(action({ binding: 'dpop' }))).toMatchObject({ allowed: false, policyIds: ['no-dpop'] });
    expect(strict.decide(delegate({ binding: 'dpop' }))).toMatchObject({ allowed: false, policyIds: ['no-dpop'] });
    // A binding the schema does not know is a malformed request: denied, never guessed.
    expect(strict.decide(action({ binding: 'bearer' as never })).allowed).toBe(false);
  });

  it('reports every determining policy by its @id, and unannotated ones as policy<N> in text order', () => {
    const text = Array.from({ length: 12 }, (_, n) =>
      n === 5
        ? '@id("sixth") permit (principal, action == Writ::Action::"read", resource);'
        : `permit (principal, action == Writ::Action::"read", resource) when { context.chain_depth == ${n} };`,
    ).join('\n');
    const numbered = PolicyEngine.create(text, '12');
    expect(numbered.policyIds).toEqual([
      'policy0', 'policy1', 'policy2', 'policy3', 'policy4', 'sixth',
      'policy6', 'policy7', 'policy8', 'policy9', 'policy10', 'policy11',
    ]);
    expect(numbered.decide(action({ chainDepth: 10 })).policyIds.sort()).toEqual(['policy10', 'sixth']);
    expect(numbered.decide(action({ chainDepth: 2 })).policyIds.sort()).toEqual(['policy2', 'sixth']);
  });
});

describe('delegation (chaining): permitted only by an explicit delegate policy', () => {
  it('refuses a hop when only the user\'s actions are permitted', () => {
    const actionsOnly = PolicyEngine.create(
      '@id("all-actions") permit (principal is Writ::User, action, resource);',
      '2',
    );
    expect(actionsOnly.decide(action()).allowed).toBe(true);
    expect(actionsOnly.decide(delegate())).toEqual({ allowed: false, policyIds: [], errors: [], version: '2' });
  });

  it('permits a hop by the delegate policy, within the chain depth the policy allows', () => {
    const engine = PolicyEngine.create(OPERATOR_POLICIES, '1');
    expect(engine.decide(delegate())).toEqual({ allowed: true, policyIds: ['delegate-platform'], errors: [], version: '1' });
    expect(engine.decide(delegate({ chainDepth: 2 })).allowed).toBe(true);
    expect(engine.decide(delegate({ chainDepth: 3 })).allowed).toBe(false);
    expect(engine.decide(delegate({ user: { ...alice, risk: 'high' } })).allowed).toBe(false);
    expect(engine.decide(delegate({ connector: otherConnector })).allowed).toBe(false);
    expect(engine.decide(delegate({ classification: 'confidential' })).allowed).toBe(false);
  });

  it('puts the previous connectors in context.chain as Connector references', () => {
    const engine = PolicyEngine.create(
      `@id("from-github") permit (principal, action == Writ::Action::"delegate", resource)
       when { context.chain.contains(Writ::Connector::"${platformConnector.spiffeId}") && context.user.groups.contains("eng") };`,
      '3',
    );
    expect(engine.decide(delegate()).allowed).toBe(true);
    expect(engine.decide(delegate({ chain: [otherConnector.spiffeId] })).allowed).toBe(false);
    expect(engine.decide(delegate({ chain: [] })).allowed).toBe(false);
  });
});

describe('fail closed: errors deny and are reported, decide never throws', () => {
  const engine = PolicyEngine.create(OPERATOR_POLICIES, '1');

  it('denies when a permit fails to evaluate (integer overflow), naming the policy', () => {
    const overflow = PolicyEngine.create(
      '@id("overflowing") permit (principal, action == Writ::Action::"read", resource) when { context.chain_depth + 9223372036854775807 > 0 };',
      '4',
    );
    const decision = overflow.decide(action({ chainDepth: 1 }));
    expect(decision.allowed).toBe(false);
    expect(decision.errors).toEqual([expect.stringMatching(/^overflowing: .*overflow/)]);
  });

  it('denies when a forbid fails to evaluate even though a permit holds (stricter than Cedar, which skips it)', () => {
    const text = `@id("eng") permit (principal, action, resource) when { principal is Writ::User && principal.groups.contains("eng") };
                  @id("broken-forbid") forbid (principal, action, resource) when { context.chain_depth * 9223372036854775807 > 1 };`;
    const decision = PolicyEngine.create(text, '5').decide(action({ chainDepth: 2 }));
    expect(decision).toMatchObject({ allowed: false, policyIds: ['eng'] });
    expect(decision.errors).toEqual([expect.stringMatching(/^broken-forbid: .*overflow/)]);
  });

  it('denies a request whose entities do not conform to the schema, with Cedar\'s error', () => {
    const badGroups = action({ user: { ...alice, groups: ['eng', 7 as unknown as string] } });
    const decision = engine.decide(badGroups);
    expect(decision.allowed).toBe(false);
    expect(decision.errors.join()).toMatch(/does not conform to the schema/);
  });

  it('denies malformed requests instead of throwing', () => {
    const malformed: PolicyRequest[] = [
      action({ classification: 'secret' as never }),
      action({ tool: { name: 'x', classification: 'top' as never } }),
      action({ action: 'admin' as never }),
      action({ chainDepth: 1.5 }),
      action({ chainDepth: -1 }),
      action({ chainDepth: Number.NaN }),
      action({ chainDepth: 2 ** 60 }),
      action({ taskId: undefined as never }),
      action({ user: { ...alice, sub: undefined as never } }),
      action({ user: { ...alice, risk: null as never } }),
      action({ user: { ...alice, groups: undefined as never } }),
      delegate({ chain: 'spiffe://writ.local/a' as never }),
      delegate({ chain: [42 as never] }),
      { ...action(), kind: 'other' } as never,
      null as never,
    ];
    for (const request of malformed) {
      const decision = engine.decide(request);
      expect(decision.allowed).toBe(false);
      expect(decision.errors.length).toBeGreaterThan(0);
    }
  });

  it('denies when reading the request throws', () => {
    const hostile = action();
    Object.defineProperty(hostile, 'user', { get: () => { throw new Error('boom'); } });
    expect(engine.decide(hostile)).toEqual({ allowed: false, policyIds: [], errors: ['boom'], version: '1' });
  });

  it('treats an entity id as data: quotes and Cedar syntax in ids do not change the decision', () => {
    const tricky = action({ user: { ...alice, sub: 'alice" || true || "' }, server: 'https://x/"};permit(' });
    expect(engine.decide(tricky)).toMatchObject({ allowed: true, policyIds: ['eng-read-low'] });
    expect(engine.decide({ ...tricky, user: { ...tricky.user, groups: [] } }).allowed).toBe(false);
  });
});

describe('policy versions: a new set takes effect for the next decision', () => {
  it('a re-created engine with a new version decides with the new policies; the old one is unchanged', () => {
    const v1 = PolicyEngine.create('@id("read") permit (principal, action == Writ::Action::"read", resource);', '1');
    const v2 = PolicyEngine.create('@id("write") permit (principal, action == Writ::Action::"write", resource);', '2');
    expect(v2.version).toBe('2');
    expect(v2.decide(action({ action: 'read' })).allowed).toBe(false);
    expect(v2.decide(action({ action: 'write' }))).toMatchObject({ allowed: true, policyIds: ['write'], version: '2' });
    expect(v1.decide(action({ action: 'read' }))).toMatchObject({ allowed: true, policyIds: ['read'], version: '1' });
  });

  it('the same text under two versions shares one parse and decides the same', () => {
    const a = PolicyEngine.create(OPERATOR_POLICIES, '7');
    const b = PolicyEngine.create(OPERATOR_POLICIES, '8');
    expect(a.text).toBe(OPERATOR_POLICIES);
    expect(b.decide(action())).toEqual({ ...a.decide(action()), version: '8' });
  });
});

describe('decision cache: a repeated question is answered from memory, any changed input is decided anew', () => {
  const RISKY = `
@id("low-risk-eng-read")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && principal.risk == "low" && context.classification_level <= 1 && context.connector.owner == "platform" && context.chain_depth == 0 };`;

  it('answers a repeated request with the same decision', () => {
    const engine = PolicyEngine.create(RISKY, '1');
    const first = engine.decide(action());
    expect(first).toMatchObject({ allowed: true, policyIds: ['low-risk-eng-read'] });
    expect(engine.decide(action({ taskId: 'another-task' }))).toEqual(first);
  });

  it.each<[string, Partial<ActionRequest>]>([
    ['risk level', { user: { ...alice, risk: 'high' } }],
    ['groups', { user: { ...alice, groups: ['sales'] } }],
    ['connector owner', { connector: otherConnector }],
    ['classification', { classification: 'confidential' }],
    ['chain depth', { chainDepth: 1 }],
    ['action', { action: 'write' }],
  ])('a change of %s after an allowed decision is decided anew (denied here)', (_, change) => {
    const engine = PolicyEngine.create(RISKY, '1');
    expect(engine.decide(action()).allowed).toBe(true);
    expect(engine.decide(action(change)).allowed).toBe(false);
    expect(engine.decide(action()).allowed).toBe(true);
  });

  it('keys on the task id when a policy reads it', () => {
    const engine = PolicyEngine.create('@id("one-task") permit (principal, action == Writ::Action::"read", resource) when { context.task_id == "task-1" };', '1');
    expect(engine.decide(action({ taskId: 'task-1' })).allowed).toBe(true);
    expect(engine.decide(action({ taskId: 'task-2' })).allowed).toBe(false);
  });

  it('keys on the task id when a policy reads it through an escaped attribute name', () => {
    const engine = PolicyEngine.create(
      `@id("all-reads") permit (principal, action == Writ::Action::"read", resource);
       @id("blocked-task") forbid (principal, action == Writ::Action::"read", resource) when { context["task\\u{5f}id"] == "task-1" };`,
      '1',
    );
    expect(engine.text).not.toContain('task_id');
    expect(engine.decide(action({ taskId: 'task-2' })).allowed).toBe(true);
    expect(engine.decide(action({ taskId: 'task-1' })).allowed).toBe(false);
  });

  it('cached decisions cannot be altered by a caller', () => {
    const engine = PolicyEngine.create(RISKY, '1');
    engine.decide(action());
    const cached = engine.decide(action());
    cached.policyIds.push('forged');
    expect(engine.decide(action()).policyIds).toEqual(['low-risk-eng-read']);
  });
});

describe('task history in policy (context.task, resource.egress)', () => {
  const TAINT = `
@id("read") permit (principal, action, resource);
@id("no-egress-after-restricted-read")
forbid (principal, action, resource) when { resource.egress && context.task.max_classification_read >= 3 };
`;
  const restrictedRead = { calls: 1, toolsCalled: ['read_record'], servers: [DOCS], resources: ['r-7'], maxClassificationRead: 3, maxClassificationWritten: -1, egressCalls: 0 };
  const mail = { name: 'send_email', classification: 'internal' as const, egress: true };

  it('forbids an egress tool after the task read something restricted, and only then', () => {
    const engine = PolicyEngine.create(TAINT, '1');
    expect(engine.readsTaskHistory).toBe(true);
    expect(engine.decide(action({ action: 'write', tool: mail })).allowed).toBe(true); // a new task: nothing read
    expect(engine.decide(action({ action: 'write', tool: mail, task: restrictedRead }))).toMatchObject({ allowed: false, policyIds: ['no-egress-after-restricted-read'] });
    // The same request with another history is decided again, not answered from the cache.
    expect(engine.decide(action({ action: 'write', tool: mail, task: { ...restrictedRead, maxClassificationRead: 1 } })).allowed).toBe(true);
    expect(engine.decide(action({ action: 'write', tool: { ...mail, egress: false }, task: restrictedRead })).allowed).toBe(true);
    expect(engine.decide(delegate({ tool: mail, task: restrictedRead })).allowed).toBe(false);
  });

  it('sees the sets of tools, servers and resources called', () => {
    const engine = PolicyEngine.create(`@id("p") permit (principal, action, resource) when { context.task.tools_called.contains("read_record") && context.task.servers.contains("${DOCS}") && context.task.resources.contains("r-7") && context.task.calls == 1 };`, '1');
    expect(engine.decide(action({ task: restrictedRead })).allowed).toBe(true);
    expect(engine.decide(action()).allowed).toBe(false);
  });

  it('tells a set that reads no history, and refuses a malformed history (closed)', () => {
    expect(PolicyEngine.create('@id("p") permit (principal, action, resource);', '1').readsTaskHistory).toBe(false);
    const engine = PolicyEngine.create(TAINT, '1');
    const bad = engine.decide(action({ task: { ...restrictedRead, calls: -5 } }));
    expect([bad.allowed, bad.errors[0]]).toEqual([false, expect.stringContaining('calls must be an integer')]);
  });
});

describe('approval annotations (@approval, @approvers, @self_approval)', () => {
  it('marks a permitted decision as needing approval, with the permit and its approvers', () => {
    const engine = PolicyEngine.create(`@id("read") permit (principal, action == Writ::Action::"read", resource);
@id("delete") @approval("required") @approvers("security") permit (principal, action == Writ::Action::"delete", resource);
@id("write") @approval("required") @self_approval("allowed") permit (principal, action == Writ::Action::"write", resource);`, '1');
    expect(engine.decide(action({ action: 'read' })).approval).toBeUndefined();
    expect(engine.decide(action({ action: 'delete' }))).toMatchObject({ allowed: true, approval: { policies: ['delete'], approvers: ['security'], selfApproval: false } });
    expect(engine.decide(action({ action: 'write' })).approval).toEqual({ policies: ['write'], approvers: [], selfApproval: true });
    // Remembered decisions keep it.
    expect(engine.decide(action({ action: 'delete' })).approval?.policies).toEqual(['delete']);
  });

  it('refuses malformed annotations, and one on a forbid', () => {
    for (const [text, message] of [
      ['@approval("yes") permit (principal, action, resource);', '@approval takes one value'],
      ['@approval("required") forbid (principal, action, resource);', 'marks a permit'],
      ['@approvers("sec") permit (principal, action, resource);', 'go with @approval("required")'],
      ['@approval("required") @approvers("") permit (principal, action, resource);', '@approvers needs a group name'],
      ['@approval("required") @self_approval("yes") permit (principal, action, resource);', '@self_approval takes one value'],
    ] as const)
      expectError(validatePolicies(text), new RegExp(message.replace(/[()]/g, '\\$&')));
  });
});
