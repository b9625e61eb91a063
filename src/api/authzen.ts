import { Router, type RequestHandler } from 'express';
import { evaluationRequestSchema, evaluationsRequestSchema, type AccessEvaluator } from '../authzen';
import { requireSvid, type AuthDeps } from './auth';
import { parseWith } from './validate';

export interface AuthzenRouteDeps extends Omit<AuthDeps, 'admin' | 'entries'> {
  evaluator: AccessEvaluator;
  /** The PDP's identifier in its metadata (Writ's issuer URL). */
  issuer: string;
}

/** AuthZEN §10: a PEP's X-Request-ID is answered with the same value. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The OpenID AuthZEN Authorization API 1.0 (§6, §7, §9): per-call decisions for PEPs that
 * authenticate with their X.509-SVID over mTLS (§11.2) — a registered MCP server, or a connector
 * asking about its own task. A denial is 200 with `decision: false` (§10).
 */
export function authzenRouter(deps: AuthzenRouteDeps): Router {
  const router = Router();
  const echo: RequestHandler = (req, res, next) => {
    const id = req.headers['x-request-id'];
    if (typeof id === 'string' && REQUEST_ID.test(id)) res.setHeader('X-Request-ID', id);
    next();
  };

  router.get('/.well-known/authzen-configuration', (_req, res) => {
    const base = deps.issuer.replace(/\/+$/, '');
    res.setHeader('Cache-Control', 'max-age=300');
    res.json({ policy_decision_point: base, access_evaluation_endpoint: `${base}/access/v1/evaluation`, access_evaluations_endpoint: `${base}/access/v1/evaluations` });
  });

  router.post('/access/v1/evaluation', echo, requireSvid(deps), async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(await deps.evaluator.evaluate({ spiffeId: req.svid!.spiffeId }, parseWith(evaluationRequestSchema, req.body)));
  });

  router.post('/access/v1/evaluations', echo, requireSvid(deps), async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(await deps.evaluator.evaluateMany({ spiffeId: req.svid!.spiffeId }, parseWith(evaluationsRequestSchema, req.body)));
  });

  return router;
}
