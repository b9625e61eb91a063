import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors';
import { PolicyInvalid } from './errors';
import type { PolicyStore } from './store';

/** Loads the operator's policy file (WRIT_POLICY_FILE) as a new version if it changed; an invalid file stops start-up. */
export async function seedPolicies(policies: PolicyStore, path: string): Promise<void> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WRIT_POLICY_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`, err);
  }
  try {
    await policies.seed(text, path); // a new version is audited as policy.updated in its transaction
  } catch (err) {
    if (err instanceof PolicyInvalid) throw new ConfigError('WRIT_POLICY_FILE', `${path} is not a valid policy set: ${err.errors.join('; ')}`, err);
    throw err;
  }
}
