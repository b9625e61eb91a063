import { Router } from 'express';
import { z } from 'zod';
import { entrySchema, type EntryLimits, type EntryStore, type RegistrationEntry } from '../../attestation/entries';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface EntryRouteDeps {
  entries: Pick<EntryStore, 'list' | 'create' | 'require' | 'update' | 'delete'>;
  limits: EntryLimits;
}

/** The admin API's view of an entry (snake_case, as it was written). */
export function entryView(e: RegistrationEntry) {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    ...(e.parentId !== undefined && { parent_id: e.parentId }),
    selectors: e.selectors,
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: e.dnsNames,
    admin: e.admin,
    enabled: e.enabled,
    metadata: e.metadata,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}

export const entryListQuery = z.strictObject({
  spiffe_id_prefix: z.string().max(2048).optional(),
  selector: z.string().max(1024).optional(),
  enabled: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
  after: z.uuid().optional(),
});

/** /v1/admin/entries: registration entries (the store records each change with its audit event). */
export function entriesRouter(deps: EntryRouteDeps): Router {
  const router = Router();
  const schema = entrySchema(deps.limits);

  router.get('/v1/admin/entries', async (req, res) => {
    const q = parseWith(entryListQuery, req.query);
    const entries = await deps.entries.list({ spiffeIdPrefix: q.spiffe_id_prefix, selector: q.selector, enabled: q.enabled }, { limit: q.limit, after: q.after });
    res.json({ entries: entries.map(entryView), ...(entries.length === q.limit && { next_after: entries.at(-1)!.id }) });
  });

  router.post('/v1/admin/entries', async (req, res) => {
    const entry = await deps.entries.create(parseWith(schema, req.body), principalOf(req));
    res.status(201).location(`/v1/admin/entries/${entry.id}`).json(entryView(entry));
  });

  router.get('/v1/admin/entries/:id', async (req, res) => {
    res.json(entryView(await deps.entries.require(req.params.id)));
  });

  router.patch('/v1/admin/entries/:id', async (req, res) => {
    const patch = parseWith(schema.partial(), req.body);
    // Only the fields the caller sent: the schema's defaults are for creation, not updates.
    const sent = Object.fromEntries(Object.keys(req.body ?? {}).map((k) => [k, patch[k as keyof typeof patch]]));
    res.json(entryView(await deps.entries.update(req.params.id, sent, principalOf(req))));
  });

  router.delete('/v1/admin/entries/:id', async (req, res) => {
    await deps.entries.delete(req.params.id, principalOf(req));
    res.status(204).end();
  });

  return router;
}
