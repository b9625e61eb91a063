/**
 * The model operators write request-time policies against: the Cedar schema of namespace
 * `Writ` (issue 4, "Policy at request time"), and the vocabulary that goes with it —
 * data classifications and their order, tool actions, and how entity ids are formed.
 *
 * ```cedar
 * @id("eng-read-low")
 * permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
 * when { principal.groups.contains("eng") && context.classification_level <= 1 };
 * ```
 */

/** Data classifications, lowest first. A classification's level is its index here. */
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

export function isClassification(value: unknown): value is Classification {
  return typeof value === 'string' && (CLASSIFICATIONS as readonly string[]).includes(value);
}

/**
 * The level of a classification, `public` 0 … `restricted` 3, as policies see it in
 * `context.classification_level`. Throws on an unknown classification (never guesses a level).
 */
export function classificationLevel(classification: Classification): number {
  const level = (CLASSIFICATIONS as readonly string[]).indexOf(classification);
  if (level < 0) throw new RangeError(`unknown classification ${JSON.stringify(classification)}`);
  return level;
}

/** What a user may do with a tool; each requested tool and action is decided separately. */
export const TOOL_ACTIONS = ['read', 'write', 'execute', 'delete'] as const;
export type ToolAction = (typeof TOOL_ACTIONS)[number];

export function isToolAction(value: unknown): value is ToolAction {
  return typeof value === 'string' && (TOOL_ACTIONS as readonly string[]).includes(value);
}

/** A connector passing a user's token on to a downstream tool (chaining). */
export const DELEGATE_ACTION = 'delegate';

/** A connector using the user's grant at a downstream provider (the token vault) for a task. */
export const USE_GRANT_ACTION = 'use_grant';

/** Entity type names as they appear in entities and in `{"__entity": {type, id}}` references. */
export const ENTITY_TYPES = {
  user: 'Writ::User',
  connector: 'Writ::Connector',
  server: 'Writ::Server',
  tool: 'Writ::Tool',
  provider: 'Writ::Provider',
  action: 'Writ::Action',
} as const;

/** The id of a `Writ::Tool`: `<resource URI>#<tool name>`. Its parent is `Writ::Server::"<resource URI>"`. */
export function toolEntityId(serverUri: string, toolName: string): string {
  return `${serverUri}#${toolName}`;
}

/**
 * The Cedar schema (human-readable format). Entity ids: `User` is the subject's `sub`,
 * `Connector` its SPIFFE ID, `Server` the resource URI, `Tool` `<resource URI>#<tool name>`.
 * Every attribute is required, so strict validation catches a policy that reads an attribute
 * a principal type does not have (for example `principal.risk` in a policy that also
 * applies to `delegate`, whose principal is a `Connector`: constrain it with
 * `principal is Writ::User`).
 */
export const WRIT_SCHEMA = `namespace Writ {
  // What the task did before this decision: every tools/call recorded in it, on any server.
  // Levels as classification_level (public 0 … restricted 3); -1 when nothing was read (written).
  type TaskHistory = {
    calls: Long,
    tools_called: Set<String>,
    servers: Set<String>,
    resources: Set<String>,
    max_classification_read: Long,
    max_classification_written: Long,
    egress_calls: Long,
  };

  // The end user: id is the subject token's "sub".
  entity User = {
    iss: String,
    groups: Set<String>,
    risk: String,
  };

  // An attested connector: id is its SPIFFE ID.
  entity Connector = {
    owner: String,
    trust_domain: String,
  };

  // A registered resource (MCP server): id is its URI.
  entity Server;

  // A tool of a resource: id is "<resource URI>#<tool name>".
  entity Tool in [Server] = {
    name: String,
    classification: String,
    // The tool sends data out (the registry's egress flag).
    egress: Bool,
  };

  // A user's action on a tool, through a connector.
  action read, write, execute, delete appliesTo {
    principal: User,
    resource: Tool,
    context: {
      connector: Connector,
      classification: String,
      classification_level: Long,
      chain_depth: Long,
      task_id: String,
      // "mtls" (RFC 8705 certificate-bound) or "dpop" (RFC 9449 DPoP-bound).
      binding: String,
      task: TaskHistory,
    },
  };

  // A downstream provider of the token vault (a SaaS authorization server): id is its name in
  // Writ. Its data leaves for the SaaS (egress is true), at the classification it was registered with.
  entity Provider = {
    name: String,
    issuer: String,
    classification: String,
    egress: Bool,
  };

  // The user's grant at a provider used for the task: an access token of the provider for scopes.
  // The context has what read…delete and delegate have in common too, so that a policy that does
  // not constrain its action stays valid (and applies: see the README).
  action use_grant appliesTo {
    principal: User,
    resource: Provider,
    context: {
      connector: Connector,
      scopes: Set<String>,
      task_id: String,
      classification: String,
      classification_level: Long,
      // The depth of the task token the connector presented (0: exchanged for the user's own token).
      chain_depth: Long,
      // What that task token is bound to: "mtls" or "dpop".
      binding: String,
      task: TaskHistory,
    },
  };

  // A connector presenting a Writ token to reach a downstream tool for the user.
  action delegate appliesTo {
    principal: Connector,
    resource: Tool,
    context: {
      user: User,
      chain: Set<Connector>,
      chain_depth: Long,
      classification: String,
      classification_level: Long,
      // "mtls" or "dpop": what the new token is bound to.
      binding: String,
      task: TaskHistory,
    },
  };
}
`;
