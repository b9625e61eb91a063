import { Router } from 'express';
import { leaseListingSchema, type Revocations } from '../../leases';
import { parseWith } from '../validate';

export interface LeaseRouteDeps {
  revocations: Pick<Revocations, 'find'>;
}

type ListedLease = Awaited<ReturnType<Revocations['find']>>[number];

/** The admin API's view of a lease. */
export function leaseView(l: ListedLease) {
  return {
    jti: l.id, kind: l.kind, spiffe_id: l.spiffeId, subject: l.subject, subject_issuer: l.subjectIssuer, sid: l.sid, task_id: l.taskId, audience: l.audience,
    serial: l.serial, issued_at: l.issuedAt.toISOString(), expires_at: l.expiresAt.toISOString(), revoked_at: l.revokedAt?.toISOString() ?? null, revocation_reason: l.revocationReason,
  };
}

/** GET /v1/admin/leases: leases by one handle (src/leases/filters.ts), newest first, `before` cursor. */
export function leasesRouter(deps: LeaseRouteDeps): Router {
  const router = Router();
  router.get('/v1/admin/leases', async (req, res) => {
    const q = parseWith(leaseListingSchema, req.query);
    const rows = await deps.revocations.find(q.selector, q.status, q.page);
    res.json({ leases: rows.map(leaseView), ...(rows.length === q.page.limit && { next_before: rows.at(-1)!.id }) });
  });
  return router;
}
