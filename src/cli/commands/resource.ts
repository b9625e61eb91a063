import { InvalidArgumentError, type Command } from 'commander';
import { spiffeId } from '../args';
import { adminClient, globals, usage } from '../context';
import { fields, print, table } from '../output';

/** A protected resource (an MCP server) as the admin API shows it. */
interface Resource {
  uri: string;
  spiffe_id: string;
  tools: { name: string; actions: string[]; classification: string; egress?: boolean; per_call?: boolean }[];
  created_at: string;
  updated_at: string;
}

type Tool = Resource['tools'][number];

/**
 * `NAME:ACTIONS:CLASSIFICATION`, actions joined by `+` (`search:read:internal`,
 * `edit:read+write:confidential`); split at the last two colons, as tool names may hold colons.
 */
export function toolSpec(value: string, previous: Tool[] | undefined): Tool[] {
  const last = value.lastIndexOf(':');
  const middle = last > 0 ? value.lastIndexOf(':', last - 1) : -1;
  if (middle <= 0 || last === value.length - 1 || middle + 1 === last)
    throw new InvalidArgumentError('expected NAME:ACTIONS:CLASSIFICATION, e.g. search:read:internal or edit:read+write:confidential');
  const tool = { name: value.slice(0, middle), actions: value.slice(middle + 1, last).split('+'), classification: value.slice(last + 1) };
  return [...(previous ?? []), tool];
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Marks the named tools `egress` / `per_call`; a name that is no `--tool` is a usage error. */
function withFlags(cmd: Command, tools: Tool[], egress: string[] = [], perCall: string[] = []): Tool[] {
  for (const [flag, names] of [['--egress', egress], ['--per-call', perCall]] as const)
    for (const name of names) if (!tools.some((t) => t.name === name)) usage(cmd, `${flag} ${name}: no --tool ${name}`);
  return tools.map((t) => ({ ...t, ...(egress.includes(t.name) && { egress: true }), ...(perCall.includes(t.name) && { per_call: true }) }));
}

const showResource = (r: Resource) =>
  fields([
    ['uri', r.uri],
    ['spiffe_id', r.spiffe_id],
    ['tools', r.tools.map((t) => `${t.name}:${t.actions.join('+')}:${t.classification}${t.egress ? ' egress' : ''}${t.per_call ? ' per_call' : ''}`)],
    ['created_at', r.created_at],
    ['updated_at', r.updated_at],
  ]);

const pathOf = (uri: string) => `/v1/admin/resources/${encodeURIComponent(uri)}`;

/** `writ resource`: the MCP servers Writ issues tokens for, and their tools (what `POST /v1/admin/resources` does with curl). */
export function registerResource(program: Command): void {
  const resource = program.command('resource').description('protected resources (MCP servers) and their tools');

  resource
    .command('create')
    .description('register an MCP server: its URI (the tokens\' aud), its SPIFFE ID and its tools')
    .argument('<uri>', 'the resource URI, e.g. https://mcp.example.com/github')
    .requiredOption('--spiffe-id <id>', 'the SPIFFE ID the server runs as (it introspects and chains with it)', spiffeId)
    .requiredOption('--tool <name:actions:classification>', 'a tool (repeat for several), e.g. search:read:internal', toolSpec)
    .option('--egress <tool>', 'a tool that sends data out, which policy sees as resource.egress (repeat for several)', collect)
    .option('--per-call <tool>', 'a tool every call of which needs a decision from Writ at call time (repeat for several)', collect)
    .action(async (uri: string, o: { spiffeId: string; tool: Tool[]; egress?: string[]; perCall?: string[] }, cmd: Command) => {
      const created = await adminClient(cmd).json<Resource>('POST', '/v1/admin/resources', { uri, spiffe_id: o.spiffeId, tools: withFlags(cmd, o.tool, o.egress, o.perCall) });
      print(globals(cmd).output, created, () => showResource(created));
    });

  resource
    .command('list')
    .description('list the registered resources')
    .action(async (_o: unknown, cmd: Command) => {
      const { resources } = await adminClient(cmd).json<{ resources: Resource[] }>('GET', '/v1/admin/resources');
      print(globals(cmd).output, { resources }, () =>
        table(resources, [
          ['URI', (r) => r.uri],
          ['SPIFFE ID', (r) => r.spiffe_id],
          ['TOOLS', (r) => r.tools.map((t) => t.name)],
        ]),
      );
    });

  resource
    .command('show')
    .description('show one resource and its tools')
    .argument('<uri>', 'the resource URI')
    .action(async (uri: string, _o: unknown, cmd: Command) => {
      const r = await adminClient(cmd).json<Resource>('GET', pathOf(uri));
      print(globals(cmd).output, r, () => showResource(r));
    });

  resource
    .command('update')
    .description('change the SPIFFE ID, or replace the tools (every --tool given is the new list)')
    .argument('<uri>', 'the resource URI')
    .option('--spiffe-id <id>', 'a new SPIFFE ID', spiffeId)
    .option('--tool <name:actions:classification>', 'a tool of the new list (repeat for several)', toolSpec)
    .option('--egress <tool>', 'a tool of the new list that sends data out (repeat for several)', collect)
    .option('--per-call <tool>', 'a tool of the new list that needs a decision per call (repeat for several)', collect)
    .action(async (uri: string, o: { spiffeId?: string; tool?: Tool[]; egress?: string[]; perCall?: string[] }, cmd: Command) => {
      if (o.tool === undefined && (o.egress !== undefined || o.perCall !== undefined)) usage(cmd, '--egress and --per-call mark tools of the new --tool list');
      const body = { ...(o.spiffeId !== undefined && { spiffe_id: o.spiffeId }), ...(o.tool !== undefined && { tools: withFlags(cmd, o.tool, o.egress, o.perCall) }) };
      if (Object.keys(body).length === 0) usage(cmd, 'name at least one field to change: --spiffe-id or --tool');
      const r = await adminClient(cmd).json<Resource>('PATCH', pathOf(uri), body);
      print(globals(cmd).output, r, () => showResource(r));
    });

  resource
    .command('delete')
    .description('delete a resource: no new tokens for it (those issued stay valid until they expire; revoke them with writ revoke --audience)')
    .argument('<uri>', 'the resource URI')
    .action(async (uri: string, _o: unknown, cmd: Command) => {
      await adminClient(cmd).json('DELETE', pathOf(uri));
      print(globals(cmd).output, { deleted: uri }, () => `deleted resource ${uri}\n`);
    });
}
