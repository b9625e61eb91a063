import { z } from 'zod';
import type { AuditIn } from '../audit';
import { DomainError, problemType } from '../core/errors';
import type { PrismaClient } from '../db/generated/client';
import { neverFresh, ReadCache, type Freshness } from '../db/read-cache';
import { parseSpiffeId } from '../spiffe/id';

/** Ordered data classifications: a tool's class, and the lowest a request may declare. */
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];
export const ACTIONS = ['read', 'write', 'execute', 'delete'] as const;
export type ToolAction = (typeof ACTIONS)[number];

/** A tool an MCP server offers, with the actions it performs and the class of data it touches. */
export interface Tool {
  readonly name: string;
  readonly actions: readonly ToolAction[];
  readonly classification: Classification;
  /** The tool sends data out (mail, chat, web, a public repository): policy sees `resource.egress`. */
  readonly egress?: boolean;
  /** Every call needs a decision from Writ's PDP at the time of the call (`@writ/mcp` asks, and refuses without one). */
  readonly per_call?: boolean;
}

/** A protected resource (an MCP server), named by the URI clients put in `resource` (RFC 8707). */
export interface Resource {
  readonly uri: string;
  /** The server's own SPIFFE ID. */
  readonly spiffeId: string;
  readonly tools: readonly Tool[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export class ResourceError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 400 | 404 | 409,
    code: 'resource-not-found' | 'resource-exists' | 'invalid-request',
    message: string,
  ) {
    super(message);
    this.type = problemType(code);
  }
}

const toolSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, { message: 'tool names are 1-128 letters, digits, "_", "." or "-" (as authorization_details names them)' }),
  actions: z.array(z.enum(ACTIONS)).min(1).transform((a) => [...new Set(a)]),
  classification: z.enum(CLASSIFICATIONS),
  egress: z.boolean().optional(),
  per_call: z.boolean().optional(),
});

/** The admin API's resource schema (`partial` for updates); the URI must be absolute (RFC 8707 §2). */
export function resourceSchema(trustDomain: string) {
  return z.strictObject({
    uri: z
      .string()
      .max(2048)
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol) && !new URL(u).hash, { message: 'must be an absolute http(s) URI without a fragment (RFC 8707 §2)' }),
    spiffe_id: z.string().superRefine((v, ctx) => {
      try {
        const id = parseSpiffeId(v);
        if (id.trustDomain !== trustDomain) ctx.addIssue({ code: 'custom', message: `SPIFFE ID must be in trust domain "${trustDomain}"` });
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
    tools: z
      .array(toolSchema)
      .max(512)
      .refine((tools) => new Set(tools.map((t) => t.name)).size === tools.length, { message: 'tool names must be unique' })
      .default([]),
  });
}

export type ResourceInput = z.output<ReturnType<typeof resourceSchema>>;

const fromRow = (r: { uri: string; spiffeId: string; tools: unknown; createdAt: Date; updatedAt: Date }): Resource => ({ ...r, tools: r.tools as Tool[] });

/** Registered resources in the database. */
export class ResourceStore {
  /** Resources by URI, read on every exchange; dropped when any resource changes. */
  readonly #byUri: ReadCache<Resource | undefined>;

  /** `audit`: where resource changes are recorded, in the transaction that makes them. */
  constructor(
    private readonly prisma: PrismaClient,
    private readonly audit: AuditIn,
    private readonly freshness: Freshness = neverFresh,
  ) {
    this.#byUri = new ReadCache(freshness);
  }

  /** Registers a resource; `actor` (the admin caller) is recorded with it. */
  async create(input: ResourceInput, actor = 'admin'): Promise<Resource> {
    if (await this.get(input.uri)) throw new ResourceError(409, 'resource-exists', `${input.uri} is registered already`);
    const resource = await this.prisma.$transaction(async (tx) => {
      const created = fromRow(await tx.resource.create({ data: { uri: input.uri, spiffeId: input.spiffe_id, tools: input.tools as object[] } }));
      await this.audit(tx, { type: 'resource.created', actor, details: { uri: created.uri, spiffeId: created.spiffeId, tools: created.tools.map((t) => t.name) } });
      return created;
    });
    this.freshness.touch();
    return resource;
  }

  async get(uri: string): Promise<Resource | undefined> {
    return this.#byUri.get(uri, async () => {
      const row = await this.prisma.resource.findUnique({ where: { uri } });
      return row ? fromRow(row) : undefined;
    });
  }

  async require(uri: string): Promise<Resource> {
    const r = await this.get(uri);
    if (!r) throw new ResourceError(404, 'resource-not-found', `no resource ${uri.slice(0, 256)}`);
    return r;
  }

  async list(): Promise<Resource[]> {
    return (await this.prisma.resource.findMany({ orderBy: { uri: 'asc' }, take: 1000 })).map(fromRow);
  }

  /** Changes the fields `patch` names (and records their names); a patch that names none is refused. */
  async update(uri: string, patch: Partial<Omit<ResourceInput, 'uri'>>, actor = 'admin'): Promise<Resource> {
    const fields = Object.keys(patch).sort();
    if (fields.length === 0) throw new ResourceError(400, 'invalid-request', 'the update names no field');
    await this.require(uri);
    const resource = await this.prisma.$transaction(async (tx) => {
      const row = await tx.resource.update({
        where: { uri },
        data: { ...(patch.spiffe_id !== undefined && { spiffeId: patch.spiffe_id }), ...(patch.tools !== undefined && { tools: patch.tools as object[] }) },
      });
      await this.audit(tx, { type: 'resource.updated', actor, details: { uri: row.uri, fields } });
      return fromRow(row);
    });
    this.freshness.touch();
    return resource;
  }

  async delete(uri: string, actor = 'admin'): Promise<void> {
    await this.require(uri);
    await this.prisma.$transaction(async (tx) => {
      await tx.resource.delete({ where: { uri } });
      await this.audit(tx, { type: 'resource.deleted', actor, details: { uri } });
    });
    this.freshness.touch();
  }
}
