import { Router } from 'express';
import { z } from 'zod';
import { validatePolicies, type PolicyStore } from '../../policy';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface PolicyRouteDeps {
  policies: Pick<PolicyStore, 'latest' | 'put'>;
}

export const policyBody = z.strictObject({ policies: z.string().max(60 * 1024) });

/** /v1/admin/policies: the policy set in force, and new versions of it. */
export function policiesRouter(deps: PolicyRouteDeps): Router {
  const router = Router();
  router.get('/v1/admin/policies', async (_req, res) => {
    const latest = await deps.policies.latest();
    res.json(latest ? { version: latest.version, policies: latest.text, created_at: latest.createdAt.toISOString(), created_by: latest.createdBy } : { version: 0, policies: '' });
  });
  // A new set is validated against the schema first (400 with Cedar's errors), then versioned; the next decision on every replica uses it.
  router.put('/v1/admin/policies', async (req, res) => {
    const version = await deps.policies.put(parseWith(policyBody, req.body).policies, principalOf(req));
    res.json({ version: version.version, created_at: version.createdAt.toISOString() });
  });
  // Validation alone, changing nothing (the console's validate-before-save): Cedar's errors, each with its policy and line.
  router.post('/v1/admin/policies/validate', (req, res) => {
    const checked = validatePolicies(parseWith(policyBody, req.body).policies);
    res.json(checked.ok ? { valid: true } : { valid: false, errors: checked.errors });
  });
  return router;
}
