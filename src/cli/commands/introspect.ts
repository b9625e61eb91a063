import type { Command } from 'commander';
import { adminClient, globals, readStdin, readText, svidClient, usage } from '../context';
import { fields, print } from '../output';

/** RFC 7662 §2.2: `active`, and for an active token its claims (Writ's access-token claims). */
type Introspection = { active: boolean } & Record<string, unknown>;

/** The claims first people look for, in this order; any others follow as the broker sent them. */
const FIRST = ['active', 'token_type', 'sub', 'aud', 'client_id', 'iss', 'exp', 'iat', 'jti', 'task_id', 'scope'];

const time = (v: unknown) => (typeof v === 'number' ? `${v} (${new Date(v * 1000).toISOString()})` : v);

export function registerIntrospect(program: Command): void {
  program
    .command('introspect')
    .description('RFC 7662 introspection of an access token: active, and its claims (the token itself is never printed)')
    .argument('<token-file>', 'a file holding the token, or - for stdin')
    .option('--dir <dir>', 'introspect over mTLS as the resource whose SVID is in DIR (default: as the admin)')
    .action(async (file: string, o: { dir?: string }, cmd: Command) => {
      const token = (file === '-' ? await readStdin() : readText(file, 'token file')).trim();
      if (token === '') usage(cmd, `no token in ${file === '-' ? 'standard input' : file}`);
      // RFC 7662 §2.1: the token as a form parameter; the caller is the resource (its SVID) or the admin (bearer).
      const client = o.dir !== undefined ? svidClient(cmd, o.dir) : adminClient(cmd);
      const answer = await client.form<Introspection>('/oauth2/introspect', new URLSearchParams({ token }));
      print(globals(cmd).output, answer, () => {
        const keys = [...FIRST.filter((k) => k in answer), ...Object.keys(answer).filter((k) => !FIRST.includes(k))];
        return fields(keys.map((k) => [k, k === 'exp' || k === 'iat' || k === 'nbf' ? time(answer[k]) : answer[k]]));
      });
    });
}
