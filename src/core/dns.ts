// RFC 1123 §2.1 host names: LDH labels of 1 to 63 characters, at most 253 characters in all.
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** Whether `name` is a valid DNS host name (no wildcards, no trailing dot). */
export function isDnsName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}
