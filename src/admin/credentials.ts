import { timingSafeEqual } from 'node:crypto';
import type { AuditIn } from '../audit';
import type { Random } from '../core/random';
import type { PrismaClient } from '../db/generated/client';
import { sha256 } from '../core/hash';
import { stageTokenFile } from './token-file';

const BOOTSTRAP_ID = 'bootstrap';
const TOKEN_PREFIX = 'writ_admin_';

const encodeHash = (digest: Buffer): string => `sha256:${digest.toString('hex')}`;

/** Where a generated token is kept until its first use (src/admin/token-file.ts), and the setting naming it. */
export interface TokenFileLocation {
  readonly path: string;
  readonly setting: string;
}

/**
 * The bootstrap admin bearer credential. Either configured (WRIT_ADMIN_TOKEN, which then
 * replaces whatever hash is stored) or generated once on first start, shown once, written
 * to a 0600 file until its first use, and stored only as a SHA-256 hash (the generated value
 * has 256 bits of entropy, so a fast hash is enough).
 */
export class AdminCredentials {
  /** Runs once, at the first successful verification of a generated credential. */
  #onFirstUse: (() => Promise<void>) | undefined;
  #firstUse: Promise<void> = Promise.resolve();

  private constructor(
    private readonly digest: Buffer,
    onFirstUse?: () => Promise<void>,
  ) {
    this.#onFirstUse = onFirstUse;
  }

  /**
   * Resolves the admin credential. When none is configured and none was generated
   * before, generates one, records `admin_credential.generated` in the transaction that stores
   * its hash, and then passes it to `onGenerated` (exactly once across replicas).
   */
  static async bootstrap(
    prisma: PrismaClient,
    opts: {
      configured: string | undefined;
      random: Random;
      audit: AuditIn;
      /** Where a generated token is written (0600) before its hash is stored; the file is the operator's copy until its first use. */
      tokenFile: TokenFileLocation;
      onGenerated: (token: string, file: string) => Promise<void> | void;
      /** Runs once, at this process's first successful verification of a generated (not configured) credential. */
      onFirstUse?: () => Promise<void>;
    },
  ): Promise<AdminCredentials> {
    if (opts.configured !== undefined) return new AdminCredentials(sha256(opts.configured));
    const existing = await prisma.adminCredential.findUnique({ where: { id: BOOTSTRAP_ID } });
    if (existing) return AdminCredentials.fromStored(existing.hash, opts.onFirstUse);
    const token = TOKEN_PREFIX + Buffer.from(opts.random.bytes(32)).toString('base64url');
    const hash = encodeHash(sha256(token));
    // Written first: a hash is stored only for a token that a file holds.
    const staged = stageTokenFile(opts.tokenFile, token, opts.random.uuid());
    let stored: { hash: string };
    try {
      stored = await prisma.$transaction(async (tx) => {
        await tx.adminCredential.createMany({ data: [{ id: BOOTSTRAP_ID, hash }], skipDuplicates: true });
        const row = await tx.adminCredential.findUniqueOrThrow({ where: { id: BOOTSTRAP_ID } });
        if (row.hash === hash) await opts.audit(tx, { type: 'admin_credential.generated', actor: 'writ' });
        return row;
      });
    } catch (err) {
      staged.discard();
      throw err;
    }
    if (stored.hash === hash) {
      staged.keep();
      await opts.onGenerated(token, staged.path);
    } else {
      staged.discard(); // a concurrent replica generated it, kept it and showed it
    }
    return AdminCredentials.fromStored(stored.hash, opts.onFirstUse);
  }

  private static fromStored(stored: string, onFirstUse?: () => Promise<void>): AdminCredentials {
    const m = /^sha256:([0-9a-f]{64})$/.exec(stored);
    if (!m) throw new Error('stored admin credential hash is malformed');
    return new AdminCredentials(Buffer.from(m[1]!, 'hex'), onFirstUse);
  }

  #disabled = false;

  /** Refuses the bootstrap token from now on (`WRIT_ADMIN_BOOTSTRAP_TOKEN=disabled`): people and admin SVIDs administer Writ. */
  disable(): void {
    this.#disabled = true;
  }

  get disabled(): boolean {
    return this.#disabled;
  }

  /** Whether `presented` is the admin credential (never, once disabled). Constant time in the presented value. */
  verify(presented: string): boolean {
    const ok = timingSafeEqual(sha256(presented), this.digest) && !this.#disabled;
    if (ok && this.#onFirstUse) {
      const run = this.#onFirstUse;
      this.#onFirstUse = undefined;
      this.#firstUse = run();
    }
    return ok;
  }

  /** Resolves once the work of the first use (if it happened) is done. */
  settled(): Promise<void> {
    return this.#firstUse;
  }
}
