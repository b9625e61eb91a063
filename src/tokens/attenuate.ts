/**
 * Attenuation for chained tokens (RFC 8693 §1.1 delegation, §4.1 `act`): a connector that
 * holds a Writ token may exchange it for a token to another resource, and that token never
 * grants more than its parent.
 *
 * What "never more than its parent" means here. The downstream resource has its own tools,
 * named differently from the parent's, so tool names cannot be compared; what can be are the
 * kinds of access and the sensitivity of the data:
 *
 *  1. Actions: every action of the new token must be among the actions the parent granted
 *     (the union over its authorization details). A parent allowed to `read` yields a child
 *     that may only `read`, whatever the downstream tools are.
 *  2. Classification: the effective classification of every downstream tool (the registry's,
 *     raised by any `data_classification` the request declares) must not be higher than the
 *     highest classification in the parent's granted details. A granted detail without
 *     `data_classification` counts as `public`: the exchange must record the effective
 *     classification in what it grants, otherwise chains stay at `public` (fail closed).
 *  3. Depth: the chain may grow by one hop at a time up to a maximum (2 by default).
 *  4. The number of tools is not compared: counting tools across two resources says nothing
 *     about what they can do, and cutting an arbitrary subset would be neither predictable
 *     nor safer than rules 1 and 2.
 *
 * Attenuation narrows the request: actions outside the parent's are dropped, tools above
 * the ceiling are dropped, and what remains is then decided by policy (the user's action and
 * the connector's `delegate`) tool by tool. If nothing remains, `access_denied`.
 *
 * Depth counts hops (delegations), not actors: a token from a user's subject token has
 * `act: {sub: A}` and depth 0; chained once, `{sub: B, act: {sub: A}}`, depth 1; and so on.
 *
 * ```ts
 * const { depth, details } = attenuate({ parent: { act: parent.act, authorizationDetails: parent.authorization_details },
 *   requested, registryClassification: (tool) => resource.tools.get(tool)?.classification, maxDepth: 2 });
 * ```
 */
import {
  highestClassification,
  compareClassifications,
  effectiveClassification,
  type Action,
  type Classification,
  type McpToolDetail,
} from './authorization-details';
import { AccessDenied } from './errors';
import type { Act } from './access-token';

export const DEFAULT_MAX_CHAIN_DEPTH = 2;

/** RFC 8693 §4.1: the current actor, with the chain before it nested in `act`. */
export function nestAct(currentConnector: string, parentAct?: Act): Act {
  return parentAct === undefined ? { sub: currentConnector } : { sub: currentConnector, act: parentAct };
}

/** The actors of a chain, current first: `{sub: B, act: {sub: A}}` → `[B, A]`. */
export function actChain(act: Act | undefined): string[] {
  const chain: string[] = [];
  for (let a = act; a !== undefined; a = a.act) chain.push(a.sub);
  return chain;
}

/** The hops of a chain: the number of `act` levels nested under the outermost one (0 without chaining). */
export function chainDepth(act: Act | undefined): number {
  return Math.max(0, actChain(act).length - 1);
}

/**
 * The depth of a token chained from a parent whose actors are `parentAct`: one more than the
 * parent's. Throws {@link AccessDenied} past `maxDepth`.
 */
export function nextChainDepth(parentAct: Act, maxDepth = DEFAULT_MAX_CHAIN_DEPTH): number {
  const depth = chainDepth(parentAct) + 1;
  if (depth > maxDepth) throw new AccessDenied(`the delegation chain would be ${depth} hops long; at most ${maxDepth} are allowed`);
  return depth;
}

/** What a parent token allows its children at most. */
export interface AttenuationCeiling {
  /** Every action the parent granted, on any tool. */
  readonly actions: readonly Action[];
  /** The highest classification the parent granted. */
  readonly classification: Classification;
}

/** The ceiling a parent's granted details set (rules 1 and 2 above). */
export function ceilingOf(parentDetails: readonly McpToolDetail[]): AttenuationCeiling {
  const actions = [...new Set(parentDetails.flatMap((d) => d.actions))];
  return { actions, classification: highestClassification(...parentDetails.map((d) => d.data_classification)) };
}

export interface AttenuationRequest {
  readonly parent: {
    /** The parent token's `act`. */
    readonly act: Act;
    /** The parent token's granted `authorization_details`. */
    readonly authorizationDetails: readonly McpToolDetail[];
  };
  /** The `authorization_details` requested for the downstream resource. */
  readonly requested: readonly McpToolDetail[];
  /**
   * The registry's classification of a downstream tool; undefined for a tool the resource
   * does not have (left in place: the tool resolution step refuses unknown tools).
   */
  readonly registryClassification?: (tool: string) => Classification | undefined;
  readonly maxDepth?: number;
}

/** Something the request asked for that the parent does not allow. */
export interface Attenuated {
  readonly tool: string;
  readonly actions: readonly Action[];
  readonly reason: string;
}

export interface Attenuation {
  /** The new token's chain depth (hops). */
  readonly depth: number;
  readonly ceiling: AttenuationCeiling;
  /** What may be requested at most: the request narrowed to the ceiling. */
  readonly details: McpToolDetail[];
  /** What was taken out, and why (for the audit trail). */
  readonly removed: Attenuated[];
}

/**
 * Narrows a chained request to what its parent allows (see the rules above). Throws
 * {@link AccessDenied} when the chain is too deep or when nothing of the request remains.
 */
export function attenuate(request: AttenuationRequest): Attenuation {
  const depth = nextChainDepth(request.parent.act, request.maxDepth);
  const ceiling = ceilingOf(request.parent.authorizationDetails);
  const allowedActions = new Set<Action>(ceiling.actions);
  const details: McpToolDetail[] = [];
  const removed: Attenuated[] = [];

  for (const detail of request.requested) {
    const actions = detail.actions.filter((a) => allowedActions.has(a));
    const excess = detail.actions.filter((a) => !allowedActions.has(a));
    const tools: string[] = [];
    for (const tool of detail.tools) {
      const classification = effectiveClassification(request.registryClassification?.(tool) ?? 'public', detail.data_classification);
      if (compareClassifications(classification, ceiling.classification) > 0) {
        removed.push({ tool, actions: detail.actions, reason: `classified ${classification}, above the parent token's ${ceiling.classification}` });
        continue;
      }
      if (excess.length > 0) removed.push({ tool, actions: excess, reason: `the parent token grants none of ${excess.join(', ')}` });
      if (actions.length > 0) tools.push(tool);
    }
    if (tools.length > 0 && actions.length > 0) details.push({ ...detail, tools, actions });
  }

  if (details.length === 0) {
    const why = removed.length > 0 ? `: ${removed.map((r) => `${r.tool} (${r.reason})`).join('; ')}` : '';
    throw new AccessDenied(`the parent token allows none of the requested tools and actions${why.length > 512 ? `${why.slice(0, 512)}…` : why}`);
  }
  return { depth, ceiling, details, removed };
}
