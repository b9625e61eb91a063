import { timingSafeEqual } from 'node:crypto';
import type { AuditIn } from '../audit';
import type { Random } from '../core/random';
import type { PrismaClient } from '../db/generated/client';
import { sha256 } from '../core/hash';

const BOOTSTRAP_ID = 'bootstrap';
const TOKEN_PREFIX = 'writ_admin_';

const encodeHash = (digest: Buffer): string => `sha256:${digest.toString('hex')}`;

/**
 * The bootstrap admin bearer credential. Either configured (WRIT_ADMIN_TOKEN) or
 * generated once on first start, shown once, and kept only as a SHA-256 hash (the
 * generated value has 256 bits of entropy, so a fast hash is enough).
 */
export class AdminCredentials {
  private constructor(private readonly digest: Buffer) {}

  /**
   * Resolves the admin credential. When none is configured and none was generated
   * before, generates one, records `admin_credential.generated` in the transaction that stores
   * its hash, and then passes it to `onGenerated` (exactly once across replicas).
   */
  static async bootstrap(
    prisma: PrismaClient,
    opts: { configured: string | undefined; random: Random; audit: AuditIn; onGenerated: (token: string) => Promise<void> | void },
  ): Promise<AdminCredentials> {
    if (opts.configured !== undefined) return new AdminCredentials(sha256(opts.configured));
    const existing = await prisma.adminCredential.findUnique({ where: { id: BOOTSTRAP_ID } });
    if (existing) return AdminCredentials.fromStored(existing.hash);
    const token = TOKEN_PREFIX + Buffer.from(opts.random.bytes(32)).toString('base64url');
    const hash = encodeHash(sha256(token));
    const stored = await prisma.$transaction(async (tx) => {
      await tx.adminCredential.createMany({ data: [{ id: BOOTSTRAP_ID, hash }], skipDuplicates: true });
      const row = await tx.adminCredential.findUniqueOrThrow({ where: { id: BOOTSTRAP_ID } });
      if (row.hash === hash) await opts.audit(tx, { type: 'admin_credential.generated', actor: 'writ' });
      return row;
    });
    if (stored.hash === hash) await opts.onGenerated(token); // else a concurrent replica generated it and showed it
    return AdminCredentials.fromStored(stored.hash);
  }

  private static fromStored(stored: string): AdminCredentials {
    const m = /^sha256:([0-9a-f]{64})$/.exec(stored);
    if (!m) throw new Error('stored admin credential hash is malformed');
    return new AdminCredentials(Buffer.from(m[1]!, 'hex'));
  }

  /** Whether `presented` is the admin credential. Constant time in the presented value. */
  verify(presented: string): boolean {
    return timingSafeEqual(sha256(presented), this.digest);
  }
}
