/**
 * The MCP 2026-07-28 standard request headers (SEP-2243), checked statelessly against the
 * JSON-RPC body before anything is decided on them: `Mcp-Method` must name the body's
 * `method`, and `Mcp-Name` the body's `params.name` (`tools/call`, `prompts/get`),
 * `params.uri` (`resources/read`) or `params.taskId` (`tasks/get`, `tasks/update`,
 * `tasks/cancel`). A value that is not plain ASCII is sent as `=?base64?<base64 of UTF-8>?=`.
 *
 * The check applies when a request carries `Mcp-Method` or `Mcp-Name`, or names protocol
 * version 2026-07-28 or later in `MCP-Protocol-Version` (then `Mcp-Method` is required on
 * requests, and `Mcp-Name` for the methods above). A batch body with these headers cannot
 * agree with them and is refused. Legacy requests without the headers pass unchecked.
 *
 * A refusal is HTTP 400 with the JSON-RPC error {@link HEADER_MISMATCH} (the specification's
 * HeaderMismatch, -32020), as the MCP SDK v2 server answers it:
 * `{"jsonrpc":"2.0","id":<id|null>,"error":{"code":-32020,"message":"…","data":{"mismatch":{"header":"…","body":"…"}}}}`.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { InvalidRequest } from '../tokens/errors';

/** JSON-RPC error code HeaderMismatch (MCP 2026-07-28, SEP-2243); the SDK does not export it. */
export const HEADER_MISMATCH = -32020;

/** The first protocol revision whose requests must carry `Mcp-Method` (and `Mcp-Name`). */
export const HEADERS_REQUIRED_FROM = '2026-07-28';

/** What disagreed: the header's value (or "(missing)") and the body's (or "(missing)", "(batch)"). */
export interface HeaderMismatchDetail {
  /** The JSON-RPC id of the request, or null when it has none (or the body is a batch). */
  readonly id: string | number | null;
  readonly message: string;
  readonly mismatch: { readonly header: string; readonly body: string };
}

const MISSING = '(missing)';
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The field of `params` that `Mcp-Name` mirrors for `method`, if any. */
export function mcpNameField(method: string): 'name' | 'uri' | 'taskId' | undefined {
  if (method === 'tools/call' || method === 'prompts/get') return 'name';
  if (method === 'resources/read') return 'uri';
  if (method === 'tasks/get' || method === 'tasks/update' || method === 'tasks/cancel') return 'taskId';
  return undefined;
}

