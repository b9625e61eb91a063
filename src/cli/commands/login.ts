import type { Command } from 'commander';
import { BrokerClient } from '../client';
import { globals, readStdin, readText, usage } from '../context';
import { CliFailure } from '../errors';
import { fields, note, print } from '../output';
import { jwtClaims, removeSession, saveSession, sessionFile } from '../session';

/** `writ login` / `writ logout`: sign in to the admin API as yourself, and out again. */
export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('sign in to the admin API as yourself: keeps your sign-in token (for WRIT_ADMIN_AUDIENCE) until it expires, mode 0600')
    .option('--id-token <file>', 'your ID token from the identity provider, issued for Writ\'s sign-in client (- reads stdin)')
    .option('--device', 'sign in in a browser with a code (RFC 8628 device authorization grant) at the provider the broker names')
    .option('--issuer <url>', 'with --device: which of the broker\'s identity providers (when it has several)')
    .option('--dev', 'sign in at writ dev\'s provider (WRIT_DEV_OP) with its sign-in client, as --user')
    .option('--user <name>', 'the writ dev user to sign in as (with --dev)')
    .action(async (o: { idToken?: string; device?: boolean; issuer?: string; dev?: boolean; user?: string }, cmd: Command) => {
      if ([o.idToken !== undefined, o.device === true, o.dev === true].filter(Boolean).length !== 1) usage(cmd, 'give one of --id-token FILE, --device, or --dev --user NAME');
      let token: string;
      if (o.device) {
        const g = globals(cmd);
        const anonymous = new BrokerClient({ server: g.server, ...(g.ca !== undefined && { ca: readText(g.ca, 'CA bundle') }) });
        const where = await anonymous.json<{ client_id: string; issuers: string[] }>('GET', '/v1/sign-in');
        const issuer = o.issuer ?? (where.issuers.length === 1 ? where.issuers[0] : undefined);
        if (issuer === undefined || !where.issuers.includes(issuer)) usage(cmd, `--issuer is one of ${where.issuers.join(', ') || '(none configured)'}`);
        const { deviceSignIn } = await import('../device');
        token = await deviceSignIn({
          issuer: issuer!,
          clientId: where.client_id,
          onCode: (c) => note(`To sign in, open ${c.verification_uri_complete ?? c.verification_uri} and check the code ${c.user_code} (it expires in ${Math.round(c.expires_in / 60)} minutes).`),
        });
      } else if (o.dev) {
        if (o.user === undefined) usage(cmd, '--dev needs --user NAME (a user of writ dev\'s users.yaml)');
        const { fetchIdToken } = await import('../../dev/id-token');
        const { DEV_CONSOLE_CLIENT_ID } = await import('../../dev/op');
        token = await fetchIdToken({ issuer: process.env.WRIT_DEV_OP ?? 'http://127.0.0.1:9400', username: o.user!, clientId: DEV_CONSOLE_CLIENT_ID }).catch((err: Error) => {
          throw new CliFailure(err.message);
        });
      } else token = (o.idToken === '-' ? await readStdin() : readText(o.idToken!, 'ID token file')).trim();
      const claims = jwtClaims(token);
      if (!claims || typeof claims.exp !== 'number') usage(cmd, 'the token is not a JWT with an expiry (exp)');
      const expiresAt = new Date((claims!.exp as number) * 1000);
      if (expiresAt.getTime() <= Date.now()) throw new CliFailure(`the token expired at ${expiresAt.toISOString()}; get a new one`);
      const g = globals(cmd);
      // The broker says who it takes you for, and your role, before anything is kept.
      const client = new BrokerClient({ server: g.server, bearer: token, ...(g.ca !== undefined && { ca: readText(g.ca, 'CA bundle') }) });
      await client.json('GET', '/v1/admin/role-bindings');
      const file = sessionFile();
      saveSession(file, { server: g.server, token, expires_at: expiresAt.toISOString() });
      const shown = { user: claims!.sub, issuer: claims!.iss, expires_at: expiresAt.toISOString(), session_file: file };
      print(g.output, shown, () => fields(Object.entries(shown)));
    });

  program
    .command('logout')
    .description('forget the sign-in token writ login kept')
    .action(() => {
      note(removeSession(sessionFile()) ? `signed out (${sessionFile()} removed)` : 'not signed in');
    });
}
