import { Router } from 'express';
import { z } from 'zod';
import { REPORTED_OUTCOMES, type TaskEventStore, type TaskStore } from '../leases';
import { TOOL_ACTIONS, CLASSIFICATIONS } from '../policy/schema';
import type { Resource, ResourceStore } from '../resources';
import { requireSvid, type AuthDeps } from './auth';
import { InvalidRequest, parseWith } from './validate';

export interface TaskRouteDeps extends Omit<AuthDeps, 'admin' | 'entries'> {
  tasks: TaskStore;
  /** Where resource servers' reports of their calls go (task history). */
  events: Pick<TaskEventStore, 'report'>;
  resources: Pick<ResourceStore, 'get' | 'list'>;
}

/** How far in the future a reported call may be dated (the servers' clocks drift a little). */
const FUTURE_SKEW_MS = 60_000;

/** `POST /v1/task-events`: a resource server's report of the `tools/call` requests it let through. */
export const taskEventsSchema = z.strictObject({
  /** The resource the calls were made on; may be left out by a server registered for one resource. */
  server: z.string().min(1).max(2048).optional(),
  events: z
    .array(
      z.strictObject({
        task_id: z.uuid(),
        call_id: z.string().regex(/^[\x21-\x7e]{1,128}$/, { message: 'the server\'s id of the call: 1 to 128 visible ASCII characters' }),
        tool: z.string().min(1).max(128),
        actions: z.array(z.enum(TOOL_ACTIONS)).min(1).optional(),
        classification: z.enum(CLASSIFICATIONS).optional(),
        resource: z.string().min(1).max(1024).optional(),
        outcome: z.enum(REPORTED_OUTCOMES),
        occurred_at: z.iso.datetime({ offset: true }),
      }),
    )
    .min(1)
    .max(500),
});

/**
 * POST /v1/tasks/{id}/end: the task's connector ends it; every token of the task is revoked first.
 * POST /v1/task-events: a registered resource server (by its X.509-SVID) reports its calls.
 */
export function tasksRouter(deps: TaskRouteDeps): Router {
  const router = Router();
  router.post('/v1/tasks/:id/end', requireSvid(deps), async (req, res) => {
    const id = String(req.params.id);
    const { revoked } = await deps.tasks.end(id, req.svid!.spiffeId); // audited in its transaction
    res.json({ task_id: id, revoked });
  });

  router.post('/v1/task-events', requireSvid(deps), async (req, res) => {
    const body = parseWith(taskEventsSchema, req.body);
    const reporter = req.svid!.spiffeId;
    const server = await reportingServer(deps.resources, reporter, body.server);
    const latest = deps.clock.now().getTime() + FUTURE_SKEW_MS;
    const reports = body.events.map((e, i) => {
      const occurredAt = new Date(e.occurred_at);
      if (occurredAt.getTime() > latest) throw new InvalidRequest(`events[${i}].occurred_at: a call cannot be reported before it happens`);
      return {
        taskId: e.task_id,
        callId: e.call_id,
        tool: e.tool,
        outcome: e.outcome,
        occurredAt,
        ...(e.actions !== undefined && { actions: e.actions }),
        ...(e.classification !== undefined && { classification: e.classification }),
        ...(e.resource !== undefined && { resource: e.resource }),
      };
    });
    res.setHeader('Cache-Control', 'no-store');
    res.json(await deps.events.report(server, reporter, reports)); // durable, and audited, before the answer
  });
  return router;
}

/** The resource whose calls the caller reports: the one it names, which must be its own, or the one registered for its SVID. */
async function reportingServer(resources: TaskRouteDeps['resources'], reporter: string, named: string | undefined): Promise<Resource> {
  if (named !== undefined) {
    const r = await resources.get(named);
    if (!r) throw new InvalidRequest(`server: ${named.slice(0, 256)} is not a registered resource`);
    if (r.spiffeId !== reporter) throw new InvalidRequest('server: only the resource server itself (its SVID) reports its calls');
    return r;
  }
  const owned = (await resources.list()).filter((r) => r.spiffeId === reporter);
  if (owned.length === 0) throw new InvalidRequest('server: the caller is not a registered resource server');
  if (owned.length > 1) throw new InvalidRequest('server: several resources are registered for this SVID; name the one the calls were made on');
  return owned[0]!;
}
