import { Option, type Command } from 'commander';
import { collect, positiveInt, seconds, spiffeId, uuid } from '../args';
import type { BrokerClient } from '../client';
import { adminClient, globals, usage } from '../context';
import { CliFailure } from '../errors';
import { fields, note, print, table } from '../output';

/** An entry as the admin API shows it. */
interface Entry {
  id: string;
  spiffe_id: string;
  parent_id?: string;
  selectors: string[];
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string[];
  admin: boolean;
  enabled: boolean;
  metadata: { owner?: string; description?: string; mcp_server_uri?: string; tools?: string[] };
  created_at: string;
  updated_at: string;
}

interface EntryOptions {
  spiffeId?: string;
  parentId?: string;
  selector?: string[];
  x509SvidTtl?: number;
  jwtSvidTtl?: number;
  dnsName?: string[];
  admin?: boolean;
  enable?: boolean;
  disable?: boolean;
  owner?: string;
  description?: string;
  mcpServerUri?: string;
  tool?: string[];
}

const showEntry = (e: Entry) =>
  fields([
    ['id', e.id],
    ['spiffe_id', e.spiffe_id],
    ['parent_id', e.parent_id],
    ['selectors', e.selectors],
    ['x509_svid_ttl', e.x509_svid_ttl],
    ['jwt_svid_ttl', e.jwt_svid_ttl],
    ['dns_names', e.dns_names],
    ['admin', e.admin],
    ['enabled', e.enabled],
    ['owner', e.metadata.owner],
    ['description', e.metadata.description],
    ['mcp_server_uri', e.metadata.mcp_server_uri],
    ['tools', e.metadata.tools],
    ['created_at', e.created_at],
    ['updated_at', e.updated_at],
  ]);

/** The metadata options given, or undefined when none was. */
function metadataOf(o: EntryOptions): Entry['metadata'] | undefined {
  const m = {
    ...(o.owner !== undefined && { owner: o.owner }),
    ...(o.description !== undefined && { description: o.description }),
    ...(o.mcpServerUri !== undefined && { mcp_server_uri: o.mcpServerUri }),
    ...(o.tool !== undefined && { tools: o.tool }),
  };
  return Object.keys(m).length > 0 ? m : undefined;
}

/** The body fields the options name (snake_case, as the API takes them). */
function bodyOf(o: EntryOptions): Record<string, unknown> {
  return {
    ...(o.spiffeId !== undefined && { spiffe_id: o.spiffeId }),
    ...(o.parentId !== undefined && { parent_id: o.parentId }),
    ...(o.selector !== undefined && { selectors: o.selector }),
    ...(o.x509SvidTtl !== undefined && { x509_svid_ttl: o.x509SvidTtl }),
    ...(o.jwtSvidTtl !== undefined && { jwt_svid_ttl: o.jwtSvidTtl }),
    ...(o.dnsName !== undefined && { dns_names: o.dnsName }),
    ...(o.admin !== undefined && { admin: o.admin }),
    ...(o.enable && { enabled: true }),
    ...(o.disable && { enabled: false }),
  };
}

/** Entries are named by id, or by a SPIFFE ID that exactly one entry has. */
export async function resolveEntryId(client: BrokerClient, ref: string): Promise<string> {
  if (!ref.startsWith('spiffe://')) return ref;
  const matches = await entriesFor(client, ref);
  if (matches.length === 0) throw new CliFailure(`no registration entry for ${ref}`);
  if (matches.length > 1) throw new CliFailure(`${matches.length} entries name ${ref}; give the entry id`);
  return matches[0]!.id;
}

/** Every entry whose SPIFFE ID is exactly `id` (the list filter is a prefix). */
export async function entriesFor(client: BrokerClient, id: string): Promise<Entry[]> {
  const found: Entry[] = [];
  let after: string | undefined;
  do {
    const q = new URLSearchParams({ spiffe_id_prefix: id, limit: '1000', ...(after && { after }) });
    const page = await client.json<{ entries: Entry[]; next_after?: string }>('GET', `/v1/admin/entries?${q}`);
    found.push(...page.entries.filter((e) => e.spiffe_id === id));
    after = page.next_after;
  } while (after);
  return found;
}

/**
 * A second entry for a SPIFFE ID with no selectors to tell it apart: created (the API allows
 * it), but a warning, since the SPIFFE ID no longer names one entry (join tokens need --entry-id).
 */
async function warnIfShared(client: BrokerClient, created: Entry): Promise<void> {
  let others: Entry[];
  try {
    others = (await entriesFor(client, created.spiffe_id)).filter((e) => e.id !== created.id);
  } catch {
    return; // the entry is created; a warning that cannot be checked is not a failure
  }
  if (others.length === 0) return;
  note(
    `writ: warning: ${others.length + 1} entries now name ${created.spiffe_id} and this one has no selectors; ` +
      `name it by id (join-token create --entry-id ${created.id}), or give --selector to tell them apart`,
  );
}

const entryRef = (value: string) => (value.startsWith('spiffe://') ? spiffeId(value) : uuid(value));

