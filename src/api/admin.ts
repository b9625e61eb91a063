import { Router, type Request } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../audit';
import { entrySchema, EntryError, type EntryLimits, type EntryStore, type RegistrationEntry } from '../attestation/entries';
import type { JoinTokens } from '../attestation/join-token';
import type { PreparedRotation } from '../ca/rotator';
import { requireAdmin, type AuthDeps } from './auth';
import { InvalidRequest, parseWith } from './validate';
import { resourceSchema, type Resource, type ResourceStore } from '../resources';
import type { PolicyStore } from '../policy';
import { revocationSelectorSchema, type RevocationSelector, type Revocations } from '../leases';

export interface AdminDeps extends AuthDeps {
  entries: EntryStore;
  joinTokens: JoinTokens;
  audit: AuditLog;
  limits: EntryLimits;
  resources: ResourceStore;
  policies: PolicyStore;
  revocations: Revocations;
  /** Prepares new CA and JWT authorities, signing after `overlap` seconds. */
  rotateCa: (overlap?: number) => Promise<PreparedRotation & { spiffeSequence: number }>;
}

/** The admin API's view of a resource. */
export function resourceView(r: Resource) {
  return { uri: r.uri, spiffe_id: r.spiffeId, tools: r.tools, created_at: r.createdAt.toISOString(), updated_at: r.updatedAt.toISOString() };
}

