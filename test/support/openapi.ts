import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../../src/api/openapi';

/**
 * Checks answers of the broker against its OpenAPI document (src/api/openapi): an answer to a
 * documented operation must have a documented status, and a JSON body must fit that status's schema.
 */

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Route {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly operation: Json;
}

let cached: { doc: Json; routes: Route[]; ajv: Ajv2020; compiled: Map<string, ValidateFunction> } | undefined;

function state() {
  if (cached) return cached;
  const doc = openApiDocument() as Json;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'writ-openapi', $defs: relink(doc.components.schemas) }, 'writ-openapi');
  const routes: Route[] = [];
  for (const [template, item] of Object.entries(doc.paths as Record<string, Json>)) {
    // A template's `{param}` matches one percent-encoded segment (OpenAPI 3.1 §4.8.8).
    const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
    for (const [method, operation] of Object.entries(item)) routes.push({ method: method.toUpperCase(), template, pattern, operation: operation as Json });
  }
  cached = { doc, routes, ajv, compiled: new Map() };
  return cached;
}

/** The documented operation a request names, if any. */
export function documentedOperation(method: string, path: string): { template: string; operation: Json } | undefined {
  const p = path.split('?')[0]!;
  const r = state().routes.find((x) => x.method === method.toUpperCase() && x.pattern.test(p));
  return r && { template: r.template, operation: r.operation };
}

/** `#/components/schemas/X` as a reference into the schema ajv holds them in. */
const relink = (schema: unknown): Json => JSON.parse(JSON.stringify(schema).replace(/"#\/components\/schemas\//g, '"writ-openapi#/$defs/'));

/**
 * The mismatches of one answer with the document (none: it fits, or the operation is not
 * documented). `contentType` and `body` as received.
 */
export function responseMismatches(method: string, url: string, status: number, contentType: string | undefined, body: string): string[] {
  const path = new URL(url, 'https://writ.invalid').pathname;
  const found = documentedOperation(method, path);
  if (!found) return [];
  const where = `${method.toUpperCase()} ${found.template} → ${status}`;
  const response = found.operation.responses[String(status)] as Json | undefined;
  if (!response) return [`${where}: status ${status} is not documented (documented: ${Object.keys(found.operation.responses).join(', ')})`];
  const content = response.content as Record<string, Json> | undefined;
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (!content) return body === '' ? [] : [`${where}: the document says no body, got ${type || 'a body'} (${body.slice(0, 200)})`];
  const media = content[type];
  if (!media) return [`${where}: content type ${type || 'none'} is not documented (documented: ${Object.keys(content).join(', ')})`];
  if (!/[/+]json$/.test(type)) return [];
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return [`${where}: the body is not JSON: ${body.slice(0, 200)}`];
  }
  const key = `${method} ${found.template} ${status} ${type}`;
  const s = state();
  let validate = s.compiled.get(key);
  if (!validate) s.compiled.set(key, (validate = s.ajv.compile(relink(media.schema))));
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${where}: ${e.instancePath || '(body)'} ${e.message}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`);
}

/** Throws when an answer does not fit the document. */
export function assertDocumentedResponse(method: string, url: string, status: number, contentType: string | undefined, body: string): void {
  const problems = responseMismatches(method, url, status, contentType, body);
  if (problems.length > 0) throw new Error(`the answer does not fit docs/openapi.json:\n  ${problems.slice(0, 10).join('\n  ')}\n  body: ${body.slice(0, 500)}`);
}
