import type { AuditIn } from '../audit';
import type { PrismaClient } from '../db/generated/client';
import { neverFresh, type Freshness } from '../db/read-cache';
import { PolicyEngine, validatePolicies } from './engine';
import { PolicyInvalid, PolicyVersionNotFound } from './errors';
import { sha256 } from '../core/hash';

/** A version of the policy set. */
export interface PolicyVersion {
  readonly version: number;
  readonly text: string;
  readonly createdAt: Date;
  readonly createdBy: string;
  /** Why it was made, as its author said. */
  readonly reason?: string | null;
}

/** A version in the history: who made it and why, without its text. */
export type PolicyVersionSummary = Omit<PolicyVersion, 'text'> & { readonly sha256: string };

/**
 * Versioned policy sets in the database. The highest version is in force: every replica
 * checks the version number at each decision (one indexed lookup) and re-parses only
 * when it changed, so a new set takes effect for the very next request everywhere.
 */
export class PolicyStore {
  #engine: PolicyEngine | undefined;
  /** The generation in which `#engine` was last confirmed to be the version in force. */
  #checked: number | undefined;

  /** `audit`: where new versions are recorded, in the transaction that stores them. */
  constructor(
    private readonly prisma: PrismaClient,
    private readonly audit: AuditIn,
    private readonly freshness: Freshness = neverFresh,
  ) {}

  async latest(): Promise<PolicyVersion | undefined> {
    return (await this.prisma.policySet.findFirst({ orderBy: { version: 'desc' } })) ?? undefined;
  }

  /** Validates `text` against the schema and makes it the next version, `reason` recorded with it. Throws PolicyInvalid with Cedar's errors. */
  async put(text: string, createdBy: string, reason?: string): Promise<PolicyVersion> {
    return this.#store(text, createdBy, {}, reason);
  }

  /** The history, newest first: at most `limit` versions below `before`. */
  async versions(page: { limit: number; before?: number }): Promise<PolicyVersionSummary[]> {
    return this.prisma.policySet.findMany({
      where: page.before === undefined ? {} : { version: { lt: page.before } },
      orderBy: { version: 'desc' },
      take: page.limit,
      select: { version: true, sha256: true, createdAt: true, createdBy: true, reason: true },
    });
  }

  /** One version, text included; PolicyVersionNotFound (404) when there is none. */
  async version(version: number): Promise<PolicyVersion & { readonly sha256: string }> {
    const found = await this.prisma.policySet.findUnique({ where: { version } });
    if (!found) throw new PolicyVersionNotFound(`version: no policy version ${version}`);
    return found;
  }

  /** Loads the operator's policy file (at `path`) as a new version unless the latest version is that text already. */
  async seed(text: string, path: string): Promise<PolicyVersion> {
    const latest = await this.latest();
    if (latest && sha256(latest.text, 'hex') === sha256(text, 'hex')) return latest;
    return this.#store(text, 'policy_file', { path });
  }

  async #store(text: string, createdBy: string, details: Record<string, unknown>, reason?: string): Promise<PolicyVersion> {
    const check = validatePolicies(text);
    if (!check.ok) throw new PolicyInvalid(check.errors);
    const version = await this.prisma.$transaction(async (tx) => {
      const created = await tx.policySet.create({ data: { text, sha256: sha256(text, 'hex'), createdBy, reason: reason ?? null } });
      await this.audit(tx, { type: 'policy.updated', actor: createdBy, details: { version: created.version, ...details, ...(reason !== undefined && { reason }) } });
      return created;
    });
    this.freshness.touch();
    return version;
  }

  /** The engine of the version in force; an empty set (default deny) when there is none. */
  async engine(): Promise<PolicyEngine> {
    const generation = this.freshness.generation;
    if (this.freshness.current && this.#engine && this.#checked === generation) return this.#engine;
    const head = await this.prisma.policySet.findFirst({ orderBy: { version: 'desc' }, select: { version: true } });
    const version = String(head?.version ?? 0);
    if (this.#engine?.version === version) {
      this.#checked = generation;
      return this.#engine;
    }
    const text = head ? (await this.prisma.policySet.findUniqueOrThrow({ where: { version: head.version } })).text : '';
    this.#engine = PolicyEngine.create(text, version);
    this.#checked = generation;
    return this.#engine;
  }
}
