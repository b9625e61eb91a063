import { Router } from 'express';
import { z } from 'zod';
import { revocationSelectorSchema, type Revocations } from '../../leases';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface RevocationRouteDeps {
  revocations: Pick<Revocations, 'dryRun' | 'revoke'>;
}

export const revocationRequest = z.looseObject({ reason: z.string().min(1).max(512), dry_run: z.boolean().default(false) });

/** POST /v1/admin/revocations: revoke by any handle; `dry_run` shows the blast radius instead. Acknowledged only once durable. */
export function revocationsRouter(deps: RevocationRouteDeps): Router {
  const router = Router();
  router.post('/v1/admin/revocations', async (req, res) => {
    const { reason, dry_run: dryRun, ...rest } = parseWith(revocationRequest, req.body);
    const selector = parseWith(revocationSelectorSchema, rest);
    if (dryRun) return res.json({ dry_run: true, ...(await deps.revocations.dryRun(selector)) });
    // The revocation and its audit row commit together, before the answer.
    // An admin revoking a user (not only through one connector) also revokes the vault's grants of providers whose revoke_on says "user".
    const cause = 'user' in selector && !('connector' in selector) ? ('user' as const) : undefined;
    return res.json({ revoked: await deps.revocations.revoke(selector, reason, undefined, principalOf(req), undefined, cause) });
  });
  return router;
}
