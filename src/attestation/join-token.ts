import type { AuditIn } from '../audit';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import type { PrismaClient } from '../db/generated/client';
import { GroupCommit } from '../db/group-commit';
import type { AttestationResult, Attestor } from './attestor';
import type { EntryStore, RegistrationEntry } from './entries';
import { AttestationError } from './errors';
import { sha256 } from '../core/hash';

const PREFIX = 'writ_jt_';
const hash = (token: string) => sha256(token, 'hex');

/** A join token as created: shown once, then only its hash exists. */
export interface IssuedJoinToken {
  readonly token: string;
  readonly expiresAt: Date;
}

/** Single-use join tokens, each made for one registration entry. */
export class JoinTokens {
  /** Redemptions arriving together are one UPDATE (group commit); each caller still gets only its own token's answer. */
  readonly #redemptions = new GroupCommit<string, string | undefined>((ids) => this.#consume(ids));

  /** `entries`: where `issue` finds the entry a token is for; `audit`: where issuance is recorded, in its transaction. */
  constructor(
    private readonly prisma: PrismaClient,
    private readonly deps: { clock: Clock; random: Random; entries?: Pick<EntryStore, 'forJoinToken'>; audit: AuditIn },
  ) {}

  /** A token for an entry (by id, or by a SPIFFE ID exactly one enabled entry has), recorded with `actor`. */
  async issue(ref: { readonly entryId: string } | { readonly spiffeId: string }, ttlSeconds: number, actor = 'admin'): Promise<IssuedJoinToken & { readonly entry: RegistrationEntry }> {
    if (!this.deps.entries) throw new Error('these join tokens have no entry store to issue from');
    const entry = await this.deps.entries.forJoinToken(ref);
    const token = PREFIX + Buffer.from(this.deps.random.bytes(32)).toString('base64url');
    const expiresAt = new Date(this.deps.clock.now().getTime() + ttlSeconds * 1000);
    await this.prisma.$transaction(async (tx) => {
      await tx.joinToken.create({ data: { id: hash(token), entryId: entry.id, expiresAt } });
      // Only the token's hash is stored, and the event names its entry, never the token.
      await this.deps.audit(tx, { type: 'join_token.created', actor, details: { entryId: entry.id, spiffeId: entry.spiffeId, expiresAt: expiresAt.toISOString() } });
    });
    return { token, expiresAt, entry };
  }

  /**
   * Consumes a token in one statement, so of concurrent attempts exactly one succeeds.
   * Unknown, expired and used tokens are refused alike, so they cannot be told apart.
   */
  async redeem(token: string): Promise<{ entryId: string; tokenId: string }> {
    const id = hash(token);
    const entryId = await this.#redemptions.submit(id);
    if (entryId === undefined) throw new AttestationError('token-unusable', 'the join token is unknown, expired or already used');
    return { entryId, tokenId: id };
  }

  /**
   * One statement marks every named token used, if unused and unexpired; row locks make
   * concurrent statements (other batches, other replicas) consume a token at most once.
   * Within a batch, a token named twice goes to its first caller only.
   */
  async #consume(ids: string[]): Promise<(string | undefined)[]> {
    const now = this.deps.clock.now();
    const rows = await this.prisma.$queryRawUnsafe<{ id: string; entry_id: string }[]>(
      `UPDATE join_token SET used_at = $2::timestamptz
       WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND used_at IS NULL AND expires_at > $2::timestamptz
       RETURNING id, entry_id::text`,
      JSON.stringify([...new Set(ids)]),
      now.toISOString(),
    );
    const consumed = new Map(rows.map((r) => [r.id, r.entry_id]));
    return ids.map((id) => {
      const entryId = consumed.get(id);
      consumed.delete(id); // a second caller with the same token in this batch gets nothing
      return entryId;
    });
  }
}

/** The join_token attestor: evidence `{"token": "<join token>"}`. */
export class JoinTokenAttestor implements Attestor {
  readonly name = 'join_token';
  constructor(private readonly tokens: JoinTokens) {}

  async attest(evidence: Record<string, unknown>): Promise<AttestationResult> {
    const { token, ...rest } = evidence;
    if (typeof token !== 'string' || token.length === 0 || token.length > 256 || Object.keys(rest).length > 0) {
      throw new AttestationError('invalid-evidence', 'join_token evidence is {"token": "<join token>"}');
    }
    const { entryId, tokenId } = await this.tokens.redeem(token);
    // The selector names the token by a prefix of its hash: enough to correlate in the audit trail, useless to an attacker.
    return { selectors: [`join_token:${tokenId.slice(0, 16)}`], entryId };
  }
}
