/**
 * Per-tool step-up (MCP SEP-2350) in an RFC 6750 §3 `WWW-Authenticate: Bearer` challenge: a
 * resource server that refuses a `tools/call` with 403 `insufficient_scope` says what to ask
 * Writ for, and a client reads it back. One definition of the parameters, for both sides
 * (`@writ/mcp` formats, the SDK parses):
 *
 * - `scope="…"` (RFC 6750 §3): the scope the server maps the tool to, when it maps it;
 * - `authorization_details="<base64url>"`: the RFC 9396 `authorization_details` array to ask
 *   for in the token exchange, `[{"type":"mcp_tool","tools":["<tool>"],"actions":[…]}]`
 *   (`actions` only when the server requires specific ones), as UTF-8 JSON encoded with
 *   base64url without padding (RFC 4648 §5), so it is a valid auth-param value;
 * - `resource_metadata="…"` (RFC 9728 §5.1), formatted by the resource server as before.
 *
 * ```
 * WWW-Authenticate: Bearer realm="https://mcp.example.com/github", error="insufficient_scope",
 *   error_description="…", scope="repo:delete",
 *   authorization_details="W3sidHlwZSI6Im1jcF90b29sIiwidG9vbHMiOlsiZGVsZXRlX3JlcG8iXSwiYWN0aW9ucyI6WyJkZWxldGUiXX1d",
 *   resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/github"
 * ```
 *
 * Pure: no I/O, no Node APIs (TextEncoder/TextDecoder, btoa/atob are web globals).
 */
import type { Action } from './authorization-details';

/** The challenge parameter carrying the base64url JSON `authorization_details` array. */
export const STEP_UP_DETAILS_PARAM = 'authorization_details';

/** One detail of a step-up challenge: what a new token would need for the refused tool. */
export interface StepUpDetail {
  readonly type: 'mcp_tool';
  readonly tools: readonly string[];
  readonly actions?: readonly Action[];
}

/** What a step-up challenge asks for. */
export interface StepUpChallenge {
  /** The refused tool, when the details name exactly one. */
  readonly tool?: string;
  /** The decoded `authorization_details` parameter. */
  readonly authorizationDetails?: readonly StepUpDetail[];
  /** RFC 6750 §3 `scope`. */
  readonly scope?: string;
  /** RFC 9728 §5.1 `resource_metadata`. */
  readonly resourceMetadata?: string;
  /** `error_description`, when given. */
  readonly errorDescription?: string;
}

/** The `authorization_details` array for one refused tool (`actions` left out when none are required). */
export function stepUpDetails(tool: string, actions: readonly Action[] = []): StepUpDetail[] {
  return [{ type: 'mcp_tool', tools: [tool], ...(actions.length > 0 && { actions: [...actions] }) }];
}

/** RFC 6749 §3.3 scope: space-separated scope-tokens of %x21 / %x23-5B / %x5D-7E. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*$/;

/** Whether `scope` is a valid RFC 6749 §3.3 scope value (and so fits a quoted-string unescaped). */
export const isScope = (scope: string): boolean => SCOPE.test(scope);

/**
 * The step-up auth-params to append to an `insufficient_scope` challenge, in order:
 * `scope="…"` when `scope` is given (and valid), then `authorization_details="…"`.
 */
export function formatStepUpChallengeParams(step: { tool: string; actions?: readonly Action[]; scope?: string | undefined }): string[] {
  const params: string[] = [];
  if (step.scope !== undefined && isScope(step.scope)) params.push(`scope="${step.scope}"`);
  params.push(`${STEP_UP_DETAILS_PARAM}="${base64url(JSON.stringify(stepUpDetails(step.tool, step.actions)))}"`);
  return params;
}

/**
 * Reads a `WWW-Authenticate` value: the step-up asked for by its `Bearer` (or `DPoP`) challenge with
 * `error="insufficient_scope"` (RFC 6750 §3.1); undefined when there is none. An
 * `authorization_details` parameter that does not decode to an array of `mcp_tool` objects is
 * ignored (never guessed at). Never throws.
 */
