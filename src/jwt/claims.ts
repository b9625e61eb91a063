/**
 * Reading claims of a verified JWT.
 *
 * ```ts
 * claimValue({ 'kubernetes.io': { namespace: 'ci' } }, 'kubernetes.io.namespace'); // 'ci'
 * ```
 */

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The value of a claim by name: the name itself if it is a claim, otherwise a path through
 * objects whose keys may hold dots (`kubernetes.io.namespace` → claims["kubernetes.io"].namespace).
 */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  const parts = name.split('.');
  for (let i = parts.length - 1; i >= 1; i--) {
    const head = parts.slice(0, i).join('.');
    const inner = Object.hasOwn(claims, head) ? claims[head] : undefined;
    if (isRecord(inner)) {
      const value = claimValue(inner, parts.slice(i).join('.'));
      if (value !== undefined) return value;
    }
  }
  return undefined;
}
