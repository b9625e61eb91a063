import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { OPERATIONS, type Operation, type Response } from './operations';
import { oauthError, problem, setError } from './schemas';

type Json = Record<string, unknown>;

/** Named schemas the document's schemas refer to (components.schemas), filled as they are generated. */
type Components = Record<string, Json>;

/**
 * JSON Schema 2020-12 of a zod schema (OpenAPI 3.1 §4.8.24), without its `$schema` (the document's
 * dialect applies). A recursive schema's `$defs` move to `components` (a `#/$defs/...` pointer
 * would resolve against the document's root, not the schema's).
 */
function jsonSchema(schema: z.ZodType | { type: 'string' }, io: 'input' | 'output', components: Components): Json {
  if (!(schema instanceof z.ZodType)) return { ...schema };
  const { $schema: _dialect, $defs, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }) as Json;
  if ($defs === undefined) return rest;
  let text = JSON.stringify(rest);
  const defs = Object.entries($defs as Record<string, Json>);
  const names = new Map(defs.map(([k]) => [k, `Schema${Object.keys(components).length + defs.findIndex(([d]) => d === k)}`]));
  const rename = (t: string) => t.replace(/"#\/\$defs\/([^"]+)"/g, (_m, k: string) => `"#/components/schemas/${names.get(k)}"`);
  for (const [k, def] of defs) components[names.get(k)!] = JSON.parse(rename(JSON.stringify(def))) as Json;
  text = rename(text);
  return JSON.parse(text) as Json;
}

/** Express `:param` → OpenAPI `{param}` (OpenAPI 3.1 §4.8.8, path templating). */
export const openApiPath = (expressPath: string): string => expressPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');

const ERROR_SCHEMAS = { problem: ['application/problem+json', 'Problem'], oauth: ['application/json', 'OAuthError'], set: ['application/json', 'SetError'] } as const;

function security(op: Operation): Json[] {
  switch (op.caller) {
    case 'public':
      return [];
    case 'svid':
      return [{ svid: [] }];
    case 'admin':
      return [{ adminBearer: [] }, { svid: [] }];
    case 'approver':
      return [{ approverBearer: [] }];
    case 'approver-reader':
      return [{ approverBearer: [] }, { adminBearer: [] }, { svid: [] }];
    case 'oauth-client':
      // The token endpoint also takes a JWT-SVID as client_assertion in the form (RFC 7521 §4.2): no transport credential then.
      return op.path === '/oauth2/token' ? [{ svid: [] }, {}] : [{ svid: [] }, { adminBearer: [] }];
  }
}

function parameters(op: Operation, components: Components): Json[] {
  const params: Json[] = Object.entries(op.pathParams ?? {}).map(([name, description]) => ({ name, in: 'path', required: true, description, schema: { type: 'string' } }));
  if (op.query) {
    const q = jsonSchema(op.query, 'input', components) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      const { description, ...rest } = schema;
      params.push({ name, in: 'query', required: (q.required ?? []).includes(name) && !('default' in rest), ...(description !== undefined && { description }), schema: rest });
    }
  }
  for (const [name, description] of Object.entries(op.headers ?? {})) params.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
  return params;
}

function response(r: Response, components: Components): Json {
  return {
    description: r.description,
    ...(r.content && { content: Object.fromEntries(Object.entries(r.content).map(([type, schema]) => [type, { schema: jsonSchema(schema, 'output', components) }])) }),
  };
}

function operation(op: Operation, components: Components): Json {
  const [errorType, errorSchema] = ERROR_SCHEMAS[op.errorKind];
  const responses: Json = {};
  const statuses = [...Object.keys(op.responses), ...Object.keys(op.errors)].map(Number).sort((a, b) => a - b);
  for (const status of statuses) {
    const ok = op.responses[status];
    responses[String(status)] = ok ? response(ok, components) : { description: op.errors[status], content: { [errorType]: { schema: { $ref: `#/components/schemas/${errorSchema}` } } } };
  }
  const params = parameters(op, components);
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    security: security(op),
    ...(params.length > 0 && { parameters: params }),
    ...(op.body && { requestBody: { required: op.body.required ?? true, content: { [op.body.type]: { schema: jsonSchema(op.body.schema, 'input', components) } } } }),
    responses,
  };
}

const version = (): string => (JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8')) as { version: string }).version;

/** The OpenAPI 3.1 document of the HTTPS API, built from {@link OPERATIONS}; keys in a stable order. */
export function openApiDocument(operations: readonly Operation[] = OPERATIONS): Json {
  const components: Components = {
    Problem: jsonSchema(problem, 'output', {}),
    OAuthError: jsonSchema(oauthError, 'output', {}),
    SetError: jsonSchema(setError, 'output', {}),
  };
  const paths: Record<string, Json> = {};
  for (const op of [...operations].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) (paths[openApiPath(op.path)] ??= {})[op.method] = operation(op, components);
  return {
    openapi: '3.1.1',
    info: {
      title: 'Writ',
      version: version(),
      summary: 'Workload identity issuer and per-task token broker for MCP connectors and AI agents',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    // No `servers`: paths are relative to wherever the API is served (OpenAPI 3.1 §4.8.1: default "/").
    tags: [
      { name: 'oauth', description: 'OAuth 2.0 token exchange, introspection, revocation and metadata' },
      { name: 'bundle', description: 'The SPIFFE trust bundle' },
      { name: 'svid', description: 'Attestation and SVIDs' },
      { name: 'tasks', description: 'Tasks of a connector' },
      { name: 'approvals', description: 'Human approval of tool actions a permit marks @approval("required")' },
      { name: 'vault', description: 'The token vault: users link their SaaS accounts; connectors get short-lived access tokens of them for a task (RFC 8693)' },
      { name: 'signals', description: 'Shared Signals push delivery (RFC 8935)' },
      { name: 'admin', description: 'Administration: the admin bearer token or an admin X.509-SVID' },
      { name: 'meta', description: 'This document' },
    ],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        svid: { type: 'mutualTLS', description: 'An X.509-SVID of this trust domain, issued by this broker and not revoked, as the TLS client certificate (RFC 8705 §2)' },
        adminBearer: { type: 'http', scheme: 'bearer', description: 'The admin credential (RFC 6750 §2.1)' },
        approverBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An ID token of the approvers\' identity provider (WRIT_APPROVAL_ISSUER) naming a user of the approvers\' group' },
      },
    },
  };
}
