import { Router, type Response } from 'express';
import { z } from 'zod';
import type { AuditFilter, AuditReader, AuditRecord } from '../../audit';
import { parseWith } from '../validate';

export interface AuditRouteDeps {
  auditReader: Pick<AuditReader, 'list' | 'verify' | 'batches'>;
}

/** The audit API's view of an event: snake_case, with both hashes so a reader can check the chain. */
export function auditEventView(e: AuditRecord) {
  return {
    seq: e.seq,
    at: e.at.toISOString(),
    type: e.type,
    subject: e.subject ?? null,
    subject_issuer: e.subjectIssuer ?? null,
    actor: e.actor ?? null,
    details: e.details ?? {},
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

const seqCursor = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, 'must be an event seq (a positive integer)')
  .transform(Number)
  .refine(Number.isSafeInteger, 'must be an event seq (a positive integer)');
const isoTime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time with Z or an offset' }).transform((s) => new Date(s));
const filterFields = {
  /** Exact, or a prefix with a trailing `*` (`entry.*`). */
  type: z.string().min(1).max(200).regex(/^[^*]*\*?$/, 'only a trailing * (a prefix match) is allowed').optional(),
  subject: z.string().min(1).max(2048).optional(),
  subject_issuer: z.string().min(1).max(2048).optional(),
  actor: z.string().min(1).max(2048).optional(),
  task_id: z.uuid().optional(),
  jti: z.string().min(1).max(200).optional(),
  since: isoTime.optional(),
  until: isoTime.optional(),
};
const sinceBeforeUntil = (q: { since?: Date; until?: Date }) => q.since === undefined || q.until === undefined || q.since <= q.until;
const timeOrder = { message: 'since must not be after until', path: ['since'] };

const listQuery = z
  .strictObject({ ...filterFields, limit: z.coerce.number().int().min(1).max(1000).default(100), before: seqCursor.optional() })
  .refine(sinceBeforeUntil, timeOrder);
const exportQuery = z.strictObject({ ...filterFields, after: seqCursor.optional(), before: seqCursor.optional() }).refine(sinceBeforeUntil, timeOrder);

function filterOf(q: z.output<typeof listQuery> | z.output<typeof exportQuery>): AuditFilter {
  const prefix = q.type?.endsWith('*');
  return {
    ...(q.type !== undefined && (prefix ? { typePrefix: q.type.slice(0, -1) } : { type: q.type })),
    ...(q.subject !== undefined && { subject: q.subject }),
    ...(q.subject_issuer !== undefined && { subjectIssuer: q.subject_issuer }),
    ...(q.actor !== undefined && { actor: q.actor }),
    ...(q.task_id !== undefined && { taskId: q.task_id }),
    ...(q.jti !== undefined && { jti: q.jti }),
    ...(q.since !== undefined && { since: q.since }),
    ...(q.until !== undefined && { until: q.until }),
  };
}

/** Resolves when `res` can take more (drain) or will never take more (close). */
const writable = (res: Response) =>
  new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });

/**
 * /v1/admin/audit: the audit trail for admins. `GET /v1/admin/audit` lists events newest
 * first (filters, `before` cursor); `/verify` walks the hash chain; `/export` streams JSON
 * Lines in chain order for a SIEM.
 */
export function auditRouter(deps: AuditRouteDeps): Router {
  const router = Router();

  router.get('/v1/admin/audit', async (req, res) => {
    const q = parseWith(listQuery, req.query);
    const page = await deps.auditReader.list(filterOf(q), { limit: q.limit, ...(q.before !== undefined && { before: q.before }) });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ events: page.events.map(auditEventView), ...(page.nextBefore !== undefined && { next_before: page.nextBefore }) });
  });

  router.get('/v1/admin/audit/verify', async (_req, res) => {
    const v = await deps.auditReader.verify();
    res.setHeader('Cache-Control', 'no-store');
    res.json(v.ok ? { ok: true, events: v.events, head: v.head } : { ok: false, broken_at: v.brokenAt, reason: v.reason, events_checked: v.eventsChecked });
  });

  router.get('/v1/admin/audit/export', async (req, res) => {
    const q = parseWith(exportQuery, req.query);
    const batches = deps.auditReader.batches(filterOf(q), { ...(q.after !== undefined && { after: q.after }), ...(q.before !== undefined && { before: q.before }) });
    let closed = false;
    res.on('close', () => (closed = true));
    // The first batch is read before the status is sent: a database that fails now is a problem answer, not an empty export.
    let batch = await batches.next();
    res.status(200).setHeader('Content-Type', 'application/x-ndjson');
    res.setHeader('Cache-Control', 'no-store');
    res.flushHeaders();
    // A later failure propagates: the error handler then cuts the connection, so a truncated export never looks complete.
    while (!batch.done) {
      for (const e of batch.value) {
        if (closed) return void (await batches.return()); // the client went away
        if (!res.write(`${JSON.stringify(auditEventView(e))}\n`) && !closed) await writable(res);
      }
      batch = await batches.next();
    }
    res.end();
  });

  return router;
}
