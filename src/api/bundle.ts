import { Router } from 'express';
import { problemType } from '../core/errors';
import { toPemBundle, toSpiffeBundleDocument, type TrustBundle } from '../spiffe/bundle';
import { sendProblem } from './problem';

export interface BundleSource {
  current(): Promise<TrustBundle>;
}

/** GET /v1/bundle: the trust bundle, as a SPIFFE bundle JWK Set or as PEM; GET /oauth2/jwks: its JWT keys. */
export function bundleRouter(source: BundleSource): Router {
  const router = Router();
  router.get('/v1/bundle', async (req, res) => {
    const format = req.accepts(['application/json', 'application/x-pem-file']);
    if (!format) return sendProblem(res, 406, problemType('not-acceptable'), 'the bundle is available as application/json or application/x-pem-file');
    const bundle = await source.current();
    res.setHeader('Cache-Control', `max-age=${Math.min(bundle.refreshHint, 60)}`);
    res.setHeader('Vary', 'Accept');
    if (format === 'application/x-pem-file') return res.type('application/x-pem-file').send(toPemBundle(bundle));
    return res.type('application/json').send(JSON.stringify(toSpiffeBundleDocument(bundle)));
  });
  // The JWT authorities as a plain JWK Set for JOSE verifiers (RFC 7517 §5; RFC 8414 jwks_uri):
  // the bundle marks them "jwt-svid", JOSE libraries expect "sig".
  router.get('/oauth2/jwks', async (_req, res) => {
    const bundle = await source.current();
    res.setHeader('Cache-Control', `max-age=${Math.min(bundle.refreshHint, 60)}`);
    res.type('application/jwk-set+json').send(JSON.stringify({ keys: bundle.jwtAuthorities.map((a) => ({ ...a.publicJwk, kid: a.kid, use: 'sig', alg: 'ES256' })) }));
  });

  return router;
}