function entryOptions(cmd: Command, creating: boolean): Command {
  if (creating) cmd.requiredOption('--spiffe-id <id>', 'the SPIFFE ID the entry grants', spiffeId);
  else cmd.option('--spiffe-id <id>', 'a new SPIFFE ID', spiffeId);
  return cmd
    .option('--parent-id <id>', 'the agent (its SPIFFE ID) that serves this workload entry; its selectors are then unix: or k8s: ones', spiffeId)
    .option('--selector <selector>', `a selector the workload must attest (repeat for several${creating ? '' : '; replaces the list'})`, collect)
    .option('--x509-svid-ttl <duration>', 'X.509-SVID lifetime (300, 10m, 1h)', seconds)
    .option('--jwt-svid-ttl <duration>', 'JWT-SVID lifetime', seconds)
    .option('--dns-name <name>', 'a DNS SAN for the SVID (repeat for several)', collect)
    .option('--owner <team>', 'metadata: who owns the connector')
    .option('--description <text>', 'metadata: what it is')
    .option('--mcp-server-uri <uri>', 'metadata: the MCP server it fronts')
    .option('--tool <name>', 'metadata: a tool it offers (repeat for several)', collect);
}

export function registerEntry(program: Command): void {
  const entry = program.command('entry').description('registration entries: who may be what');

  entryOptions(entry.command('create').description('register an entry'), true)
    .option('--admin', 'the SVID may call the admin API')
    .option('--disable', 'create it disabled')
    .action(async (o: EntryOptions, cmd: Command) => {
      const body = { ...bodyOf(o), ...(metadataOf(o) && { metadata: metadataOf(o) }) };
      const client = adminClient(cmd);
      const created = await client.json<Entry>('POST', '/v1/admin/entries', body);
      print(globals(cmd).output, created, () => showEntry(created));
      if (created.selectors.length === 0) await warnIfShared(client, created);
    });

  entry
    .command('list')
    .description('list entries')
    .option('--spiffe-id-prefix <prefix>', 'only SPIFFE IDs starting with this')
    .option('--selector <selector>', 'only entries with this selector')
    .addOption(new Option('--enabled <bool>', 'only enabled (true) or disabled (false) entries').choices(['true', 'false']))
    .option('--limit <n>', 'at most this many (the broker caps at 1000)', positiveInt)
    .option('--after <id>', 'the page after this entry id (from the last page)', uuid)
    .action(async (o: { spiffeIdPrefix?: string; selector?: string; enabled?: string; limit?: number; after?: string }, cmd: Command) => {
      const q = new URLSearchParams({
        ...(o.spiffeIdPrefix !== undefined && { spiffe_id_prefix: o.spiffeIdPrefix }),
        ...(o.selector !== undefined && { selector: o.selector }),
        ...(o.enabled !== undefined && { enabled: o.enabled }),
        ...(o.limit !== undefined && { limit: String(o.limit) }),
        ...(o.after !== undefined && { after: o.after }),
      });
      const page = await adminClient(cmd).json<{ entries: Entry[]; next_after?: string }>('GET', `/v1/admin/entries${q.size > 0 ? `?${q}` : ''}`);
      print(globals(cmd).output, page, () =>
        table(page.entries, [
          ['ID', (e) => e.id],
          ['SPIFFE ID', (e) => e.spiffe_id],
          ['SELECTORS', (e) => e.selectors],
          ['ADMIN', (e) => e.admin],
          ['ENABLED', (e) => e.enabled],
          ['OWNER', (e) => e.metadata.owner],
        ]),
      );
      if (page.next_after && globals(cmd).output === 'table') note(`more entries: --after ${page.next_after}`);
    });

  entry
    .command('show')
    .description('show one entry')
    .argument('<entry>', 'the entry id, or a SPIFFE ID that one entry has', entryRef)
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const client = adminClient(cmd);
      const e = await client.json<Entry>('GET', `/v1/admin/entries/${encodeURIComponent(await resolveEntryId(client, ref))}`);
      print(globals(cmd).output, e, () => showEntry(e));
    });

  entryOptions(entry.command('update').description('change the fields given; the rest stay'), false)
    .argument('<entry>', 'the entry id, or a SPIFFE ID that one entry has', entryRef)
    .option('--admin', 'the SVID may call the admin API')
    .option('--no-admin', 'the SVID may not call the admin API')
    .addOption(new Option('--enable', 'enable the entry').conflicts('disable'))
    .option('--disable', 'disable the entry (its SVIDs stay valid until they expire; see writ connector disable)')
    .action(async (ref: string, o: EntryOptions, cmd: Command) => {
      const client = adminClient(cmd);
      const body = bodyOf(o);
      const id = await resolveEntryId(client, ref);
      const metadata = metadataOf(o);
      // The API replaces metadata as a whole: merge the fields given into what is there.
      if (metadata) body.metadata = { ...(await client.json<Entry>('GET', `/v1/admin/entries/${encodeURIComponent(id)}`)).metadata, ...metadata };
      if (Object.keys(body).length === 0) usage(cmd, 'name at least one field to change');
      const e = await client.json<Entry>('PATCH', `/v1/admin/entries/${encodeURIComponent(id)}`, body);
      print(globals(cmd).output, e, () => showEntry(e));
    });

  entry
    .command('delete')
    .description('delete an entry')
    .argument('<entry>', 'the entry id, or a SPIFFE ID that one entry has', entryRef)
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const client = adminClient(cmd);
      const id = await resolveEntryId(client, ref);
      await client.json('DELETE', `/v1/admin/entries/${encodeURIComponent(id)}`);
      print(globals(cmd).output, { deleted: id }, () => `deleted entry ${id}\n`);
    });
}
