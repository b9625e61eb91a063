import { Router } from 'express';
import { z } from 'zod';
import type { AuditReader } from '../../audit';
import { LeaseNotFound, leaseListingSchema, type Revocations } from '../../leases';
import { parseWith } from '../validate';
import { auditEventView } from './audit';

export interface LeaseRouteDeps {
  revocations: Pick<Revocations, 'find' | 'lease'>;
  auditReader: Pick<AuditReader, 'list'>;
}

type ListedLease = Awaited<ReturnType<Revocations['find']>>[number];

/** The admin API's view of a lease. */
export function leaseView(l: ListedLease) {
  return {
    jti: l.id, kind: l.kind, spiffe_id: l.spiffeId, subject: l.subject, subject_issuer: l.subjectIssuer, sid: l.sid, task_id: l.taskId, audience: l.audience,
    serial: l.serial, issued_at: l.issuedAt.toISOString(), expires_at: l.expiresAt.toISOString(), revoked_at: l.revokedAt?.toISOString() ?? null, revocation_reason: l.revocationReason,
  };
}

const jtiParam = z.strictObject({ jti: z.uuid() });
/** Events shown with a lease: its own, and its task's newest (per-call decisions, approvals, other tokens). */
const LEASE_EVENTS = 50;
const TASK_EVENTS = 200;

/**
 * GET /v1/admin/leases: leases by one handle (src/leases/filters.ts), newest first, `before` cursor.
 * GET /v1/admin/leases/{jti}: one lease, the claims its token was issued with and the decisions
 * behind it (from its `token.issued` event), and the audit events of the token and of its task.
 */
export function leasesRouter(deps: LeaseRouteDeps): Router {
  const router = Router();
  router.get('/v1/admin/leases', async (req, res) => {
    const q = parseWith(leaseListingSchema, req.query);
    const rows = await deps.revocations.find(q.selector, q.status, q.page);
    res.json({ leases: rows.map(leaseView), ...(rows.length === q.page.limit && { next_before: rows.at(-1)!.id }) });
  });
  router.get('/v1/admin/leases/:jti', async (req, res) => {
    const { jti } = parseWith(jtiParam, req.params);
    const lease = await deps.revocations.lease(jti);
    if (!lease) throw new LeaseNotFound(`jti: no lease ${jti}`);
    const [own, ofTask] = await Promise.all([
      deps.auditReader.list({ jti }, { limit: LEASE_EVENTS }),
      lease.taskId === null ? undefined : deps.auditReader.list({ taskId: lease.taskId }, { limit: TASK_EVENTS }),
    ]);
    const bySeq = new Map([...own.events, ...(ofTask?.events ?? [])].map((e) => [e.seq, e]));
    const events = [...bySeq.values()].sort((a, b) => b.seq - a.seq);
    const issued = own.events.find((e) => e.type === 'token.issued')?.details;
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      ...leaseView(lease),
      // Tokens issued before their claims were audited show none; SVIDs have no token claims here.
      claims: issued?.claims ?? null,
      policy_version: /^\d+$/.test(String(issued?.policyVersion)) ? Number(issued!.policyVersion) : null, // recorded as the engine names it: "1"
      decisions: Array.isArray(issued?.decisions) ? issued.decisions : [],
      events: events.map(auditEventView),
    });
  });
  return router;
}
