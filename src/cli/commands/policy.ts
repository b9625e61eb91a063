import type { Command } from 'commander';
import { adminClient, globals, readText } from '../context';
import { CliFailure } from '../errors';
import { fields, json, note, print } from '../output';

interface PolicySet {
  version: number;
  policies: string;
  created_at?: string;
  created_by?: string;
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('the Cedar policy set in force');

  policy
    .command('get')
    .description('print the policy set in force (its text; the version goes to stderr)')
    .action(async (_o: unknown, cmd: Command) => {
      const set = await adminClient(cmd).json<PolicySet>('GET', '/v1/admin/policies');
      if (globals(cmd).output === 'json') return void process.stdout.write(json(set));
      note(set.version === 0 ? '# no policy set: everything is denied' : `# version ${set.version}, by ${set.created_by ?? '?'} at ${set.created_at ?? '?'}`);
      process.stdout.write(set.policies.endsWith('\n') || set.policies === '' ? set.policies : `${set.policies}\n`);
    });

  policy
    .command('set')
    .description('validate and put in force a policy set (from the next request, on every replica)')
    .argument('<file>', 'the Cedar policy file')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const text = readText(file, 'policy file');
      const res = await adminClient(cmd).json<{ version: number; created_at: string }>('PUT', '/v1/admin/policies', { policies: text });
      print(globals(cmd).output, res, () => fields([['version', res.version], ['created_at', res.created_at]]));
    });

  policy
    .command('validate')
    .description('check a policy file against Writ\'s Cedar schema, offline (no broker needed)')
    .argument('<file>', 'the Cedar policy file')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const text = readText(file, 'policy file');
      // Loaded only here: Cedar's WebAssembly is large, and no other command needs it.
      const { validatePolicies } = await import('../../policy/engine');
      const result = validatePolicies(text);
      const view = result.ok ? { file, ok: true } : { file, ok: false, errors: result.errors };
      print(globals(cmd).output, view, () => (result.ok ? `${file}: valid\n` : result.errors.map((e) => `${file}: ${e}\n`).join('')));
      if (!result.ok) throw new CliFailure(`${file} is not a valid policy set (${result.errors.length} error${result.errors.length === 1 ? '' : 's'})`);
    });
}