export function parseStepUpChallenge(wwwAuthenticate: string): StepUpChallenge | undefined {
  if (typeof wwwAuthenticate !== 'string') return undefined;
  const params = bearerParams(wwwAuthenticate);
  if (params === undefined || params.get('error') !== 'insufficient_scope') return undefined;
  const encoded = params.get(STEP_UP_DETAILS_PARAM);
  const details = encoded === undefined ? undefined : decodeDetails(encoded);
  const tools = details?.flatMap((d) => d.tools) ?? [];
  const scope = params.get('scope');
  const resourceMetadata = params.get('resource_metadata');
  const errorDescription = params.get('error_description');
  return {
    ...(tools.length === 1 && { tool: tools[0]! }),
    ...(details !== undefined && { authorizationDetails: details }),
    ...(scope !== undefined && { scope }),
    ...(resourceMetadata !== undefined && { resourceMetadata }),
    ...(errorDescription !== undefined && { errorDescription }),
  };
}

// ---------------------------------------------------------------------------------------

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
/** The schemes whose challenges carry a step-up: RFC 6750 `Bearer` and RFC 9449 `DPoP`. */
const SCHEMES = new Set(['bearer', 'dpop']);
const SPACE = /[ \t]*/y;

/**
 * RFC 9110 §11.6.1 challenges: the auth-params of the first `Bearer` (or, for a DPoP-bound
 * token, `DPoP`: RFC 9449 §7.1) challenge with `error="insufficient_scope"` (names
 * lower-cased, the first of a repeated name kept), or undefined when there is none.
 */
function bearerParams(header: string): Map<string, string> | undefined {
  let i = 0;
  const skip = () => {
    SPACE.lastIndex = i;
    SPACE.exec(header);
    i = SPACE.lastIndex;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(header);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  while (i < header.length) {
    skip();
    while (header[i] === ',') {
      i++;
      skip();
    }
    const scheme = token();
    if (scheme === undefined) return undefined;
    const params = new Map<string, string>();
    // auth-params until the next scheme (a token not followed by "=").
    for (;;) {
      skip();
      const start = i;
      const name = token();
      if (name === undefined) break;
      skip();
      if (header[i] !== '=') {
        i = start; // token68 or the next challenge's scheme
        if (params.size === 0 && /^[A-Za-z0-9\-._~+/]+=*/.test(header.slice(i))) {
          // token68: skip it
          i += /^[A-Za-z0-9\-._~+/]+=*/.exec(header.slice(i))![0].length;
          skip();
          if (header[i] === ',') i++;
          continue;
        }
        break;
      }
      i++;
      skip();
      let value: string | undefined;
      if (header[i] === '"') {
        i++;
        let v = '';
        while (i < header.length && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < header.length) i++;
          v += header[i];
          i++;
        }
        if (header[i] !== '"') return SCHEMES.has(scheme.toLowerCase()) && params.get('error') === 'insufficient_scope' ? params : undefined;
        i++;
        value = v;
      } else value = token();
      if (value === undefined) break;
      const key = name.toLowerCase();
      if (!params.has(key)) params.set(key, value);
      skip();
      if (header[i] === ',') i++;
    }
    if (SCHEMES.has(scheme.toLowerCase()) && params.get('error') === 'insufficient_scope') return params;
  }
  return undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function decodeDetails(encoded: string): StepUpDetail[] | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(encoded) || encoded.length > 16 * 1024) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(fromBase64url(encoded));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const details: StepUpDetail[] = [];
  for (const d of value) {
    if (!isRecord(d) || d.type !== 'mcp_tool' || !Array.isArray(d.tools) || !d.tools.every((t) => typeof t === 'string')) return undefined;
    if (d.actions !== undefined && (!Array.isArray(d.actions) || !d.actions.every((a) => typeof a === 'string'))) return undefined;
    details.push({ type: 'mcp_tool', tools: d.tools as string[], ...(d.actions !== undefined && { actions: d.actions as Action[] }) });
  }
  return details;
}

/** RFC 4648 §5 base64url of UTF-8 text, without padding. */
function base64url(text: string): string {
  let bin = '';
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(encoded: string): string {
  const b64 = encoded.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}
