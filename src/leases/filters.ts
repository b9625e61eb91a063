import { z } from 'zod';
import type { RevocationSelector } from './revocations';

/** The filters a lease listing may combine: each combination names one selector (or none: every lease). */
const COMBINATIONS = [['jti'], ['task_id'], ['issuer', 'sid'], ['issuer', 'subject'], ['issuer', 'subject', 'connector'], ['connector'], ['audience'], []] as const;
const FILTERS = ['jti', 'task_id', 'issuer', 'subject', 'sid', 'connector', 'audience'] as const;

/** A lease listing: which leases (a selector, or all), in which state, one page of them. */
export interface LeaseListing {
  readonly selector: RevocationSelector | undefined;
  readonly status: 'active' | 'expired' | 'revoked' | undefined;
  readonly page: { readonly limit: number; readonly before?: string };
}

/**
 * The query of a lease listing (`jti`, `task_id`, `issuer`+`sid`, `issuer`+`subject` (+`connector`),
 * `connector`, `audience`; `status`; `limit`, `before`), as the selector it names. Every filter
 * given must be used: a partial one (a subject without its issuer, say) would list everything.
 */
export const leaseListingSchema = z
  .strictObject({
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
  })
  .transform((q, ctx): LeaseListing => {
    const given: string[] = FILTERS.filter((k) => q[k] !== undefined);
    if (!COMBINATIONS.some((c) => c.length === given.length && c.every((k) => given.includes(k)))) {
      ctx.addIssue({ code: 'custom', message: 'filter by one of: jti; task_id; issuer+sid; issuer+subject (+connector); connector; audience' });
      return z.NEVER;
    }
    return { selector: selectorOf(q), status: q.status, page: { limit: q.limit, ...(q.before !== undefined && { before: q.before }) } };
  });

function selectorOf(q: { [K in (typeof FILTERS)[number]]?: string }): RevocationSelector | undefined {
  if (q.jti !== undefined) return { jti: q.jti };
  if (q.task_id !== undefined) return { task_id: q.task_id };
  if (q.sid !== undefined && q.issuer !== undefined) return { session: { issuer: q.issuer, sid: q.sid } };
  if (q.subject !== undefined && q.issuer !== undefined) return { user: { issuer: q.issuer, subject: q.subject }, ...(q.connector !== undefined && { connector: q.connector }) };
  if (q.connector !== undefined) return { connector: q.connector };
  if (q.audience !== undefined) return { audience: q.audience };
  return undefined;
}
