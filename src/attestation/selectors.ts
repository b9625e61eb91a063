/**
 * Selectors are `<attestor>:<type>:<value>`. These are the types each attestor proves;
 * an entry may name only these, so a typo cannot make an entry that nothing matches
 * (or, worse, one that something unexpected matches).
 */
const TYPES: Record<string, readonly string[]> = {
  join_token: [''],
  oidc: ['iss', 'sub', 'claim'],
  x509pop: ['subject_cn', 'ca', 'serial', 'san', 'subject'],
  // Workload selectors: a node agent (`writ agent`) attests its callers and proves these, as SPIRE's
  // unix and k8s workload attestors name them; only entries under an agent (parent_id) carry them.
  unix: ['uid', 'user', 'gid', 'group', 'supplementary_gid', 'supplementary_group', 'path', 'sha256'],
  k8s: ['ns', 'sa', 'pod-uid', 'pod-name', 'container-name', 'node-name', 'pod-label'],
};

/** The attestors whose selectors a node agent proves for its callers, not the broker. */
export const WORKLOAD_ATTESTORS: readonly string[] = ['unix', 'k8s'];

/** Whether a selector is one a node agent proves (unix:, k8s:). */
export function isWorkloadSelector(selector: string): boolean {
  return WORKLOAD_ATTESTORS.includes(selector.slice(0, selector.indexOf(':')));
}

/** Returns why `selector` is not a valid selector, or undefined when it is. */
export function selectorProblem(selector: string): string | undefined {
  if (selector.length > 1024) return 'selectors are at most 1024 characters';
  const [attestor, type, ...rest] = selector.split(':');
  const types = attestor ? TYPES[attestor] : undefined;
  if (!types) return `selector "${selector.slice(0, 64)}" names no known attestor (${Object.keys(TYPES).join(', ')})`;
  if (attestor === 'join_token') return type ? undefined : 'a join_token selector is join_token:<id>';
  if (!type || !types.includes(type)) return `selector type "${attestor}:${type ?? ''}" is not one of ${types.map((t) => `${attestor}:${t}`).join(', ')}`;
  const value = rest.join(':');
  if (value === '') return `selector "${selector.slice(0, 64)}" has no value`;
  if (type === 'claim' && rest.length < 2) return 'an oidc claim selector is oidc:claim:<name>:<value>';
  if (type === 'pod-label' && rest.length < 2) return 'a k8s pod label selector is k8s:pod-label:<name>:<value>';
  if (type === 'san' && !['dns', 'uri'].includes(rest[0]!)) return 'an x509pop SAN selector is x509pop:san:dns:<name> or x509pop:san:uri:<uri>';
  return undefined;
}

/** Whether an entry's selectors are all among the attested ones. An entry without selectors never matches. */
export function selectorsMatch(entrySelectors: readonly string[], attested: ReadonlySet<string>): boolean {
  return entrySelectors.length > 0 && entrySelectors.every((s) => attested.has(s));
}
