import { Router } from 'express';
import { requireAdmin, type AuthDeps } from '../auth';
import { auditRouter, type AuditRouteDeps } from './audit';
import { caRouter, type CaRouteDeps } from './ca';
import { connectorsRouter, type ConnectorRouteDeps } from './connectors';
import { entriesRouter, type EntryRouteDeps } from './entries';
import { joinTokensRouter, type JoinTokenRouteDeps } from './join-tokens';
import { leasesRouter, type LeaseRouteDeps } from './leases';
import { policiesRouter, type PolicyRouteDeps } from './policies';
import { resourcesRouter, type ResourceRouteDeps } from './resources';
import { revocationsRouter, type RevocationRouteDeps } from './revocations';

/** What the admin routers need: the admin check's dependencies and each resource's domain service. */
export interface AdminDeps extends AuthDeps, JoinTokenRouteDeps, PolicyRouteDeps, AuditRouteDeps, CaRouteDeps {
  limits: EntryRouteDeps['limits'];
  resources: ResourceRouteDeps['resources'];
  revocations: RevocationRouteDeps['revocations'] & LeaseRouteDeps['revocations'] & ConnectorRouteDeps['revocations'];
}

/** Routers behind the admin check: every /v1/admin route needs the admin bearer token or an admin SVID. */
export function adminOnly(auth: AuthDeps, ...routers: Router[]): Router {
  const router = Router();
  router.use('/v1/admin', requireAdmin(auth));
  for (const r of routers) router.use(r);
  return router;
}

/** /v1/admin: one router per resource, each route parse → call the domain → answer. */
export function adminRouter(deps: AdminDeps): Router {
  return adminOnly(
    deps,
    entriesRouter({ entries: deps.entries, limits: deps.limits }),
    joinTokensRouter(deps),
    resourcesRouter({ resources: deps.resources, trustDomain: deps.limits.trustDomain }),
    policiesRouter(deps),
    revocationsRouter(deps),
    leasesRouter(deps),
    connectorsRouter(deps),
    auditRouter(deps),
    caRouter(deps),
  );
}

export { auditEventView, auditRouter } from './audit';
export type { AuditRouteDeps, CaRouteDeps, ConnectorRouteDeps, EntryRouteDeps, JoinTokenRouteDeps, LeaseRouteDeps, PolicyRouteDeps, ResourceRouteDeps, RevocationRouteDeps };
