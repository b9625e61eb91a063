import { Router } from 'express';
import { openApiDocument } from './document';

export { openApiDocument, openApiPath } from './document';
export { OPERATIONS, type Operation } from './operations';

/**
 * GET /openapi.json: the API's OpenAPI 3.1 document, public. Served as application/json:
 * OpenAPI 3.1 names no media type of its own and application/openapi+json is still an
 * Internet-Draft (draft-ietf-httpapi-rest-api-mediatypes), so every client accepts this one.
 */
export function openApiRouter(): Router {
  const router = Router();
  let body: string | undefined;
  router.get('/openapi.json', (_req, res) => {
    body ??= `${JSON.stringify(openApiDocument(), null, 2)}\n`;
    res.setHeader('Cache-Control', 'max-age=300');
    res.type('application/json').send(body);
  });
  return router;
}
