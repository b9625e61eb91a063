import {
  classificationLevel,
  compareClassifications,
  effectiveClassification,
  highestClassification,
  MAX_AUTHORIZATION_DETAILS_BYTES,
  MAX_AUTHORIZATION_DETAILS_ENTRIES,
  parseAuthorizationDetails,
  toolActions,
  validateAuthorizationDetails,
} from './authorization-details';
import { InvalidAuthorizationDetails } from './errors';

function refusal(text: string): InvalidAuthorizationDetails {
  try {
    parseAuthorizationDetails(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidAuthorizationDetails);
    expect((err as InvalidAuthorizationDetails).type).toBe('invalid_authorization_details');
    expect((err as InvalidAuthorizationDetails).status).toBe(400);
    return err as InvalidAuthorizationDetails;
  }
  throw new Error('expected authorization_details to be refused');
}

const detail = (over: Record<string, unknown> = {}) => ({ type: 'mcp_tool', tools: ['create_issue'], actions: ['write'], ...over });

describe('RFC 9396 §2 authorization_details of type mcp_tool', () => {
  it('parses the example of the issue', () => {
    expect(parseAuthorizationDetails('[{"type":"mcp_tool","tools":["create_issue"],"actions":["write"]}]')).toEqual([
      { type: 'mcp_tool', tools: ['create_issue'], actions: ['write'] },
    ]);
  });

  it('parses several objects, data_classification, and collapses duplicate tools and actions', () => {
    const parsed = parseAuthorizationDetails(
      JSON.stringify([
        detail({ tools: ['issues.read', 'issues.read', 'repo-list'], actions: ['read', 'read'], data_classification: 'confidential' }),
        detail({ tools: ['run_query'], actions: ['execute', 'delete'] }),
      ]),
    );
    expect(parsed).toEqual([
      { type: 'mcp_tool', tools: ['issues.read', 'repo-list'], actions: ['read'], data_classification: 'confidential' },
      { type: 'mcp_tool', tools: ['run_query'], actions: ['execute', 'delete'] },
    ]);
  });

  it('validates already-decoded values the same way (token claims, leases)', () => {
    expect(validateAuthorizationDetails([detail()])).toEqual([detail()]);
    expect(() => validateAuthorizationDetails([detail({ type: 'payment_initiation' })])).toThrow(InvalidAuthorizationDetails);
  });

  it('lists every (tool, action) pair once, for per-tool policy decisions', () => {
    const details = parseAuthorizationDetails(JSON.stringify([detail({ tools: ['a', 'b'], actions: ['read', 'write'] }), detail({ tools: ['a'], actions: ['read'] })]));
    expect(toolActions(details)).toEqual([
      { tool: 'a', action: 'read' },
      { tool: 'a', action: 'write' },
      { tool: 'b', action: 'read' },
      { tool: 'b', action: 'write' },
    ]);
  });
});