/** The admin API's view of an entry (snake_case, as it was written). */
export function entryView(e: RegistrationEntry) {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
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

const listQuery = z.strictObject({
  spiffe_id_prefix: z.string().max(2048).optional(),
  selector: z.string().max(1024).optional(),
  enabled: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
  after: z.uuid().optional(),
});

const rotateRequest = z.strictObject({ overlap: z.number().int().min(0).max(30 * 86400).optional() });

const revocationRequest = z.looseObject({ reason: z.string().min(1).max(512), dry_run: z.boolean().default(false) });
const leaseQuery = z.strictObject({
  jti: z.uuid().optional(),
  task_id: z.uuid().optional(),
  issuer: z.string().max(2048).optional(),
  subject: z.string().max(1024).optional(),
  sid: z.string().max(1024).optional(),
  connector: z.string().startsWith('spiffe://').max(2048).optional(),
  audience: z.string().max(2048).optional(),
  status: z.enum(['active', 'expired', 'revoked']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.uuid().optional(),
});

const MAX_JOIN_TOKEN_TTL = 7 * 86400;
const joinTokenRequest = z
  .strictObject({
    spiffe_id: z.string().max(2048).optional(),
    entry_id: z.uuid().optional(),
    ttl: z.number().int().min(1).max(MAX_JOIN_TOKEN_TTL).default(600),
  })
  .refine((r) => (r.spiffe_id === undefined) !== (r.entry_id === undefined), { message: 'give exactly one of spiffe_id and entry_id' });

/** /v1/admin: registration entries and join tokens. Every route needs an admin caller. */
export function adminRouter(deps: AdminDeps): Router {
  const router = Router();
  const schema = entrySchema(deps.limits);
  const actor = (req: Request) => req.principal ?? 'admin';
  router.use('/v1/admin', requireAdmin(deps));

  router.get('/v1/admin/entries', async (req, res) => {
    const q = parseWith(listQuery, req.query);
    const entries = await deps.entries.list({ spiffeIdPrefix: q.spiffe_id_prefix, selector: q.selector, enabled: q.enabled }, { limit: q.limit, after: q.after });
    res.json({ entries: entries.map(entryView), ...(entries.length === q.limit && { next_after: entries.at(-1)!.id }) });
  });

  router.post('/v1/admin/entries', async (req, res) => {
    const entry = await deps.entries.create(parseWith(schema, req.body));
    await deps.audit.append({ type: 'entry.created', actor: actor(req), details: { entryId: entry.id, spiffeId: entry.spiffeId, selectors: entry.selectors, admin: entry.admin } });
    res.status(201).location(`/v1/admin/entries/${entry.id}`).json(entryView(entry));
  });

  router.get('/v1/admin/entries/:id', async (req, res) => {
    res.json(entryView(await deps.entries.require(req.params.id)));
  });

  router.patch('/v1/admin/entries/:id', async (req, res) => {
    const patch = parseWith(schema.partial(), req.body);
    const fields = Object.keys(req.body ?? {});
    if (fields.length === 0) throw new EntryError(400, 'invalid-entry', 'the update names no field');
    // Only the fields the caller sent: the schema's defaults are for creation, not updates.
    const entry = await deps.entries.update(req.params.id, Object.fromEntries(fields.map((k) => [k, patch[k as keyof typeof patch]])));
    await deps.audit.append({ type: 'entry.updated', actor: actor(req), details: { entryId: entry.id, fields: fields.sort() } });
    res.json(entryView(entry));
  });

  router.delete('/v1/admin/entries/:id', async (req, res) => {
    await deps.entries.delete(req.params.id);
    await deps.audit.append({ type: 'entry.deleted', actor: actor(req), details: { entryId: req.params.id } });
    res.status(204).end();
  });

  router.post('/v1/admin/join-tokens', async (req, res) => {
    const body = parseWith(joinTokenRequest, req.body);
    let entry: RegistrationEntry;
    if (body.entry_id !== undefined) entry = await deps.entries.require(body.entry_id);
    else {
      const named = await deps.entries.bySpiffeId(body.spiffe_id!);
      if (named.length === 0) throw new EntryError(404, 'entry-not-found', `no registration entry for ${body.spiffe_id}`);
      if (named.length > 1) throw new EntryError(400, 'invalid-entry', `${named.length} entries name ${body.spiffe_id}; give entry_id`);
      entry = named[0]!;
    }
    if (!entry.enabled) throw new EntryError(400, 'invalid-entry', `the entry for ${entry.spiffeId} is disabled`);
    const issued = await deps.joinTokens.create(entry.id, body.ttl);
    await deps.audit.append({ type: 'join_token.created', actor: actor(req), details: { entryId: entry.id, spiffeId: entry.spiffeId, expiresAt: issued.expiresAt.toISOString() } });
    res.status(201).setHeader('Cache-Control', 'no-store');
    res.json({ token: issued.token, expires_at: issued.expiresAt.toISOString(), entry_id: entry.id, spiffe_id: entry.spiffeId });
  });

  const resourceBody = resourceSchema(deps.limits.trustDomain);
  router.get('/v1/admin/resources', async (_req, res) => {
    res.json({ resources: (await deps.resources.list()).map(resourceView) });
  });
  router.post('/v1/admin/resources', async (req, res) => {
    const resource = await deps.resources.create(parseWith(resourceBody, req.body));
    await deps.audit.append({ type: 'resource.created', actor: actor(req), details: { uri: resource.uri, spiffeId: resource.spiffeId, tools: resource.tools.map((t) => t.name) } });
    res.status(201).location(`/v1/admin/resources/${encodeURIComponent(resource.uri)}`).json(resourceView(resource));
  });
  // The resource URI is the path segment, percent-encoded.
  router.get('/v1/admin/resources/:uri', async (req, res) => {
    res.json(resourceView(await deps.resources.require(req.params.uri)));
  });
  router.patch('/v1/admin/resources/:uri', async (req, res) => {
    const patch = parseWith(resourceBody.omit({ uri: true }).partial(), req.body);
    const fields = Object.keys(req.body ?? {});
    if (fields.length === 0) throw new InvalidRequest('the update names no field');
    const resource = await deps.resources.update(req.params.uri, { ...(fields.includes('spiffe_id') && { spiffe_id: patch.spiffe_id }), ...(fields.includes('tools') && { tools: patch.tools }) });
    await deps.audit.append({ type: 'resource.updated', actor: actor(req), details: { uri: resource.uri, fields: fields.sort() } });
    res.json(resourceView(resource));
  });
  router.delete('/v1/admin/resources/:uri', async (req, res) => {
    await deps.resources.delete(req.params.uri);
    await deps.audit.append({ type: 'resource.deleted', actor: actor(req), details: { uri: req.params.uri } });
    res.status(204).end();
  });

  router.get('/v1/admin/policies', async (_req, res) => {
    const latest = await deps.policies.latest();
    res.json(latest ? { version: latest.version, policies: latest.text, created_at: latest.createdAt.toISOString(), created_by: latest.createdBy } : { version: 0, policies: '' });
  });
  // A new set is validated against the schema first (400 with Cedar's errors), then versioned; the next decision on every replica uses it.
  router.put('/v1/admin/policies', async (req, res) => {
    const body = parseWith(z.strictObject({ policies: z.string().max(60 * 1024) }), req.body);
    const version = await deps.policies.put(body.policies, actor(req));
    await deps.audit.append({ type: 'policy.updated', actor: actor(req), details: { version: version.version } });
    res.json({ version: version.version, created_at: version.createdAt.toISOString() });
  });

  // Revoke by any handle; `dry_run` shows the blast radius instead. Acknowledged only once durable.
  router.post('/v1/admin/revocations', async (req, res) => {
    const { reason, dry_run: dryRun, ...rest } = parseWith(revocationRequest, req.body);
    const selector = parseWith(revocationSelectorSchema, rest);
    if (dryRun) return res.json({ dry_run: true, ...(await deps.revocations.dryRun(selector)) });
    // The revocation and its audit row commit together, before the answer.
    return res.json({ revoked: await deps.revocations.revoke(selector, reason, undefined, actor(req)) });
  });

  router.get('/v1/admin/leases', async (req, res) => {
    const q = parseWith(leaseQuery, req.query);
    // Every filter given must be used: a partial one (a subject without its issuer, say) would list everything.
    const given = ['jti', 'task_id', 'issuer', 'subject', 'sid', 'connector', 'audience'].filter((k) => q[k as keyof typeof q] !== undefined);
    const combos = [['jti'], ['task_id'], ['issuer', 'sid'], ['issuer', 'subject'], ['issuer', 'subject', 'connector'], ['connector'], ['audience'], []];
    if (!combos.some((c) => c.length === given.length && c.every((k) => given.includes(k)))) {
      throw new InvalidRequest('filter by one of: jti; task_id; issuer+sid; issuer+subject (+connector); connector; audience');
    }
    const selector =
      q.jti !== undefined ? { jti: q.jti }
      : q.task_id !== undefined ? { task_id: q.task_id }
      : q.sid !== undefined && q.issuer !== undefined ? { session: { issuer: q.issuer, sid: q.sid } }
      : q.subject !== undefined && q.issuer !== undefined ? { user: { issuer: q.issuer, subject: q.subject }, ...(q.connector !== undefined && { connector: q.connector }) }
      : q.connector !== undefined ? { connector: q.connector }
      : q.audience !== undefined ? { audience: q.audience }
      : undefined;
    const rows = await deps.revocations.find(selector as RevocationSelector | undefined, q.status, { limit: q.limit, ...(q.before !== undefined && { before: q.before }) });
    res.json({
      leases: rows.map((l) => ({
        jti: l.id, kind: l.kind, spiffe_id: l.spiffeId, subject: l.subject, subject_issuer: l.subjectIssuer, sid: l.sid, task_id: l.taskId, audience: l.audience,
        serial: l.serial, issued_at: l.issuedAt.toISOString(), expires_at: l.expiresAt.toISOString(), revoked_at: l.revokedAt?.toISOString() ?? null, revocation_reason: l.revocationReason,
      })),
      ...(rows.length === q.limit && { next_before: rows.at(-1)!.id }),
    });
  });

  // The kill switch: the connector's entries are disabled and everything it holds is revoked.
  /** The connector a path names (one SPIFFE ID, percent-encoded) that has entries, and the reason given. */
  const connectorAndReason = async (req: Request, fallback: string) => {
    const spiffeId = String(req.params.spiffe_id);
    if (!spiffeId.startsWith('spiffe://') || spiffeId.endsWith('/')) throw new InvalidRequest('the path names one connector by its percent-encoded SPIFFE ID');
    if ((await deps.entries.bySpiffeId(spiffeId)).length === 0) throw new EntryError(404, 'entry-not-found', `no registration entry for ${spiffeId}`);
    const { reason } = parseWith(z.strictObject({ reason: z.string().min(1).max(512).default(fallback) }), req.body);
    return { spiffeId, reason };
  };

  router.post('/v1/admin/connectors/:spiffe_id/disable', async (req, res) => {
    const { spiffeId, reason } = await connectorAndReason(req, 'connector disabled');
    const result = await deps.revocations.disableConnector(spiffeId, reason, actor(req));
    res.json({ spiffe_id: spiffeId, entries_disabled: result.entries, leases_revoked: result.leases });
  });

  router.post('/v1/admin/connectors/:spiffe_id/enable', async (req, res) => {
    const { spiffeId, reason } = await connectorAndReason(req, 'connector enabled');
    const result = await deps.revocations.enableConnector(spiffeId, reason, actor(req));
    res.json({ spiffe_id: spiffeId, entries_enabled: result.entries });
  });

  router.post('/v1/admin/ca/rotate', async (req, res) => {
    const body = parseWith(rotateRequest, req.body);
    const prepared = await deps.rotateCa(body.overlap);
    await deps.audit.append({ type: 'ca.rotation_requested', actor: actor(req), details: { overlap: body.overlap ?? null } });
    res.status(202).json({
      x509_authority: prepared.x509Authority,
      jwt_authority: prepared.jwtAuthority,
      activates_at: prepared.activatesAt.toISOString(),
      spiffe_sequence: prepared.spiffeSequence,
    });
  });

  return router;
}
