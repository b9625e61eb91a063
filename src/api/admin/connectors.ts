import { Router, type Request } from 'express';
import { z } from 'zod';
import type { EntryStore } from '../../attestation/entries';
import type { Revocations } from '../../leases';
import { principalOf } from '../auth';
import { InvalidRequest, parseWith } from '../validate';

export interface ConnectorRouteDeps {
  entries: Pick<EntryStore, 'requireConnector'>;
  revocations: Pick<Revocations, 'disableConnector' | 'enableConnector'>;
}

/** /v1/admin/connectors/{spiffe_id}: the kill switch. Disabling disables the connector's entries and revokes everything it holds. */
export function connectorsRouter(deps: ConnectorRouteDeps): Router {
  const router = Router();

  /** The connector a path names (one SPIFFE ID, percent-encoded) that has entries, and the reason given. */
  const connectorAndReason = async (req: Request, fallback: string) => {
    const spiffeId = String(req.params.spiffe_id);
    if (!spiffeId.startsWith('spiffe://') || spiffeId.endsWith('/')) throw new InvalidRequest('the path names one connector by its percent-encoded SPIFFE ID');
    await deps.entries.requireConnector(spiffeId);
    const { reason } = parseWith(z.strictObject({ reason: z.string().min(1).max(512).default(fallback) }), req.body);
    return { spiffeId, reason };
  };

  router.post('/v1/admin/connectors/:spiffe_id/disable', async (req, res) => {
    const { spiffeId, reason } = await connectorAndReason(req, 'connector disabled');
    const result = await deps.revocations.disableConnector(spiffeId, reason, principalOf(req));
    res.json({ spiffe_id: spiffeId, entries_disabled: result.entries, leases_revoked: result.leases });
  });

  router.post('/v1/admin/connectors/:spiffe_id/enable', async (req, res) => {
    const { spiffeId, reason } = await connectorAndReason(req, 'connector enabled');
    const result = await deps.revocations.enableConnector(spiffeId, reason, principalOf(req));
    res.json({ spiffe_id: spiffeId, entries_enabled: result.entries });
  });

  return router;
}