describe('RFC 9396 §5 invalid_authorization_details', () => {
  it('refuses text that is not JSON', () => {
    expect(refusal('[{"type":"mcp_tool",').message).toMatch(/not valid JSON/);
    expect(refusal('').message).toMatch(/not valid JSON/);
  });

  it('refuses JSON that is not an array, or an empty one', () => {
    expect(refusal('{"type":"mcp_tool","tools":["a"],"actions":["read"]}').message).toMatch(/JSON array/);
    expect(refusal('"mcp_tool"').message).toMatch(/JSON array/);
    expect(refusal('[]').message).toMatch(/at least one/);
  });

  it('refuses an unknown type, naming it, and a missing type', () => {
    const err = refusal(JSON.stringify([detail(), detail({ type: 'payment_initiation' })]));
    expect(err.message).toBe('authorization_details[1].type: "payment_initiation" is not a supported type (supported: mcp_tool)');
    expect(refusal(JSON.stringify([{ tools: ['a'], actions: ['read'] }])).message).toMatch(/\[0\]\.type: is required/);
    expect(refusal('[42]').message).toMatch(/\[0\]: must be a JSON object/);
  });

  it('refuses unknown members (RFC 9396 §2.2 common fields included)', () => {
    expect(refusal(JSON.stringify([detail({ locations: ['https://mcp.example/github'] })])).message).toBe(
      'authorization_details[0]: unknown member "locations"',
    );
    expect(refusal(JSON.stringify([detail({ privileges: ['admin'], extra: 1 })])).message).toMatch(/unknown members "privileges", "extra"/);
  });

  it('refuses an unknown action, an unknown classification, empty lists and bad tool names', () => {
    expect(refusal(JSON.stringify([detail({ actions: ['write', 'admin'] })])).message).toMatch(/\[0\]\.actions\[1\]: an action is one of read, write, execute, delete/);
    expect(refusal(JSON.stringify([detail({ data_classification: 'secret' })])).message).toMatch(/data_classification: data_classification is one of public, internal/);
    expect(refusal(JSON.stringify([detail({ tools: [] })])).message).toMatch(/tools must name at least one tool/);
    expect(refusal(JSON.stringify([detail({ actions: [] })])).message).toMatch(/actions must name at least one action/);
    expect(refusal(JSON.stringify([detail({ tools: ['rm -rf /'] })])).message).toMatch(/\[0\]\.tools\[0\]: a tool name holds only/);
    expect(refusal(JSON.stringify([detail({ tools: ['x'.repeat(129)] })])).message).toMatch(/at most 128 characters/);
    expect(refusal(JSON.stringify([detail({ tools: 'create_issue' })])).message).toMatch(/\[0\]\.tools: must be an array/);
  });

  it(`refuses more than ${MAX_AUTHORIZATION_DETAILS_ENTRIES} objects`, () => {
    const many = Array.from({ length: MAX_AUTHORIZATION_DETAILS_ENTRIES + 1 }, (_, i) => detail({ tools: [`t${i}`] }));
    expect(refusal(JSON.stringify(many)).message).toMatch(/at most 16 objects/);
    expect(parseAuthorizationDetails(JSON.stringify(many.slice(1)))).toHaveLength(MAX_AUTHORIZATION_DETAILS_ENTRIES);
  });

  it(`refuses a parameter over ${MAX_AUTHORIZATION_DETAILS_BYTES} bytes before parsing it`, () => {
    const tools = Array.from({ length: 40 }, (_, i) => `${'t'.repeat(120)}${i}`);
    const big = JSON.stringify([detail({ tools }), detail({ tools, actions: ['read'] })]);
    expect(big.length).toBeGreaterThan(MAX_AUTHORIZATION_DETAILS_BYTES);
    expect(refusal(big).message).toBe('authorization_details is longer than 8192 bytes');
    // Bytes, not characters: multi-byte padding counts for what it weighs.
    expect(refusal(`${JSON.stringify([detail()])}${' '.repeat(10)}${'\u00e9'.repeat(4100)}`).message).toMatch(/longer than 8192 bytes/);
  });

  it('bounds and escapes an attacker-chosen type in the description', () => {
    const err = refusal(JSON.stringify([detail({ type: `evil\n${'x'.repeat(200)}` })]));
    expect(err.message).not.toContain('\n');
    expect(err.message.length).toBeLessThan(200);
  });
});

describe('data classification order (public < internal < confidential < restricted)', () => {
  it('levels and comparison', () => {
    expect(['public', 'internal', 'confidential', 'restricted'].map((c) => classificationLevel(c as never))).toEqual([0, 1, 2, 3]);
    expect(compareClassifications('internal', 'confidential')).toBeLessThan(0);
    expect(compareClassifications('restricted', 'public')).toBeGreaterThan(0);
    expect(compareClassifications('internal', 'internal')).toBe(0);
  });

  it('highest of several, public for none', () => {
    expect(highestClassification('internal', undefined, 'confidential', 'public')).toBe('confidential');
    expect(highestClassification()).toBe('public');
  });

  it('a declared data_classification raises the registry one, never lowers it', () => {
    expect(effectiveClassification('internal', 'restricted')).toBe('restricted');
    expect(effectiveClassification('confidential', 'public')).toBe('confidential');
    expect(effectiveClassification('internal')).toBe('internal');
  });
});
