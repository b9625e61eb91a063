/**
 * Rich Authorization Requests (RFC 9396) for MCP tools: the `authorization_details` form
 * parameter of the token exchange, a JSON array of objects of Writ's one type, `mcp_tool`:
 *
 *   [{"type":"mcp_tool","tools":["create_issue"],"actions":["write"],"data_classification":"internal"}]
 *
 * `data_classification` may declare a higher class than the registry's for these tools, never
 * a lower one ({@link effectiveClassification}). Anything else — text that is not JSON, too
 * long, too many entries, an unknown `type`, an unknown member — is `invalid_authorization_details`
 * (RFC 9396 §5).
 *
 * ```ts
 * const requested = parseAuthorizationDetails(form.authorization_details);
 * ```
 */
import { z } from 'zod';
import { quote } from '../core/text';
import { InvalidAuthorizationDetails } from './errors';

/** The one authorization details type Writ knows (RFC 9396 §2: `type` is required, its value defines the rest). */
export const MCP_TOOL_TYPE = 'mcp_tool';

export const ACTIONS = ['read', 'write', 'execute', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

/** Data classifications, lowest first: the order is the meaning. */
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

/** One RFC 9396 authorization details object of type `mcp_tool`. */
export interface McpToolDetail {
  readonly type: typeof MCP_TOOL_TYPE;
  readonly tools: readonly string[];
  readonly actions: readonly Action[];
  readonly data_classification?: Classification;
}

/** Longest `authorization_details` parameter, in UTF-8 bytes. */
export const MAX_AUTHORIZATION_DETAILS_BYTES = 8 * 1024;
/** Most objects in the array. */
export const MAX_AUTHORIZATION_DETAILS_ENTRIES = 16;
/** Most tools in one object. */
export const MAX_TOOLS_PER_DETAIL = 64;
/** Longest tool name (the MCP specification's tool-name guidance: 1 to 128 characters). */
export const MAX_TOOL_NAME_LENGTH = 128;

/** MCP tool names: ASCII letters, digits, `_`, `-` and `.` (MCP specification, "Tool names"). */
const TOOL_NAME = /^[A-Za-z0-9_.-]+$/;

// ---------------------------------------------------------------------------------------
// Classification order.
// ---------------------------------------------------------------------------------------

export const isClassification = (value: unknown): value is Classification => (CLASSIFICATIONS as readonly unknown[]).includes(value);
export const isAction = (value: unknown): value is Action => (ACTIONS as readonly unknown[]).includes(value);

/** public 0, internal 1, confidential 2, restricted 3: the `classification_level` of the policy context. */
export function classificationLevel(classification: Classification): number {
  return CLASSIFICATIONS.indexOf(classification);
}

/** Negative when `a` is lower than `b`, 0 when equal, positive when higher (for `Array.prototype.sort`). */
export function compareClassifications(a: Classification, b: Classification): number {
  return classificationLevel(a) - classificationLevel(b);
}

/** The highest of the classifications given; `public` for none. */
export function highestClassification(...classifications: readonly (Classification | undefined)[]): Classification {
  let highest: Classification = 'public';
  for (const c of classifications) if (c !== undefined && compareClassifications(c, highest) > 0) highest = c;
  return highest;
}

/**
 * The classification a request is decided with: the registry's for the tool, raised (never
 * lowered) by what the client declared in `data_classification`.
 */
export function effectiveClassification(registry: Classification, declared?: Classification): Classification {
  return highestClassification(registry, declared);
}

// ---------------------------------------------------------------------------------------
// Schema.
// ---------------------------------------------------------------------------------------

const toolName = z
  .string()
  .min(1, 'a tool name must not be empty')
  .max(MAX_TOOL_NAME_LENGTH, `a tool name must be at most ${MAX_TOOL_NAME_LENGTH} characters`)
  .regex(TOOL_NAME, 'a tool name holds only ASCII letters, digits, "_", "-" and "."');

const action = z.string().refine(isAction, { message: `an action is one of ${ACTIONS.join(', ')}` }).transform((a) => a as Action);
const classification = z
  .string()
  .refine(isClassification, { message: `data_classification is one of ${CLASSIFICATIONS.join(', ')}` })
  .transform((c) => c as Classification);

const dedupe = <T>(values: readonly T[]): T[] => [...new Set(values)];

/** One `mcp_tool` object; members other than these are refused. Duplicate tools and actions collapse. */
export const mcpToolDetailSchema = z
  .strictObject({
    type: z.literal(MCP_TOOL_TYPE),
    tools: z.array(toolName).min(1, 'tools must name at least one tool').max(MAX_TOOLS_PER_DETAIL, `tools may name at most ${MAX_TOOLS_PER_DETAIL} tools`),
    actions: z.array(action).min(1, 'actions must name at least one action'),
    data_classification: classification.optional(),
  })
  .transform(
    (d): McpToolDetail => ({
      type: d.type,
      tools: dedupe(d.tools),
      actions: dedupe(d.actions),
      ...(d.data_classification !== undefined ? { data_classification: d.data_classification } : {}),
    }),
  );

/** The whole `authorization_details` array: 1 to {@link MAX_AUTHORIZATION_DETAILS_ENTRIES} `mcp_tool` objects. */
export const authorizationDetailsSchema = z
  .array(z.unknown())
  .min(1, 'authorization_details must hold at least one object')
  .max(MAX_AUTHORIZATION_DETAILS_ENTRIES, `authorization_details may hold at most ${MAX_AUTHORIZATION_DETAILS_ENTRIES} objects`)
  .superRefine((entries, ctx) => {
    // RFC 9396 §5: an unknown type is its own refusal, said before any member-level complaint.
    entries.forEach((entry, index) => {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        ctx.addIssue({ code: 'custom', path: [index], message: 'must be a JSON object (RFC 9396 §2)' });
        return;
      }
      const type = (entry as Record<string, unknown>).type;
      if (type === undefined) ctx.addIssue({ code: 'custom', path: [index, 'type'], message: 'is required (RFC 9396 §2)' });
      else if (type !== MCP_TOOL_TYPE)
        ctx.addIssue({ code: 'custom', path: [index, 'type'], message: `${quote(type)} is not a supported type (supported: ${MCP_TOOL_TYPE})` });
    });
  })
  .pipe(z.array(mcpToolDetailSchema));


