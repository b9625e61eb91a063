import fc from 'fast-check';
import { hasControlCharacter } from '../core/text';
import { ACTIONS, CLASSIFICATIONS, MAX_AUTHORIZATION_DETAILS_BYTES, MAX_AUTHORIZATION_DETAILS_ENTRIES, MAX_TOOLS_PER_DETAIL, parseAuthorizationDetails, type McpToolDetail } from './authorization-details';
import { InvalidAuthorizationDetails } from './errors';

// `authorization_details` is a form parameter of the token exchange (RFC 9396 §2): whatever its
// text, parseAuthorizationDetails returns mcp_tool objects within the limits, or throws
// InvalidAuthorizationDetails naming the problem (RFC 9396 §5), never anything else.

const RUNS = Number(process.env.FC_RUNS ?? 500);
const toolName = fc.string({ unit: fc.constantFrom(...'abcXYZ019_.-'.split('')), minLength: 1, maxLength: 20 });
const validDetail = fc.record(
  {
    type: fc.constant('mcp_tool'),
    tools: fc.array(toolName, { minLength: 1, maxLength: 5 }),
    actions: fc.array(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 4 }),
    data_classification: fc.constantFrom(...CLASSIFICATIONS),
  },
  { requiredKeys: ['type', 'tools', 'actions'] },
);
const hostileText = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('\u0000', 'read\u0000', '\ud800', '', ' ', 'mcp_tool', 'read', 'restricted'));
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, hostileText, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(hostileText, tie('value'), { maxKeys: 4 })),
})).value;
/** A valid detail with one member replaced by a hostile value, or a hostile member added. */
const mutatedDetail = fc.tuple(validDetail, fc.constantFrom('type', 'tools', 'actions', 'data_classification', 'extra'), json).map(([d, member, value]) => ({ ...d, [member]: value }));

/** Runs parseAuthorizationDetails; answers the details, or the error (anything but InvalidAuthorizationDetails fails). */
function outcome(text: string): McpToolDetail[] | InvalidAuthorizationDetails {
  try {
    return parseAuthorizationDetails(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidAuthorizationDetails);
    expect((err as InvalidAuthorizationDetails).error).toBe('invalid_authorization_details');
    expect((err as Error).message).toMatch(/authorization_details/);
    return err as InvalidAuthorizationDetails;
  }
}

/** What every accepted value satisfies. */
function expectWellFormed(details: readonly McpToolDetail[]): void {
  expect(details.length).toBeGreaterThanOrEqual(1);
  expect(details.length).toBeLessThanOrEqual(MAX_AUTHORIZATION_DETAILS_ENTRIES);
  for (const d of details) {
    expect(d.type).toBe('mcp_tool');
    expect(d.tools.length).toBeGreaterThanOrEqual(1);
    expect(d.tools.length).toBeLessThanOrEqual(MAX_TOOLS_PER_DETAIL);
    expect(new Set(d.tools).size).toBe(d.tools.length);
    for (const t of d.tools) expect(t).toMatch(/^[A-Za-z0-9_.-]{1,128}$/);
    for (const a of d.actions) expect(ACTIONS).toContain(a);
    if (d.data_classification !== undefined) expect(CLASSIFICATIONS).toContain(d.data_classification);
    expect(Object.keys(d).every((k) => ['type', 'tools', 'actions', 'data_classification'].includes(k))).toBe(true);
  }
}

describe('parseAuthorizationDetails (RFC 9396), properties', () => {
  it('accepts every valid array and keeps its tools and actions (without duplicates)', () => {
    fc.assert(
      fc.property(fc.array(validDetail, { minLength: 1, maxLength: MAX_AUTHORIZATION_DETAILS_ENTRIES }), (details) => {
        const parsed = outcome(JSON.stringify(details));
        expect(parsed).not.toBeInstanceOf(InvalidAuthorizationDetails);
        expectWellFormed(parsed as McpToolDetail[]);
        (parsed as McpToolDetail[]).forEach((d, i) => {
          expect(d.tools).toEqual([...new Set(details[i]!.tools)]);
          expect(d.actions).toEqual([...new Set(details[i]!.actions)]);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('on arbitrary text, arbitrary JSON and mutated details: well-formed details or InvalidAuthorizationDetails', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      json.map((v) => JSON.stringify(v) ?? ''),
      fc.array(fc.oneof(validDetail, mutatedDetail, json), { minLength: 0, maxLength: MAX_AUTHORIZATION_DETAILS_ENTRIES + 2 }).map((a) => JSON.stringify(a)),
      fc.integer({ min: 1, max: 5000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
      fc.constantFrom('[{"type":"mcp_tool","type":"other","tools":["a"],"actions":["read"]}]', '[{"type":"mcp_tool","tools":["a\\u0000"],"actions":["read"]}]', '[{"type":"mcp_tool","tools":["a"],"actions":["read"],"__proto__":{}}]', '[1e999]'),
    );
    fc.assert(
      fc.property(text, (t) => {
        const r = outcome(t);
        if (r instanceof InvalidAuthorizationDetails) return;
        expectWellFormed(r);
        expect(r.flatMap((d) => d.tools).some((tool) => hasControlCharacter(tool))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses text over the size cap before parsing it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), (extra) => {
        const r = outcome(`[${' '.repeat(MAX_AUTHORIZATION_DETAILS_BYTES + extra)}]`);
        expect((r as Error).message).toMatch(/longer than/);
      }),
      { numRuns: 20 },
    );
  });
});
