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
import { roleBindingsRouter, type RoleBindingRouteDeps } from './role-bindings';
import { OPERATIONS } from '../openapi/operations';
import type { AdminRole } from '../../admin';

/** What the admin routers need: the admin check's dependencies and each resource's domain service. */
export interface AdminDeps extends AuthDeps, JoinTokenRouteDeps, PolicyRouteDeps, AuditRouteDeps, CaRouteDeps, RoleBindingRouteDeps {
  limits: EntryRouteDeps['limits'];
  resources: ResourceRouteDeps['resources'];
  revocations: RevocationRouteDeps['revocations'] & LeaseRouteDeps['revocations'] & ConnectorRouteDeps['revocations'];
}

/** Each admin route's role, as its operation declares it: [method, path pattern, role]. */
const ROUTE_ROLES: readonly [string, RegExp, AdminRole][] = OPERATIONS.filter((op) => op.caller === 'admin').map((op) => {
  if (op.role === undefined) throw new Error(`${op.method.toUpperCase()} ${op.path} declares no admin role`);
  const pattern = new RegExp(`^${op.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]+/g, '[^/]+')}/?$`);
  return [op.method.toUpperCase(), pattern, op.role];
});

/** The role a request to an admin route needs; a route no operation names needs admin (and will be 404). */
export function adminRouteRole(method: string, path: string): AdminRole {
  const m = method === 'HEAD' ? 'GET' : method;
  return ROUTE_ROLES.find(([rm, re]) => rm === m && re.test(path))?.[2] ?? 'admin';
}

/** Routers behind the admin check: every /v1/admin route needs a caller holding the role its operation declares. */
export function adminOnly(auth: AuthDeps, ...routers: Router[]): Router {
  const router = Router();
  router.use('/v1/admin', requireAdmin(auth, (req) => adminRouteRole(req.method, req.originalUrl.split('?')[0]!)));
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
    roleBindingsRouter(deps),
  );
}

export { auditEventView, auditRouter } from './audit';
export { roleBindingsRouter } from './role-bindings';
export type { RoleBindingRouteDeps } from './role-bindings';
export type { AuditRouteDeps, CaRouteDeps, ConnectorRouteDeps, EntryRouteDeps, JoinTokenRouteDeps, LeaseRouteDeps, PolicyRouteDeps, ResourceRouteDeps, RevocationRouteDeps };
