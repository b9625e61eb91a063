import type { AuditIn } from '../audit';
import type { PrismaClient } from '../db/generated/client';
import { neverFresh, type Freshness } from '../db/read-cache';
import { PolicyEngine, validatePolicies } from './engine';
import { PolicyInvalid } from './errors';
import { sha256 } from '../core/hash';

/** A version of the policy set. */
export interface PolicyVersion {
  readonly version: number;
  readonly text: string;
  readonly createdAt: Date;
  readonly createdBy: string;
}

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

  /** Validates `text` against the schema and makes it the next version. Throws PolicyInvalid with Cedar's errors. */
  async put(text: string, createdBy: string): Promise<PolicyVersion> {
    return this.#store(text, createdBy, {});
  }

  /** Loads the operator's policy file (at `path`) as a new version unless the latest version is that text already. */
  async seed(text: string, path: string): Promise<PolicyVersion> {
    const latest = await this.latest();
    if (latest && sha256(latest.text, 'hex') === sha256(text, 'hex')) return latest;
    return this.#store(text, 'policy_file', { path });
  }

  async #store(text: string, createdBy: string, details: Record<string, unknown>): Promise<PolicyVersion> {
    const check = validatePolicies(text);
    if (!check.ok) throw new PolicyInvalid(check.errors);
    const version = await this.prisma.$transaction(async (tx) => {
      const created = await tx.policySet.create({ data: { text, sha256: sha256(text, 'hex'), createdBy } });
      await this.audit(tx, { type: 'policy.updated', actor: createdBy, details: { version: created.version, ...details } });
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
