import { z } from 'zod';
import type { AuditIn } from '../audit';
import { DomainError, problemType } from '../core/errors';
import { isDnsName } from '../core/dns';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { neverFresh, ReadCache, type Freshness } from '../db/read-cache';
import { BROKER_PATH, isBrokerPath, parseSpiffeId } from '../spiffe/id';
import { isWorkloadSelector, selectorProblem } from './selectors';
import { isUuid } from '../core/uuid';

/** What an MCP connector's entry says about it, for people and for policy. */
export interface ConnectorMetadata {
  owner?: string;
  description?: string;
  /** The MCP server the connector fronts. */
  mcp_server_uri?: string;
  /** The tools it offers. */
  tools?: string[];
}

/** Who may be what: a SPIFFE ID and the selectors that earn it. */
export interface RegistrationEntry {
  readonly id: string;
  readonly spiffeId: string;
  readonly selectors: readonly string[];
  /** Seconds. */
  readonly x509SvidTtl: number;
  readonly jwtSvidTtl: number;
  readonly dnsNames: readonly string[];
  /** May call the admin API with its SVID. */
  readonly admin: boolean;
  readonly enabled: boolean;
  readonly metadata: ConnectorMetadata;
  /** The agent (its SPIFFE ID) that serves this workload entry; undefined for an entry the broker attests itself. */
  readonly parentId?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export class EntryError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 400 | 404,
    code: 'invalid-entry' | 'entry-not-found',
    message: string,
  ) {
    super(message);
    this.type = problemType(code);
  }
}

export interface EntryLimits {
  trustDomain: string;
  /** Caps on the SVID lifetimes an entry may ask for, in seconds. */
  x509SvidMaxTtl: number;
  jwtSvidMaxTtl: number;
}

export const DEFAULT_X509_SVID_TTL = 3600;
export const DEFAULT_JWT_SVID_TTL = 300;

/**
 * The request schema of an entry (snake_case, as the admin API speaks), checking what
 * the SPIFFE-ID specification and Writ's limits require. `partial` for updates.
 */
