import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors';
import { PolicyInvalid } from './errors';
import type { PolicyStore } from './store';

/** The text of the operator's policy file (WRIT_POLICY_FILE); a file that cannot be read stops start-up. */
export function readPolicyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WRIT_POLICY_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`, err);
  }
}

/** Runs `use` on the policy file's text; Cedar's refusal of it becomes the one-line WRIT_POLICY_FILE error. */
export async function withPolicyFile<T>(path: string, use: (text: string) => T | Promise<T>): Promise<T> {
  const text = readPolicyFile(path);
  try {
    return await use(text);
  } catch (err) {
    if (err instanceof PolicyInvalid) throw new ConfigError('WRIT_POLICY_FILE', `${path} is not a valid policy set: ${err.errors.join('; ')}`, err);
    throw err;
  }
}

/** Loads the operator's policy file (WRIT_POLICY_FILE) as a new version if it changed; an invalid file stops start-up. */
export async function seedPolicies(policies: PolicyStore, path: string): Promise<void> {
  await withPolicyFile(path, (text) => policies.seed(text, path)); // a new version is audited as policy.updated in its transaction
}
