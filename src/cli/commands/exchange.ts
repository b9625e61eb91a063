import { Option, type Command } from 'commander';
import { toolAction, uuid } from '../args';
import { globals, readStdin, readText, svidClient } from '../context';
import { fields, print } from '../output';
import { writeSecret } from '../secrets';
import { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE_BY_NAME } from '../../tokens/rfc8693';

const GRANT_TYPE = TOKEN_EXCHANGE_GRANT_TYPE;
const TOKEN_TYPES = TOKEN_TYPE_BY_NAME;

/** An RFC 8693 token response with Writ's members (RFC 9396 authorization_details, the task). */
interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
  task_id: string;
  authorization_details: { type: string; tools: string[]; actions: string[]; data_classification?: string }[];
}

const granted = (r: TokenResponse) => r.authorization_details.flatMap((d) => d.tools.flatMap((t) => d.actions.map((a) => `${t}:${a}`)));
/** What was asked for and not granted (RFC 9396 §7: the answer may grant less than asked). */
const refused = (asked: readonly [string, string][], r: TokenResponse) => {
  const got = new Set(granted(r));
  return asked.map(([tool, action]) => `${tool}:${action}`).filter((t) => !got.has(t));
};

export function registerExchange(program: Command): void {
  program
    .command('exchange')
    .description('RFC 8693 token exchange over mTLS with the SVID in DIR: the user\'s token for a task token (prints it)')
    .requiredOption('--dir <dir>', 'the connector\'s SVID directory')
    .requiredOption('--subject-token <file>', 'a file holding the user\'s ID token (or an access token to chain; - reads stdin)')
    .addOption(new Option('--subject-token-type <type>', 'what the subject token is').choices(Object.keys(TOKEN_TYPES)).default('id_token'))
    .requiredOption('--resource <uri>', 'the MCP server (RFC 8707 resource) the task calls')
    .requiredOption('--tool <name:action>', 'a tool and action the task needs (repeat for several): search:read', toolAction)
    .option('--task-id <id>', 'add the token to this task of the same user and connector', uuid)
    .option('--token-file <file>', 'write the access token to this file (mode 0600) instead of printing it')
    .action(async (o: { dir: string; subjectToken: string; subjectTokenType: keyof typeof TOKEN_TYPES; resource: string; tool: [string, string][]; taskId?: string; tokenFile?: string }, cmd: Command) => {
      const subjectToken = (o.subjectToken === '-' ? await readStdin() : readText(o.subjectToken, 'subject token file')).trim();
      const params = new URLSearchParams({
        grant_type: GRANT_TYPE,
        subject_token: subjectToken,
        subject_token_type: TOKEN_TYPES[o.subjectTokenType],
        resource: o.resource,
        authorization_details: JSON.stringify(o.tool.map(([tool, action]) => ({ type: 'mcp_tool', tools: [tool], actions: [action] }))),
        ...(o.taskId !== undefined && { task_id: o.taskId }),
      });
      const res = await svidClient(cmd, o.dir).form<TokenResponse>('/oauth2/token', params);
      const notGranted = refused(o.tool, res);
      const shown: Record<string, unknown> = { ...writeSecret(res, 'access_token', o.tokenFile), refused: notGranted };
      print(globals(cmd).output, shown, () =>
        fields([
          ['access_token', shown.access_token ?? `written to ${shown.access_token_file}`],
          ['expires_in', `${res.expires_in}s`],
          ['expires_at', new Date(Date.now() + res.expires_in * 1000).toISOString()],
          ['task_id', res.task_id],
          ['granted', granted(res)],
          ['refused', notGranted.length > 0 ? notGranted : 'nothing'],
        ]),
      );
    });

  program
    .command('task')
    .description('tasks begun by token exchanges')
    .command('end')
    .description('end a task over mTLS with its connector\'s SVID: every token of the task is revoked')
    .argument('<id>', 'the task id', uuid)
    .requiredOption('--dir <dir>', 'the connector\'s SVID directory')
    .action(async (id: string, o: { dir: string }, cmd: Command) => {
      const res = await svidClient(cmd, o.dir).json<{ task_id: string; revoked: number }>('POST', `/v1/tasks/${encodeURIComponent(id)}/end`);
      print(globals(cmd).output, res, () => fields([['task_id', res.task_id], ['revoked', res.revoked]]));
    });
}
