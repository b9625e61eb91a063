import { Router, type Request, type Response } from 'express';
import { DomainError, problemType } from '../core/errors';
import { z } from 'zod';
import { APPROVAL_STATUSES, ApprovalError, approvalJson, type ApprovalStore, type Approver } from '../approvals';
import { Forbidden, requireAdmin, signedInPerson, Unauthenticated, type AuthDeps } from './auth';
import { peerSvid } from './peer';
import { parseWith } from './validate';

export interface ApprovalRouteDeps extends AuthDeps {
  approvals: Pick<ApprovalStore, 'get' | 'list' | 'decide' | 'mayDecide' | 'urlOf'>;
}

const listQuery = z.strictObject({ status: z.enum(APPROVAL_STATUSES).optional(), task_id: z.uuid().optional() });
const decisionBody = z.strictObject({
  reason: z.string().min(1).max(512).optional(),
  /** Seconds the approval holds (at most WRIT_APPROVAL_VALIDITY). */
  valid_for: z.number().int().min(1).max(86_400).optional(),
});
export const approvalSchemas = { listQuery, decisionBody };

/**
 * Approval requests (issue 18): approvers — users of the approvers' group at the approvers'
 * identity provider, signed in with an ID token as `Authorization: Bearer` or in the console —
 * list, read, approve and deny them; a person with an admin role lists and reads them all, and
 * an operator (or admin) may deny any; the task's connector (by its X.509-SVID) may read its own.
 * Every decision is audited with the person's identity.
 */
export function approvalsRouter(deps: ApprovalRouteDeps): Router {
  const router = Router();
  const admin = requireAdmin(deps, 'auditor');

  /**
   * The approver a bearer sign-in token names (a token of a configured provider for
   * WRIT_ADMIN_AUDIENCE, never a subject token a connector could hold); undefined otherwise.
   */
  const approverOf = (req: Request): Promise<Approver | undefined> => signedInPerson(req, deps);
  /** An approver, or an admin of any role (read-only routes: auditors read); else 401/403. */
  const reader = async (req: Request, res: Response): Promise<Approver | 'admin'> => {
    const approver = await approverOf(req);
    if (approver && (await deps.people!.roleOf(approver)) === undefined) return approver;
    await admin(req, res, () => undefined); // throws 401/403 unless an admin of some role
    return 'admin';
  };

  router.get('/v1/approvals', async (req, res) => {
    const who = await reader(req, res);
    const q = parseWith(listQuery, req.query);
    const found = await deps.approvals.list({ ...(q.status !== undefined && { status: q.status }), ...(q.task_id !== undefined && { taskId: q.task_id }) });
    // An approver sees the requests it may decide; the admin sees all.
    const visible = who === 'admin' ? found : found.filter((a) => deps.approvals.mayDecide(a, who) === undefined);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ approvals: visible.map((a) => approvalJson(a, deps.approvals.urlOf(a.id))) });
  });

  router.get('/v1/approvals/:id', async (req, res) => {
    const approval = await deps.approvals.get(String(req.params.id));
    // The task's connector reads its own request over mTLS (a verified SVID of this trust domain).
    const svid = peerSvid(req, deps.trustDomain);
    if (!(svid && approval && svid.spiffeId === approval.connector)) {
      const who = await reader(req, res);
      if (who !== 'admin' && approval && deps.approvals.mayDecide(approval, who) !== undefined) throw new Forbidden('only its approvers, the admin and the task\'s connector read a request');
    }
    if (!approval) throw new ApprovalError(404, 'approval-not-found', 'no such approval request');
    res.setHeader('Cache-Control', 'no-store');
    res.json(approvalJson(approval, deps.approvals.urlOf(approval.id)));
  });

  for (const decision of ['approve', 'deny'] as const) {
    router.post(`/v1/approvals/:id/${decision}`, async (req, res) => {
      const approver = await approverOf(req);
      if (!approver) throw new Unauthenticated(deps.people ? 'approvers sign in with a token of the approvers\' identity provider for this broker (WRIT_ADMIN_AUDIENCE) as Authorization: Bearer' : 'approvals are decided by people signed in, and sign-in is off: set WRIT_ADMIN_AUDIENCE');
      const body = parseWith(decisionBody, req.body ?? {});
      const role = await deps.people!.roleOf(approver);
      const decided = await deps.approvals.decide(String(req.params.id), approver, decision, {
        ...(body.reason !== undefined && { reason: body.reason }),
        ...(body.valid_for !== undefined && { validFor: body.valid_for }),
        operator: role === 'operator' || role === 'admin',
      });
      res.setHeader('Cache-Control', 'no-store');
      res.json(approvalJson(decided, deps.approvals.urlOf(decided.id)));
    });
  }
  return router;
}

/**
 * `GET /v1/sign-in` (public): where people sign in to this broker — the identity providers and
 * Writ's client there (WRIT_ADMIN_AUDIENCE) — for `writ login --device` and the console. 404
 * when sign-in is off.
 */
export function signInRouter(deps: { clientId: string | undefined; issuers: readonly string[] }): Router {
  const router = Router();
  router.get('/v1/sign-in', (_req, res) => {
    if (deps.clientId === undefined) throw new SignInOff('people do not sign in to this broker (WRIT_ADMIN_AUDIENCE is not set)');
    res.setHeader('Cache-Control', 'max-age=300');
    res.json({ client_id: deps.clientId, issuers: deps.issuers });
  });
  return router;
}

class SignInOff extends DomainError {
  readonly type = problemType('sign-in-off');
  readonly status = 404;
}
