import { Router } from 'express';
import type { TaskStore } from '../leases';
import { requireSvid, type AuthDeps } from './auth';

export interface TaskRouteDeps extends Omit<AuthDeps, 'admin' | 'entries'> {
  tasks: TaskStore;
}

/** POST /v1/tasks/{id}/end: the task's connector ends it; every token of the task is revoked first. */
export function tasksRouter(deps: TaskRouteDeps): Router {
  const router = Router();
  router.post('/v1/tasks/:id/end', requireSvid(deps), async (req, res) => {
    const id = String(req.params.id);
    const { revoked } = await deps.tasks.end(id, req.svid!.spiffeId); // audited in its transaction
    res.json({ task_id: id, revoked });
  });
  return router;
}