export function entrySchema(limits: EntryLimits) {
  const spiffeId = z.string().superRefine((v, ctx) => {
    try {
      const id = parseSpiffeId(v);
      if (id.trustDomain !== limits.trustDomain) ctx.addIssue({ code: 'custom', message: `SPIFFE ID must be in trust domain "${limits.trustDomain}"` });
      else if (id.path === '') ctx.addIssue({ code: 'custom', message: 'SPIFFE ID of a workload needs a path' });
      else if (isBrokerPath(id.path)) ctx.addIssue({ code: 'custom', message: `SPIFFE IDs under ${BROKER_PATH} are reserved for the broker's own identity` });
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
  const selector = z.string().superRefine((v, ctx) => {
    const problem = selectorProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
  const ttl = (max: number) => z.number().int().min(1).max(max, { message: `must be at most ${max} seconds (the configured cap)` });
  // A subject or a CN means something only within one issuer or CA: an entry must name it,
  // or a token from any configured issuer (a certificate from any configured CA) would match.
  const scoped = (list: string[], ctx: z.RefinementCtx) => {
    if (list.some((s) => s.startsWith('oidc:')) && !list.some((s) => s.startsWith('oidc:iss:'))) {
      ctx.addIssue({ code: 'custom', message: 'oidc selectors need an oidc:iss:<issuer> selector beside them' });
    }
    if (list.some((s) => s.startsWith('x509pop:')) && !list.some((s) => s.startsWith('x509pop:ca:'))) {
      ctx.addIssue({ code: 'custom', message: 'x509pop selectors need an x509pop:ca:<fingerprint> selector beside them' });
    }
    const attestors = new Set(list.map((s) => s.split(':')[0]));
    if (attestors.size > 1) ctx.addIssue({ code: 'custom', message: 'an entry\'s selectors come from one attestor' });
  };
  return z.strictObject({
    spiffe_id: spiffeId,
    // SPIRE's parent_id: the agent that attests this entry's workloads; its selectors are then workload selectors.
    parent_id: spiffeId.optional(),
    selectors: z.array(selector).max(64).superRefine(scoped).default([]).transform((s) => [...new Set(s)].sort()),
    x509_svid_ttl: ttl(limits.x509SvidMaxTtl).default(Math.min(DEFAULT_X509_SVID_TTL, limits.x509SvidMaxTtl)),
    jwt_svid_ttl: ttl(limits.jwtSvidMaxTtl).default(Math.min(DEFAULT_JWT_SVID_TTL, limits.jwtSvidMaxTtl)),
    dns_names: z.array(z.string().refine(isDnsName, { message: 'is not a valid DNS name' })).max(32).default([]),
    admin: z.boolean().default(false),
    enabled: z.boolean().default(true),
    metadata: z
      .strictObject({
        owner: z.string().max(256).optional(),
        description: z.string().max(2048).optional(),
        mcp_server_uri: z.url({ protocol: /^(https?|wss?)$/ }).max(2048).optional(),
        tools: z.array(z.string().min(1).max(256)).max(256).optional(),
      })
      .default({}),
  });
}

export type EntryInput = z.output<ReturnType<typeof entrySchema>>;

const fromRow = (r: Prisma.RegistrationEntryGetPayload<object>): RegistrationEntry => ({ ...r, metadata: r.metadata as ConnectorMetadata, parentId: r.parentId ?? undefined }) as RegistrationEntry;

const toData = (input: Partial<EntryInput>) => ({
  ...(input.spiffe_id !== undefined && { spiffeId: input.spiffe_id }),
  ...(input.parent_id !== undefined && { parentId: input.parent_id }),
  ...(input.selectors !== undefined && { selectors: input.selectors }),
  ...(input.x509_svid_ttl !== undefined && { x509SvidTtl: input.x509_svid_ttl }),
  ...(input.jwt_svid_ttl !== undefined && { jwtSvidTtl: input.jwt_svid_ttl }),
  ...(input.dns_names !== undefined && { dnsNames: input.dns_names }),
  ...(input.admin !== undefined && { admin: input.admin }),
  ...(input.enabled !== undefined && { enabled: input.enabled }),
  ...(input.metadata !== undefined && { metadata: input.metadata as object }),
});

export interface EntryFilter {
  spiffeIdPrefix?: string;
  selector?: string;
  enabled?: boolean;
}


/**
 * What an entry must be as a whole, beyond each field: a workload entry (under an agent) is
 * matched by the agent's workload selectors and by nothing the broker attests, and is never
 * an admin; an entry the broker attests carries no workload selectors. Checked on the entry as
 * created or as an update leaves it, so a patch cannot turn one into the other halfway.
 */
function entryProblem(e: { spiffeId: string; parentId?: string | undefined; selectors: readonly string[]; admin: boolean }): { field: string; message: string } | undefined {
  const workload = e.selectors.filter(isWorkloadSelector);
  if (e.parentId === undefined) {
    if (workload.length > 0) return { field: 'parent_id', message: `${workload[0]} is a workload selector: an entry with workload selectors names its agent in parent_id` };
    return undefined;
  }
  if (e.parentId === e.spiffeId) return { field: 'parent_id', message: 'an entry cannot be its own agent' };
  if (e.selectors.length === 0 || workload.length !== e.selectors.length) return { field: 'selectors', message: 'an entry under an agent (parent_id) needs workload selectors (unix:… or k8s:…) and no others' };
  // A compromised agent must not be able to mint an admin credential.
  if (e.admin) return { field: 'admin', message: 'an entry under an agent cannot be an admin' };
  return undefined;
}

function checkEntry(e: Parameters<typeof entryProblem>[0]): void {
  const problem = entryProblem(e);
  if (problem) throw new EntryError(400, 'invalid-entry', `${problem.field}: ${problem.message}`);
}

/** Registration entries in the database. */
export class EntryStore {
  /** Entries by id, for the authentication of every mTLS request; dropped when any entry changes. */
  readonly #byId: ReadCache<RegistrationEntry | undefined>;

  /** `audit`: where entry changes are recorded, in the transaction that makes them. */
  constructor(
    private readonly prisma: PrismaClient,
    private readonly audit: AuditIn,
    private readonly freshness: Freshness = neverFresh,
  ) {
    this.#byId = new ReadCache(freshness);
  }

  /** Creates an entry; `actor` (the admin caller) is recorded with it. */
  async create(input: EntryInput, actor = 'admin'): Promise<RegistrationEntry> {
    checkEntry({ spiffeId: input.spiffe_id, parentId: input.parent_id, selectors: input.selectors, admin: input.admin });
    const entry = await this.prisma.$transaction(async (tx) => {
      const created = fromRow(await tx.registrationEntry.create({ data: toData(input) as Prisma.RegistrationEntryCreateInput }));
      await this.audit(tx, { type: 'entry.created', actor, details: { entryId: created.id, spiffeId: created.spiffeId, selectors: created.selectors, admin: created.admin, ...(created.parentId && { parentId: created.parentId }) } });
      return created;
    });
    this.freshness.touch();
    return entry;
  }

  async get(id: string): Promise<RegistrationEntry | undefined> {
    if (!isUuid(id)) return undefined;
    return this.#byId.get(id, async () => {
      const row = await this.prisma.registrationEntry.findUnique({ where: { id } });
      return row ? fromRow(row) : undefined;
    });
  }

  async require(id: string): Promise<RegistrationEntry> {
    const entry = await this.get(id);
    if (!entry) throw new EntryError(404, 'entry-not-found', `no registration entry ${id.slice(0, 64)}`);
    return entry;
  }

  async list(filter: EntryFilter = {}, page: { limit: number; after?: string } = { limit: 500 }): Promise<RegistrationEntry[]> {
    const rows = await this.prisma.registrationEntry.findMany({
      where: {
        ...(filter.spiffeIdPrefix !== undefined && { spiffeId: { startsWith: filter.spiffeIdPrefix } }),
        ...(filter.selector !== undefined && { selectors: { has: filter.selector } }),
        ...(filter.enabled !== undefined && { enabled: filter.enabled }),
        ...(page.after !== undefined && isUuid(page.after) && { id: { gt: page.after } }),
      },
      orderBy: { id: 'asc' },
      take: page.limit,
    });
    // LIKE treats "_" (legal in SPIFFE IDs) as a wildcard: keep only true prefix matches.
    return rows.map(fromRow).filter((e) => filter.spiffeIdPrefix === undefined || e.spiffeId.startsWith(filter.spiffeIdPrefix));
  }

  /** Changes the fields `patch` names (and only those); a patch that names none is refused. */
  async update(id: string, patch: Partial<EntryInput>, actor = 'admin'): Promise<RegistrationEntry> {
    const fields = Object.keys(patch).sort();
    if (fields.length === 0) throw new EntryError(400, 'invalid-entry', 'the update names no field');
    const current = await this.require(id);
    checkEntry({
      spiffeId: patch.spiffe_id ?? current.spiffeId,
      parentId: patch.parent_id ?? current.parentId,
      selectors: patch.selectors ?? current.selectors,
      admin: patch.admin ?? current.admin,
    });
    const entry = await this.prisma.$transaction(async (tx) => {
      const updated = fromRow(await tx.registrationEntry.update({ where: { id }, data: toData(patch) }));
      await this.audit(tx, { type: 'entry.updated', actor, details: { entryId: updated.id, fields } });
      return updated;
    });
    this.freshness.touch();
    return entry;
  }

  async delete(id: string, actor = 'admin'): Promise<void> {
    await this.require(id);
    await this.prisma.$transaction(async (tx) => {
      await tx.registrationEntry.delete({ where: { id } });
      await this.audit(tx, { type: 'entry.deleted', actor, details: { entryId: id } });
    });
    this.freshness.touch();
  }

  /**
   * The one enabled entry a join token is for: named by id, or by a SPIFFE ID exactly one entry
   * has. 404 when none is named, 400 when the SPIFFE ID is ambiguous or the entry is disabled.
   */
  async forJoinToken(ref: { readonly entryId: string } | { readonly spiffeId: string }): Promise<RegistrationEntry> {
    let entry: RegistrationEntry;
    if ('entryId' in ref) entry = await this.require(ref.entryId);
    else {
      const named = await this.bySpiffeId(ref.spiffeId);
      if (named.length === 0) throw new EntryError(404, 'entry-not-found', `no registration entry for ${ref.spiffeId}`);
      if (named.length > 1) throw new EntryError(400, 'invalid-entry', `${named.length} entries name ${ref.spiffeId}; give entry_id`);
      entry = named[0]!;
    }
    if (!entry.enabled) throw new EntryError(400, 'invalid-entry', `the entry for ${entry.spiffeId} is disabled`);
    if (entry.parentId !== undefined) throw new EntryError(400, 'invalid-entry', `the entry for ${entry.spiffeId} is served by its agent ${entry.parentId}, not attested with a join token`);
    return entry;
  }

  /** The connector one SPIFFE ID names, for the kill switch: 404 unless some entry names it. */
  async requireConnector(spiffeId: string): Promise<void> {
    if ((await this.bySpiffeId(spiffeId)).length === 0) throw new EntryError(404, 'entry-not-found', `no registration entry for ${spiffeId}`);
  }

  /** Entries (enabled or not) whose selectors are all among `attested`; never entries without selectors. */
  async matching(attested: readonly string[]): Promise<RegistrationEntry[]> {
    const ids = await this.prisma.$queryRaw<{ id: string }[]>`
      SELECT id::text FROM registration_entry WHERE cardinality(selectors) > 0 AND parent_id IS NULL AND selectors <@ ${[...attested]}::text[]`;
    if (ids.length === 0) return [];
    return (await this.prisma.registrationEntry.findMany({ where: { id: { in: ids.map((r) => r.id) } } })).map(fromRow);
  }

  /** The entries an agent serves (parent_id = its SPIFFE ID), enabled or not, by id. */
  async underAgent(agent: string): Promise<RegistrationEntry[]> {
    return (await this.prisma.registrationEntry.findMany({ where: { parentId: agent }, orderBy: { id: 'asc' }, take: 10_000 })).map(fromRow);
  }

  /** The entries that name exactly this SPIFFE ID. */
  async bySpiffeId(spiffeId: string): Promise<RegistrationEntry[]> {
    return (await this.prisma.registrationEntry.findMany({ where: { spiffeId }, orderBy: { id: 'asc' }, take: 100 })).map(fromRow);
  }
}
