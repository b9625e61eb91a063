import { Router } from 'express';
import { z } from 'zod';
import { validatePolicies, type PolicyStore, type PolicyVersionSummary } from '../../policy';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface PolicyRouteDeps {
  policies: Pick<PolicyStore, 'latest' | 'put' | 'versions' | 'version'>;
}

const text = z.string().max(60 * 1024);
export const policyBody = z.strictObject({ policies: text });
/** A new version, and why (the console always asks; recorded with the version and in its audit event). */
export const policyPutBody = z.strictObject({ policies: text, reason: z.string().min(1).max(512).optional() });
export const policyHistoryQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: z.coerce.number().int().min(1).optional(),
});
const versionParam = z.strictObject({ version: z.coerce.number().int().min(1).max(2 ** 31 - 1) });

const summaryView = (v: PolicyVersionSummary) => ({ version: v.version, sha256: v.sha256, created_at: v.createdAt.toISOString(), created_by: v.createdBy, reason: v.reason ?? null });

/** /v1/admin/policies: the policy set in force, its history, and new versions of it. */
export function policiesRouter(deps: PolicyRouteDeps): Router {
  const router = Router();
  router.get('/v1/admin/policies', async (_req, res) => {
    const latest = await deps.policies.latest();
    res.json(latest ? { version: latest.version, policies: latest.text, created_at: latest.createdAt.toISOString(), created_by: latest.createdBy } : { version: 0, policies: '' });
  });
  // A new set is validated against the schema first (400 with Cedar's errors), then versioned; the next decision on every replica uses it.
  router.put('/v1/admin/policies', async (req, res) => {
    const body = parseWith(policyPutBody, req.body);
    const version = await deps.policies.put(body.policies, principalOf(req), body.reason);
    res.json({ version: version.version, created_at: version.createdAt.toISOString() });
  });
  // Validation alone, changing nothing (the console's validate-before-save): Cedar's errors, each with its policy and line.
  router.post('/v1/admin/policies/validate', (req, res) => {
    const checked = validatePolicies(parseWith(policyBody, req.body).policies);
    res.json(checked.ok ? { valid: true } : { valid: false, errors: checked.errors });
  });
  router.get('/v1/admin/policies/versions', async (req, res) => {
    const q = parseWith(policyHistoryQuery, req.query);
    const versions = await deps.policies.versions({ limit: q.limit, ...(q.before !== undefined && { before: q.before }) });
    res.json({ versions: versions.map(summaryView), ...(versions.length === q.limit && { next_before: versions.at(-1)!.version }) });
  });
  router.get('/v1/admin/policies/versions/:version', async (req, res) => {
    const { version } = parseWith(versionParam, req.params);
    const found = await deps.policies.version(version);
    res.json({ ...summaryView(found), policies: found.text });
  });
  return router;
}
