import { expectRefused, expectUsage, startCliBroker, writ, type CliBroker } from '../support/cli';

let b: CliBroker;

beforeAll(async () => {
  b = await startCliBroker(() => ({ WRIT_TRUST_DOMAIN: 'cli.test' }));
});

afterAll(async () => {
  await b?.stop();
});

const URI = 'https://mcp.cli.test/github';

describe('writ resource: the MCP servers Writ issues tokens for, as the README does with curl', () => {
  it('creates, lists, shows, updates (replacing the tools) and deletes a resource', async () => {
    const created = await writ(['resource', 'create', URI, '--spiffe-id', 'spiffe://cli.test/mcp/github', '--tool', 'search:read:internal', '--tool', 'delete_repo:delete:restricted'], b.env);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^uri +https:\/\/mcp\.cli\.test\/github$/m);
    expect(created.stdout).toMatch(/^tools +search:read:internal,delete_repo:delete:restricted$/m);

    const list = await writ(['resource', 'list', '-o', 'json'], b.env);
    expect(list.json().resources.map((r: { uri: string }) => r.uri)).toEqual([URI]);
    expect((await writ(['resource', 'list'], b.env)).stdout.split('\n')[0]).toMatch(/^URI +SPIFFE ID +TOOLS$/);

    const updated = await writ(['resource', 'update', URI, '--tool', 'search:read:internal', '--tool', 'edit:read+write:confidential', '-o', 'json'], b.env);
    expect(updated.json().tools).toEqual([
      { name: 'search', actions: ['read'], classification: 'internal' },
      { name: 'edit', actions: ['read', 'write'], classification: 'confidential' },
    ]);
    expect((await writ(['resource', 'show', URI, '-o', 'json'], b.env)).json()).toMatchObject({ spiffe_id: 'spiffe://cli.test/mcp/github', tools: updated.json().tools });

    expect(await writ(['resource', 'delete', URI], b.env)).toMatchObject({ code: 0, stdout: `deleted resource ${URI}\n` });
    expectRefused(await writ(['resource', 'show', URI], b.env), /\(404 /);
  });

  it('refuses what the broker refuses in one line, and a malformed tool with the usage', async () => {
    expectRefused(await writ(['resource', 'create', URI, '--spiffe-id', 'spiffe://cli.test/mcp/github', '--tool', 'x:fly:internal'], b.env), /\(400 invalid-request\)/);
    expectUsage(await writ(['resource', 'create', URI, '--spiffe-id', 'spiffe://cli.test/mcp/github', '--tool', 'search:read'], b.env), 'writ resource create', /NAME:ACTIONS:CLASSIFICATION/);
    expectUsage(await writ(['resource', 'update', URI], b.env), 'writ resource update', /at least one field/);
  });
});
