import fc from 'fast-check';
import { formatStepUpChallengeParams, parseStepUpChallenge, STEP_UP_DETAILS_PARAM, stepUpDetails } from './step-up';

const challenge = (params: string[]) => `Bearer realm="https://mcp.example.test/github", error="insufficient_scope", error_description="no", ${params.join(', ')}, resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/github"`;

describe('per-tool step-up challenge parameters (SEP-2350)', () => {
  it('formats scope and authorization_details as base64url (no padding) of the JSON array', () => {
    const params = formatStepUpChallengeParams({ tool: 'delete_repo', actions: ['delete'], scope: 'repo:delete' });
    expect(params[0]).toBe('scope="repo:delete"');
    const encoded = /^authorization_details="([A-Za-z0-9_-]+)"$/.exec(params[1]!)![1]!;
    expect(JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'))).toEqual([{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }]);
    expect(STEP_UP_DETAILS_PARAM).toBe('authorization_details');
  });

  it('leaves actions out when none are required, and an invalid scope out', () => {
    expect(stepUpDetails('search')).toEqual([{ type: 'mcp_tool', tools: ['search'] }]);
    expect(formatStepUpChallengeParams({ tool: 'search', scope: 'bad"scope' })).toHaveLength(1);
  });

  it('parses back what it formats, with resource_metadata and error_description', () => {
    const parsed = parseStepUpChallenge(challenge(formatStepUpChallengeParams({ tool: 'delete_repo', actions: ['delete'], scope: 'repo:delete' })));
    expect(parsed).toEqual({
      tool: 'delete_repo',
      authorizationDetails: [{ type: 'mcp_tool', tools: ['delete_repo'], actions: ['delete'] }],
      scope: 'repo:delete',
      resourceMetadata: 'https://mcp.example.test/.well-known/oauth-protected-resource/github',
      errorDescription: 'no',
    });
  });

  it('finds the Bearer challenge among others, and reads token-form and escaped values', () => {
    const details = formatStepUpChallengeParams({ tool: 'x' })[0]!.replace(/"/g, '');
    const parsed = parseStepUpChallenge(`Basic realm="a", DPoP algs="ES256", Bearer error=insufficient_scope, error_description="say \\"hi\\"", ${details}`);
    expect(parsed).toEqual({ tool: 'x', authorizationDetails: [{ type: 'mcp_tool', tools: ['x'] }], errorDescription: 'say "hi"' });
  });

  it('reads a DPoP challenge (RFC 9449 §7.1) as a Bearer one', () => {
    const params = formatStepUpChallengeParams({ tool: 'create_issue', actions: ['write'] }).join(', ');
    expect(parseStepUpChallenge(`DPoP error="insufficient_scope", error_description="no", ${params}, algs="ES256"`)).toMatchObject({ tool: 'create_issue', authorizationDetails: [{ type: 'mcp_tool', tools: ['create_issue'], actions: ['write'] }] });
  });

  it('is undefined for other errors and for no Bearer challenge; ignores details that do not decode', () => {
    expect(parseStepUpChallenge('Bearer error="invalid_token", error_description="x"')).toBeUndefined();
    expect(parseStepUpChallenge('Basic realm="x"')).toBeUndefined();
    expect(parseStepUpChallenge('')).toBeUndefined();
    expect(parseStepUpChallenge('Bearer error="insufficient_scope", authorization_details="bm90IGpzb24"')).toEqual({});
    const wrongType = Buffer.from(JSON.stringify([{ type: 'other', tools: ['x'] }])).toString('base64url');
    expect(parseStepUpChallenge(`Bearer error="insufficient_scope", authorization_details="${wrongType}"`)).toEqual({});
  });

  it('never throws on any header value (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (header) => {
        const parsed = parseStepUpChallenge(header);
        expect(parsed === undefined || typeof parsed === 'object').toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips any tool name and actions (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.-]{1,128}$/), fc.subarray(['read', 'write', 'execute', 'delete'] as const), (tool, actions) => {
        const parsed = parseStepUpChallenge(challenge(formatStepUpChallengeParams({ tool, actions })));
        expect(parsed?.tool).toBe(tool);
        expect(parsed?.authorizationDetails).toEqual(stepUpDetails(tool, actions));
      }),
      { numRuns: 200 },
    );
  });
});
