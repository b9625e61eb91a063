import { Router } from 'express';
import { roleBindingCreateRequest, roleBindingDeleteQuery, type RoleBindings } from '../../admin';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface RoleBindingRouteDeps {
  roleBindings: Pick<RoleBindings, 'list' | 'create' | 'delete'>;
}

const view = (b: Awaited<ReturnType<RoleBindings['list']>>[number]) => ({ id: b.id, role: b.role, issuer: b.issuer, ...(b.group !== undefined && { group: b.group }), ...(b.subject !== undefined && { subject: b.subject }), created_by: b.createdBy });

/** /v1/admin/role-bindings: which groups or users of which provider hold which admin role (the configured ones are listed, not changed). */
export function roleBindingsRouter(deps: RoleBindingRouteDeps): Router {
  const router = Router();
  router.get('/v1/admin/role-bindings', async (_req, res) => {
    res.json({ role_bindings: (await deps.roleBindings.list()).map(view) });
  });
  router.post('/v1/admin/role-bindings', async (req, res) => {
    const { reason, ...binding } = parseWith(roleBindingCreateRequest, req.body);
    const created = await deps.roleBindings.create(binding, principalOf(req), reason);
    res.status(201).json(view(created));
  });
  router.delete('/v1/admin/role-bindings/:id', async (req, res) => {
    await deps.roleBindings.delete(String(req.params.id), principalOf(req), parseWith(roleBindingDeleteQuery, req.query).reason);
    res.status(204).end();
  });
  return router;
}