/** The first issue of a failed parse as one line: `authorization_details[0].actions[1]: an action is one of …`. */
function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'authorization_details is invalid';
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown member${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => quote(k, 32)).join(', ')}`;
  else if (issue.code === 'invalid_type') message = `must be ${issue.expected === 'array' ? 'an array' : `a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}`}`;
  return `authorization_details${path}: ${message}`;
}

/**
 * Validates an already-decoded value (a JSON body, a token claim, a stored lease) as
 * `authorization_details`. Throws {@link InvalidAuthorizationDetails} naming the first problem.
 */
export function validateAuthorizationDetails(value: unknown): McpToolDetail[] {
  const result = authorizationDetailsSchema.safeParse(value);
  if (!result.success) throw new InvalidAuthorizationDetails(describe(result.error), { cause: result.error });
  return result.data;
}

/**
 * Parses the `authorization_details` form parameter (RFC 9396 §2, §5): a JSON array of
 * `mcp_tool` objects, at most {@link MAX_AUTHORIZATION_DETAILS_BYTES} bytes. Throws
 * {@link InvalidAuthorizationDetails} for anything else.
 */
export function parseAuthorizationDetails(text: string): McpToolDetail[] {
  if (Buffer.byteLength(text, 'utf8') > MAX_AUTHORIZATION_DETAILS_BYTES)
    throw new InvalidAuthorizationDetails(`authorization_details is longer than ${MAX_AUTHORIZATION_DETAILS_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidAuthorizationDetails('authorization_details is not valid JSON (RFC 9396 §2: a JSON array of objects)', { cause: err });
  }
  if (!Array.isArray(value)) throw new InvalidAuthorizationDetails('authorization_details must be a JSON array of objects (RFC 9396 §2)');
  return validateAuthorizationDetails(value);
}

/** Every (tool, action) pair the details name, once each, in order: what policy decides one by one. */
export function toolActions(details: readonly McpToolDetail[]): { tool: string; action: Action }[] {
  const seen = new Set<string>();
  const pairs: { tool: string; action: Action }[] = [];
  for (const d of details) {
    for (const tool of d.tools) {
      for (const action of d.actions) {
        const key = `${tool}\u0000${action}`;
        if (seen.has(key)) continue;
        seen.add(key);
        pairs.push({ tool, action });
      }
    }
  }
  return pairs;
}
