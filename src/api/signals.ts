import express, { Router, type ErrorRequestHandler } from 'express';
import { DomainError } from '../core/errors';
import type { SignalIntake } from '../signals';
import { isSetError } from '../signals';
import { noteRefusal } from './logging';

export interface SignalRouteDeps {
  intake: Pick<SignalIntake, 'deliver'>;
}

/**
 * POST /v1/signals: push delivery of Security Event Tokens (RFC 8935). 202 once applied
 * (durably) or recognised as a replay; 400 `{err, description}` (RFC 8935 §2.4) otherwise.
 */
export function signalsRouter(deps: SignalRouteDeps): Router {
  const router = Router();
  router.post('/v1/signals', express.text({ type: () => true, limit: '64kb' }), async (req, res) => {
    await deps.intake.deliver(typeof req.body === 'string' ? req.body : '', req.headers['content-type']);
    res.status(202).end();
  });
  return router;
}

/** RFC 8935 §2.4 error bodies for the signals endpoint; every refused SET is recorded by the applier. */
export function signalsErrorHandler(intake: Pick<SignalIntake, 'refused'>): ErrorRequestHandler {
  return async (err, req, res, next) => {
    if (req.path !== '/v1/signals' || res.headersSent) return next(err);
    if (isSetError(err)) {
      await intake.refused({ err: err.err, description: err.description });
      noteRefusal(res, err.err);
      return res.status(400).json(err.toJSON());
    }
    // A body some other parser or check refused (a JSON content type, a control character, too large): not a SET.
    if (typeof err?.type === 'string' && typeof err?.status === 'number' && err.status < 500) {
      const tooLarge = err.type === 'entity.too.large';
      const description = tooLarge ? 'the SET is too large' : err instanceof DomainError ? err.message : 'the body must be a SET, sent as application/secevent+jwt';
      const body = { err: 'invalid_request', description };
      await intake.refused(body);
      noteRefusal(res, body.err);
      // RFC 8935 §2.4 answers a refused SET with 400; a body over the cap is refused before it is read as one (RFC 9110 §15.5.14).
      return res.status(tooLarge ? 413 : 400).json(body);
    }
    return next(err);
  };
}
