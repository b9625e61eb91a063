/**
 * Admin roles (issue 19): people and automation hold a role, never a shared secret in daily use.
 *
 * - `auditor`: reads leases, tasks, audit, policies, resources, entries; verifies the chain;
 * - `operator`: an auditor who also revokes, flips the kill switch and ends tasks;
 * - `admin`: everything — entries, join tokens, resources, policies, role bindings, CA rotation.
 *
 * A person holds the highest role any binding gives them: a binding names a provider (`issuer`)
 * and either a group of its groups claim or one subject. Bindings come from the configuration
 * (`WRIT_ADMIN_ROLES`) and from the admin API (`/v1/admin/role-bindings`); the configured ones
 * cannot be removed through the API.
 */
import { z } from 'zod';
import type { AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import { DomainError, problemType } from '../core/errors';
import type { Random } from '../core/random';
import type { PrismaClient } from '../db/generated/client';

export const ADMIN_ROLES = ['auditor', 'operator', 'admin'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

/** Whether `held` includes what `needed` allows (admin ⊃ operator ⊃ auditor). */
export const roleCovers = (held: AdminRole | undefined, needed: AdminRole): boolean => held !== undefined && ADMIN_ROLES.indexOf(held) >= ADMIN_ROLES.indexOf(needed);

/** One binding: a role for a provider's group, or for one of its users. */
export interface AdminRoleBinding {
  readonly id: string;
  readonly role: AdminRole;
  readonly issuer: string;
  readonly group?: string;
  readonly subject?: string;
  /** `config` for WRIT_ADMIN_ROLES, else who created it through the API. */
  readonly createdBy: string;
}

export type AdminRoleBindingConfig = Omit<AdminRoleBinding, 'id' | 'createdBy'>;

const bindingFields = {
  role: z.enum(ADMIN_ROLES),
  issuer: z.string().url().max(2048),
  group: z.string().min(1).max(256).optional(),
  subject: z.string().min(1).max(512).optional(),
};
const oneOfGroupOrSubject = [(b: { group?: string; subject?: string }) => (b.group === undefined) !== (b.subject === undefined), { message: 'a binding names exactly one of group and subject' }] as const;
const bindingShape = z.strictObject(bindingFields).refine(...oneOfGroupOrSubject);
/** A binding made through the API, and why (recorded in its audit event). */
export const roleBindingCreateRequest = z.strictObject({ ...bindingFields, reason: z.string().min(1).max(512).optional() }).refine(...oneOfGroupOrSubject);
/** Why a binding is removed (`DELETE …?reason=`). */
export const roleBindingDeleteQuery = z.strictObject({ reason: z.string().min(1).max(512).optional() });

/** `WRIT_ADMIN_ROLES` / `admin_roles`: `[{role, issuer, group | subject}]`. */
export const adminRoleBindingsSchema = z.array(bindingShape).max(256);
/** The admin API's body for a new binding. */
export const roleBindingRequest = bindingShape;

/** A person signed in with a token of a configured identity provider. */
export interface Person {
  readonly sub: string;
  readonly iss: string;
  readonly groups: readonly string[];
}

/** How a person is named in the audit trail: `user:<issuer>#<subject>`. */
export const personPrincipal = (p: Pick<Person, 'iss' | 'sub'>): string => `user:${p.iss}#${p.sub}`;

export class RoleBindingError extends DomainError {
  readonly type: string;
  constructor(
    readonly status: 400 | 404 | 409,
    code: 'role-binding-not-found' | 'role-binding-exists' | 'invalid-request',
    message: string,
  ) {
    super(message);
    this.type = problemType(code);
  }
}

/** Role bindings: the configured ones and those in the database. */
export class RoleBindings {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly deps: { configured: readonly AdminRoleBindingConfig[]; audit: AuditIn; clock: Clock; random: Random },
  ) {}

  async list(): Promise<AdminRoleBinding[]> {
    const stored = await this.prisma.roleBinding.findMany({ orderBy: { createdAt: 'asc' } });
    return [
      ...this.deps.configured.map((b, i) => ({ ...b, id: `config-${i}`, createdBy: 'config' })),
      ...stored.map((r) => ({ id: r.id, role: r.role as AdminRole, issuer: r.issuer, ...(r.group !== null && { group: r.group }), ...(r.subject !== null && { subject: r.subject }), createdBy: r.createdBy })),
    ];
  }

  /** Whether any binding exists (the bootstrap token may then be disabled). */
  async any(): Promise<boolean> {
    return this.deps.configured.length > 0 || (await this.prisma.roleBinding.count()) > 0;
  }

  /** The highest role the person holds, if any. */
  async roleOf(person: Person): Promise<AdminRole | undefined> {
    let best: AdminRole | undefined;
    for (const b of await this.list()) {
      if (b.issuer !== person.iss) continue;
      if ((b.group !== undefined && person.groups.includes(b.group)) || (b.subject !== undefined && b.subject === person.sub)) if (!roleCovers(best, b.role)) best = b.role;
    }
    return best;
  }

  async create(input: AdminRoleBindingConfig, actor: string, reason?: string): Promise<AdminRoleBinding> {
    const all = await this.list();
    if (all.some((b) => b.role === input.role && b.issuer === input.issuer && b.group === input.group && b.subject === input.subject)) throw new RoleBindingError(409, 'role-binding-exists', 'the same binding exists already');
    const id = this.deps.random.uuid();
    await this.prisma.$transaction(async (tx) => {
      await tx.roleBinding.create({ data: { id, role: input.role, issuer: input.issuer, group: input.group ?? null, subject: input.subject ?? null, createdBy: actor, createdAt: this.deps.clock.now() } });
      await this.deps.audit(tx, { type: 'role_binding.created', actor, details: { bindingId: id, role: input.role, issuer: input.issuer, ...(input.group !== undefined && { group: input.group }), ...(input.subject !== undefined && { subject: input.subject }), ...(reason !== undefined && { reason }) } });
    });
    return { ...input, id, createdBy: actor };
  }

  async delete(id: string, actor: string, reason?: string): Promise<void> {
    if (id.startsWith('config-')) throw new RoleBindingError(409, 'role-binding-exists', 'a binding from the configuration (WRIT_ADMIN_ROLES) is removed there');
    await this.prisma.$transaction(async (tx) => {
      const gone = await tx.roleBinding.deleteMany({ where: { id } });
      if (gone.count === 0) throw new RoleBindingError(404, 'role-binding-not-found', `no role binding ${id.slice(0, 64)}`);
      await this.deps.audit(tx, { type: 'role_binding.deleted', actor, details: { bindingId: id, ...(reason !== undefined && { reason }) } });
    });
  }
}
