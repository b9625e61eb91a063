import { SignJWT } from 'jose';
import type { SigningAuthorities } from '../ca/rotator';
import type { Clock } from '../core/clock';
import type { PrismaClient } from '../db/generated/client';

/**
 * The SVID denylist: serials of X.509-SVIDs revoked before they expired, for peers that
 * validate SVIDs offline. A JWS signed by a JWT-SVID authority of the bundle, so it
 * verifies with the bundle alone. `sequence` counts SVID revocations ever made, so it
 * increments whenever a serial joins the list.
 */
export async function svidDenylist(prisma: PrismaClient, authority: SigningAuthorities, opts: { issuer: string; clock: Clock }): Promise<string> {
  const now = opts.clock.now();
  const revoked = { kind: 'x509-svid', revokedAt: { not: null }, serial: { not: null } } as const;
  const [rows, sequence] = await Promise.all([
    prisma.lease.findMany({ where: { ...revoked, expiresAt: { gt: now } }, select: { serial: true, spiffeId: true, expiresAt: true }, orderBy: { serial: 'asc' }, take: 100_000 }),
    prisma.lease.count({ where: revoked }),
  ]);
  const { jwtKey } = authority;
  return new SignJWT({
    sequence,
    denied: rows.map((r) => ({ serial: r.serial, spiffe_id: r.spiffeId, expires_at: Math.floor(r.expiresAt.getTime() / 1000) })),
  })
    .setProtectedHeader({ alg: jwtKey.alg, kid: jwtKey.kid, typ: 'svid-denylist+jwt' })
    .setIssuer(opts.issuer)
    .setIssuedAt(Math.floor(now.getTime() / 1000))
    .sign(jwtKey.privateKey);
}

/**
 * The serials of revoked, unexpired X.509-SVIDs of these entries: what a node agent must stop
 * serving (and replace) at once. Its answer to the agent travels over the agent's mTLS.
 */
export async function revokedSvidSerials(prisma: PrismaClient, entryIds: readonly string[], now: Date): Promise<string[]> {
  if (entryIds.length === 0) return [];
  const rows = await prisma.lease.findMany({
    where: { kind: 'x509-svid', entryId: { in: [...entryIds] }, revokedAt: { not: null }, serial: { not: null }, expiresAt: { gt: now } },
    select: { serial: true },
    take: 100_000,
  });
  return rows.map((r) => r.serial!);
}