const BASE64_SENTINEL = /^=\?base64\?((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)\?=$/;

/**
 * An MCP header value as sent: plain text, or `=?base64?…?=` (canonical base64 of UTF-8)
 * decoded; undefined when the sentinel form does not decode.
 */
export function decodeMcpHeaderValue(value: string): string | undefined {
  if (!(value.startsWith('=?base64?') && value.endsWith('?='))) return value;
  const match = BASE64_SENTINEL.exec(value);
  if (!match) return undefined;
  try {
    const bin = atob(match[1]!);
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** RFC 9110 §5.6.3: optional whitespace around a field value is not part of it. */
const trimOws = (v: string) => v.replace(/^[ \t]+|[ \t]+$/g, '');

/** One header's value; a repeated one (two values) is undefined-by-ambiguity, reported as such. */
function single(headers: IncomingHttpHeaders, name: string): { value?: string; repeated: boolean } {
  const v = headers[name];
  if (v === undefined) return { repeated: false };
  if (Array.isArray(v)) return v.length === 1 ? { value: trimOws(v[0]!), repeated: false } : { repeated: true };
  return { value: trimOws(String(v)), repeated: false };
}

/** Whether `version` (YYYY-MM-DD) is 2026-07-28 or later. */
export function headersRequired(version: string | undefined): boolean {
  return version !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= HEADERS_REQUIRED_FROM;
}

const clip = (s: string) => (s.length > 256 ? `${s.slice(0, 256)}…` : s);

/**
 * Compares the MCP standard headers of a request with its parsed JSON body: the mismatch, or
 * undefined when they agree or the request carries none and needs none. Never throws.
 */
export function checkMcpHeaders(headers: IncomingHttpHeaders, body: unknown): HeaderMismatchDetail | undefined {
  const method = single(headers, 'mcp-method');
  const name = single(headers, 'mcp-name');
  const version = single(headers, 'mcp-protocol-version');
  // A repeated version header (Node joins it with ", ") names no one revision: checked as the newest would be.
  const required = version.repeated || (version.value?.includes(',') ?? false) || headersRequired(version.value);
  const present = method.value !== undefined || method.repeated || name.value !== undefined || name.repeated;
  if (!present && !required) return undefined;
  const id = isRecord(body) && (typeof body.id === 'string' || typeof body.id === 'number') ? body.id : null;
  const refuse = (message: string, header: string, bodyValue: string): HeaderMismatchDetail => ({
    id,
    message: `Bad Request: the request headers and body disagree: ${message}`,
    mismatch: { header: clip(header), body: clip(bodyValue) },
  });
  if (method.repeated) return refuse('the Mcp-Method header is repeated', '(repeated)', isRecord(body) && typeof body.method === 'string' ? body.method : MISSING);
  if (name.repeated) return refuse('the Mcp-Name header is repeated', '(repeated)', MISSING);
  if (Array.isArray(body)) return refuse('a JSON-RPC batch cannot carry the Mcp-Method and Mcp-Name headers', method.value ?? name.value ?? MISSING, '(batch)');
  const bodyMethod = isRecord(body) && typeof body.method === 'string' ? body.method : undefined;
  if (bodyMethod === undefined) {
    // A JSON-RPC response (or no body) names no method: only a header that claims one disagrees.
    if (!present) return undefined;
    return refuse(`the Mcp-Method header names ${method.value ?? MISSING} but the body names no method`, method.value ?? name.value ?? MISSING, MISSING);
  }
  const isRequest = isRecord(body) && 'id' in body;
  if (method.value === undefined) {
    if (!required || !isRequest) return name.value === undefined ? undefined : refuse('an Mcp-Name header without Mcp-Method', MISSING, bodyMethod);
    return refuse(`the body names method ${bodyMethod} but the required Mcp-Method header is absent`, MISSING, bodyMethod);
  }
  if (method.value !== bodyMethod) return refuse(`the body names method ${bodyMethod} but the Mcp-Method header names ${method.value}`, method.value, bodyMethod);
  const field = mcpNameField(bodyMethod);
  const params = isRecord(body) && isRecord(body.params) ? body.params : undefined;
  const bodyName = field === undefined || params === undefined ? undefined : typeof params[field] === 'string' ? (params[field] as string) : undefined;
  if (field === undefined) return name.value === undefined ? undefined : refuse(`the method ${bodyMethod} has no name, but an Mcp-Name header was sent`, name.value, MISSING);
  if (name.value === undefined) {
    // Whenever the headers are checked, a gateway may authorize on them: the name is required.
    if (bodyName === undefined) return undefined;
    return refuse(`the body carries params.${field} but the required Mcp-Name header is absent`, MISSING, bodyName);
  }
  const decoded = decodeMcpHeaderValue(name.value);
  if (decoded === undefined) return refuse('the Mcp-Name header carries an invalid base64 value', name.value, bodyName ?? MISSING);
  if (decoded !== bodyName) return refuse(`the body carries params.${field} ${JSON.stringify(clip(bodyName ?? MISSING))} but the Mcp-Name header names ${JSON.stringify(clip(decoded))}`, name.value, bodyName ?? MISSING);
  return undefined;
}

/** The JSON-RPC error body of a refusal. */
export function headerMismatchBody(detail: HeaderMismatchDetail): { jsonrpc: '2.0'; id: string | number | null; error: { code: number; message: string; data: { mismatch: { header: string; body: string } } } } {
  return { jsonrpc: '2.0', id: detail.id, error: { code: HEADER_MISMATCH, message: detail.message, data: { mismatch: detail.mismatch } } };
}

/** Answers a mismatch: HTTP 400 with the JSON-RPC error body, never cached. */
export function sendHeaderMismatch(res: ServerResponse, detail: HeaderMismatchDetail): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(headerMismatchBody(detail));
  res.statusCode = 400;
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  res.end(body);
}

/** A header mismatch as a refusal of `writProtection` (for `onRefusal`): answered with {@link sendHeaderMismatch}. */
export class HeaderMismatch extends InvalidRequest {
  constructor(readonly detail: HeaderMismatchDetail) {
    super(detail.message);
  }
}
