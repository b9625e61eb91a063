import { Router } from 'express';
import { z } from 'zod';
import type { IssuedX509Svid, SvidIssuer } from '../attestation/issuer';
import { toPemBundle } from '../spiffe/bundle';
import { requireSvid, type AuthDeps } from './auth';
import { peerCertificates } from './peer';
import { parseWith } from './validate';

export interface SvidRouteDeps extends Omit<AuthDeps, 'admin' | 'entries'> {
  issuer: SvidIssuer;
  /** The signed list of revoked, unexpired X.509-SVID serials (a JWS). */
  denylist: () => Promise<string>;
}

const csr = z.string().min(1).max(16 * 1024);
export const attestRequest = z.strictObject({
  attestor: z.string().min(1).max(64),
  evidence: z.record(z.string(), z.unknown()).default({}),
  csr,
});
export const renewRequest = z.strictObject({ csr });
export const jwtSvidRequest = z.strictObject({
  audience: z.array(z.string().min(1).max(1024)).min(1).max(16), // JWT-SVID §3.2: at least one audience
});

/** /v1/attest, /v1/svid/renew (mTLS) and /v1/jwt-svid (mTLS). */
export function svidRouter(deps: SvidRouteDeps): Router {
  const router = Router();
  const answer = (issued: IssuedX509Svid) => ({
    spiffe_id: issued.spiffeId,
    svid: issued.chainPem,
    expires_at: issued.svid.notAfter.toISOString(),
    bundle: toPemBundle(issued.bundle),
  });

  router.post('/v1/attest', async (req, res) => {
    const issued = await deps.issuer.attest(parseWith(attestRequest, req.body), { peerCertificates: peerCertificates(req) });
    res.status(201).setHeader('Cache-Control', 'no-store').json(answer(issued));
  });

  router.post('/v1/svid/renew', requireSvid(deps), async (req, res) => {
    const issued = await deps.issuer.renew(req.svid!, parseWith(renewRequest, req.body).csr);
    res.status(201).setHeader('Cache-Control', 'no-store').json(answer(issued));
  });

  router.post('/v1/jwt-svid', requireSvid(deps), async (req, res) => {
    const body = parseWith(jwtSvidRequest, req.body);
    const jwt = await deps.issuer.jwtSvid(req.svid!, body.audience);
    res.status(201).setHeader('Cache-Control', 'no-store');
    res.json({ token: jwt.token, spiffe_id: jwt.spiffeId, expires_at: jwt.expiresAt.toISOString() });
  });

  router.get('/v1/svid-denylist', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('application/jwt').send(await deps.denylist());
  });

  return router;
}
