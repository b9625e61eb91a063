import { Router } from 'express';
import { resourceSchema, type Resource, type ResourceStore } from '../../resources';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface ResourceRouteDeps {
  resources: Pick<ResourceStore, 'list' | 'create' | 'require' | 'update' | 'delete'>;
  trustDomain: string;
}

/** The admin API's view of a resource. */
export function resourceView(r: Resource) {
  return { uri: r.uri, spiffe_id: r.spiffeId, tools: r.tools, created_at: r.createdAt.toISOString(), updated_at: r.updatedAt.toISOString() };
}

/** /v1/admin/resources: protected resources (MCP servers); the resource URI is the path segment, percent-encoded. */
export function resourcesRouter(deps: ResourceRouteDeps): Router {
  const router = Router();
  const body = resourceSchema(deps.trustDomain);
  const patchBody = body.omit({ uri: true }).partial();

  router.get('/v1/admin/resources', async (_req, res) => {
    res.json({ resources: (await deps.resources.list()).map(resourceView) });
  });
  router.post('/v1/admin/resources', async (req, res) => {
    const resource = await deps.resources.create(parseWith(body, req.body), principalOf(req));
    res.status(201).location(`/v1/admin/resources/${encodeURIComponent(resource.uri)}`).json(resourceView(resource));
  });
  router.get('/v1/admin/resources/:uri', async (req, res) => {
    res.json(resourceView(await deps.resources.require(req.params.uri)));
  });
  router.patch('/v1/admin/resources/:uri', async (req, res) => {
    const patch = parseWith(patchBody, req.body);
    const sent = Object.keys(req.body ?? {});
    const fields = { ...(sent.includes('spiffe_id') && { spiffe_id: patch.spiffe_id }), ...(sent.includes('tools') && { tools: patch.tools }) };
    res.json(resourceView(await deps.resources.update(req.params.uri, fields, principalOf(req))));
  });
  router.delete('/v1/admin/resources/:uri', async (req, res) => {
    await deps.resources.delete(req.params.uri, principalOf(req));
    res.status(204).end();
  });
  return router;
}
