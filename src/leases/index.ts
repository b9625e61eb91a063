import type { PrismaClient } from '../db/generated/client';
import { revokeIds } from './revocations';
import { noRevocationWatch, type RevocationWatch } from './watch';

export type LeaseKind = 'x509-svid' | 'jwt-svid' | 'access-token';

/** One issued credential. Written before the credential leaves the process. */
export interface Lease {
  readonly id: string;
  readonly kind: LeaseKind;
  readonly spiffeId: string;
  readonly subject?: string | null;
  readonly taskId?: string | null;
  readonly audience?: readonly string[];
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt?: Date | null;
  readonly revocationReason?: string | null;
  /** X.509-SVIDs: the certificate serial number, hex. */
  readonly serial?: string | null;
  /** X.509-SVIDs: SHA-256 of the certificate DER, hex. */
  readonly fingerprint?: string | null;
  /** The registration entry it was issued under. */
  readonly entryId?: string | null;
  /** Access tokens: the user's session, the subject token's issuer, what was granted, the parent token. */
  readonly sid?: string | null;
  readonly subjectIssuer?: string | null;
  readonly subjectEmail?: string | null;
  readonly authorizationDetails?: unknown;
  readonly parentId?: string | null;
}

/** Lease persistence. */
export interface LeaseStore {
  /** Records a new lease durably; resolves only once committed. */
  record(lease: Lease): Promise<void>;
  get(id: string): Promise<Lease | undefined>;
  /**
   * The lease of this exact X.509-SVID (serial and certificate fingerprint), if it is
   * neither expired nor revoked at `now`.
   */
  activeSvid(serial: string, fingerprint: string, now: Date): Promise<Lease | undefined>;
  /** Whether a token's lease and every lease up its chain (parent tokens) is neither expired nor revoked. */
  tokenAlive(id: string, now: Date): Promise<boolean>;
  /** Revokes one lease durably (idempotent); returns whether it was live. */
  revoke(id: string, reason: string, now: Date): Promise<boolean>;
}

export class PrismaLeaseStore implements LeaseStore {
  constructor(
    private readonly prisma: PrismaClient,
    /** Consulted before the database: a revocation any replica announced is refused at once. */
    private readonly watch: RevocationWatch = noRevocationWatch,
  ) {}

  async record(lease: Lease): Promise<void> {
    await this.prisma.lease.create({
      data: {
        id: lease.id,
        kind: lease.kind,
        spiffeId: lease.spiffeId,
        subject: lease.subject ?? null,
        taskId: lease.taskId ?? null,
        audience: [...(lease.audience ?? [])],
        issuedAt: lease.issuedAt,
        expiresAt: lease.expiresAt,
        serial: lease.serial ?? null,
        fingerprint: lease.fingerprint ?? null,
        entryId: lease.entryId ?? null,
        sid: lease.sid ?? null,
        subjectIssuer: lease.subjectIssuer ?? null,
        subjectEmail: lease.subjectEmail ?? null,
        ...(lease.authorizationDetails !== undefined && { authorizationDetails: lease.authorizationDetails as object }),
        parentId: lease.parentId ?? null,
      },
    });
  }

  async tokenAlive(id: string, now: Date): Promise<boolean> {
    let next: string | null = id;
    for (let hops = 0; next !== null && hops <= 16; hops++) {
      if (this.watch.isRevoked({ jti: next })) return false;
      const lease: Lease | undefined = await this.get(next);
      if (!lease || lease.revokedAt || lease.expiresAt <= now) return false;
      next = lease.parentId ?? null;
    }
    return next === null;
  }

  async revoke(id: string, reason: string, now: Date): Promise<boolean> {
    return (await this.prisma.$transaction((tx) => revokeIds(tx, [id], reason, now))) > 0;
  }

  async activeSvid(serial: string, fingerprint: string, now: Date): Promise<Lease | undefined> {
    if (this.watch.isRevoked({ serial })) return undefined;
    const row = await this.prisma.lease.findFirst({ where: { serial, fingerprint, revokedAt: null, expiresAt: { gt: now } } });
    return row ? { ...row, kind: row.kind as LeaseKind } : undefined;
  }

  async get(id: string): Promise<Lease | undefined> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
    const row = await this.prisma.lease.findUnique({ where: { id } });
    return row ? { ...row, kind: row.kind as LeaseKind } : undefined;
  }
}

export { TaskStore, TaskError, type Task } from './tasks';
export { Revocations, revocationSelectorSchema, leaseFilter, type RevocationSelector, type BlastRadius } from './revocations';
export { svidDenylist } from './denylist';
export { LeaseJanitor } from './janitor';
export { PgRevocationWatch, noRevocationWatch, announceRevoked, REVOCATION_CHANNEL, type RevocationWatch, type Revoked } from './watch';
