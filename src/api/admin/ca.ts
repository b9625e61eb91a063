import { Router } from 'express';
import { z } from 'zod';
import type { PreparedRotation } from '../../ca/rotator';
import { principalOf } from '../auth';
import { parseWith } from '../validate';

export interface CaRouteDeps {
  /** Prepares new CA and JWT authorities, signing after `overlap` seconds; records the request (ca.rotation_requested) with `actor`. */
  rotateCa: (overlap: number | undefined, actor: string) => Promise<PreparedRotation & { spiffeSequence: number }>;
}

export const rotateRequest = z.strictObject({ overlap: z.number().int().min(0).max(30 * 86400).optional() });

/** POST /v1/admin/ca/rotate: prepare the next authorities now; they activate after the overlap (202). */
export function caRouter(deps: CaRouteDeps): Router {
  const router = Router();
  router.post('/v1/admin/ca/rotate', async (req, res) => {
    const prepared = await deps.rotateCa(parseWith(rotateRequest, req.body).overlap, principalOf(req));
    res.status(202).json({
      x509_authority: prepared.x509Authority,
      jwt_authority: prepared.jwtAuthority,
      activates_at: prepared.activatesAt.toISOString(),
      spiffe_sequence: prepared.spiffeSequence,
    });
  });
  return router;
}
