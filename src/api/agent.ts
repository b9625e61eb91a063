import { Router } from 'express';
import { z } from 'zod';
import type { SvidIssuer } from '../attestation/issuer';
import { toPemBundle } from '../spiffe/bundle';
import { requireSvid, type AuthDeps } from './auth';
import { jwtSvidRequest } from './svid';
import { parseWith } from './validate';

export interface AgentRouteDeps extends Omit<AuthDeps, 'admin' | 'entries'> {
  issuer: SvidIssuer;
  /** Serials of the revoked, unexpired X.509-SVIDs of these entries. */
  revokedSerials: (entryIds: readonly string[]) => Promise<string[]>;
}

const entryId = z.uuid();
export const workloadX509SvidRequest = z.strictObject({ entry_id: entryId, csr: z.string().min(1).max(16 * 1024) });
export const workloadJwtSvidRequest = jwtSvidRequest.extend({ entry_id: entryId });

/**
 * The node agent's API (`writ agent`, over mTLS with the agent's own X.509-SVID): the workload
 * entries it serves (with the serials of their revoked SVIDs), and SVIDs for them. The agent attests its callers on the node and
 * generates their keys there; the broker signs only for entries whose parent_id is the agent.
 */
export function agentRouter(deps: AgentRouteDeps): Router {
  const router = Router();

  router.get('/v1/agent/entries', requireSvid(deps), async (req, res) => {
    const entries = await deps.issuer.agentEntries(req.svid!);
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      entries: entries.map((e) => ({ id: e.id, spiffe_id: e.spiffeId, selectors: e.selectors, x509_svid_ttl: e.x509SvidTtl, jwt_svid_ttl: e.jwtSvidTtl, dns_names: e.dnsNames, updated_at: e.updatedAt.toISOString() })),
      // The agent stops serving these at once, and fetches successors.
      revoked_serials: await deps.revokedSerials(entries.map((e) => e.id)),
    });
  });

  router.post('/v1/agent/x509-svid', requireSvid(deps), async (req, res) => {
    const body = parseWith(workloadX509SvidRequest, req.body);
    const issued = await deps.issuer.workloadX509Svid(req.svid!, body.entry_id, body.csr);
    res.status(201).setHeader('Cache-Control', 'no-store');
    res.json({ spiffe_id: issued.spiffeId, svid: issued.chainPem, expires_at: issued.svid.notAfter.toISOString(), bundle: toPemBundle(issued.bundle) });
  });

  router.post('/v1/agent/jwt-svid', requireSvid(deps), async (req, res) => {
    const body = parseWith(workloadJwtSvidRequest, req.body);
    const jwt = await deps.issuer.workloadJwtSvid(req.svid!, body.entry_id, body.audience);
    res.status(201).setHeader('Cache-Control', 'no-store');
    res.json({ token: jwt.token, spiffe_id: jwt.spiffeId, expires_at: jwt.expiresAt.toISOString() });
  });

  return router;
}
