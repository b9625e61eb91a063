import { Router } from 'express';
import { z } from 'zod';
import type { JoinTokens } from '../../attestation/join-token';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface JoinTokenRouteDeps {
  joinTokens: Pick<JoinTokens, 'issue'>;
}

const MAX_JOIN_TOKEN_TTL = 7 * 86400;
export const joinTokenRequest = z
  .strictObject({
    spiffe_id: z.string().max(2048).optional(),
    entry_id: z.uuid().optional(),
    ttl: z.number().int().min(1).max(MAX_JOIN_TOKEN_TTL).default(600),
  })
  .refine((r) => (r.spiffe_id === undefined) !== (r.entry_id === undefined), { message: 'give exactly one of spiffe_id and entry_id' });

/** POST /v1/admin/join-tokens: a one-time token for an entry, shown once. */
export function joinTokensRouter(deps: JoinTokenRouteDeps): Router {
  const router = Router();
  router.post('/v1/admin/join-tokens', async (req, res) => {
    const body = parseWith(joinTokenRequest, req.body);
    const issued = await deps.joinTokens.issue(body.entry_id !== undefined ? { entryId: body.entry_id } : { spiffeId: body.spiffe_id! }, body.ttl, principalOf(req));
    res.status(201).setHeader('Cache-Control', 'no-store');
    res.json({ token: issued.token, expires_at: issued.expiresAt.toISOString(), entry_id: issued.entry.id, spiffe_id: issued.entry.spiffeId });
  });
  return router;
}
