import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { collect } from '../args';
import { anonymousClient, globals, readText, SVID_FILES, svidClient, usage } from '../context';
import { newKeyAndCsr } from '../csr';
import { fields, print } from '../output';
import { writeSecret } from '../secrets';
import { p12Password, refuseExisting, writeSvidDir, type IssuedSvid } from '../svid-files';

type Format = 'pem' | 'p12';

const formatOption = () => new Option('--format <format>', 'pem: key.pem, svid.pem, bundle.pem; p12: also svid.p12 (password-protected)').choices(['pem', 'p12']);
const passwordOption = () => new Option('--p12-password-file <file>', 'the PKCS#12 password (first line); else WRIT_P12_PASSWORD');

/** The PKCS#12 password when one is wanted; asked for before anything is requested from the broker. */
function passwordFor(cmd: Command, format: Format, file: string | undefined): { password: string } | undefined {
  if (format !== 'p12') return undefined;
  const password = p12Password(file);
  if (password === undefined) usage(cmd, '--format p12 needs a password: --p12-password-file FILE or WRIT_P12_PASSWORD');
  return { password };
}

function showIssued(cmd: Command, issued: IssuedSvid, files: Record<string, string>): void {
  const view = { spiffe_id: issued.spiffe_id, expires_at: issued.expires_at, files };
  print(globals(cmd).output, view, () => fields([['spiffe_id', issued.spiffe_id], ['expires_at', issued.expires_at], ...Object.entries(files)]));
}

export function registerSvid(program: Command): void {
  program
    .command('attest')
    .description('attest with a join token: a new local key, its CSR, and the X.509-SVID and trust bundle written to DIR')
    .addOption(new Option('--join-token <token>', 'the join token (prefer --join-token-file: arguments show in the process list)').conflicts('joinTokenFile'))
    .option('--join-token-file <file>', 'read the join token from this file (keeps it out of the process list)')
    .requiredOption('--out <dir>', 'where to write key.pem (0600), svid.pem, bundle.pem')
    .addOption(formatOption().default('pem'))
    .addOption(passwordOption())
    .option('--force', 'replace an SVID already in DIR')
    .action(async (o: { joinToken?: string; joinTokenFile?: string; out: string; format: Format; p12PasswordFile?: string; force?: boolean }, cmd: Command) => {
      if (o.joinToken === undefined && o.joinTokenFile === undefined) usage(cmd, 'give --join-token or --join-token-file');
      const token = o.joinToken ?? readText(o.joinTokenFile!, 'join token file').trim();
      const p12 = passwordFor(cmd, o.format, o.p12PasswordFile);
      refuseExisting(o.out, o.force === true);
      const { key, keyPem, csrPem } = newKeyAndCsr();
      const issued = await anonymousClient(cmd).json<IssuedSvid>('POST', '/v1/attest', { attestor: 'join_token', evidence: { token }, csr: csrPem });
      showIssued(cmd, issued, await writeSvidDir(o.out, issued, key, keyPem, p12));
    });

  const svid = program.command('svid').description('the X.509-SVID in a directory');
  svid
    .command('renew')
    .description('renew over mTLS with the current SVID: a new key and CSR; rewrites the files in DIR')
    .requiredOption('--dir <dir>', 'the SVID directory (key.pem, svid.pem, bundle.pem)')
    .addOption(formatOption())
    .addOption(passwordOption())
    .action(async (o: { dir: string; format?: Format; p12PasswordFile?: string }, cmd: Command) => {
      // A directory that holds a PKCS#12 keeps one: a stale svid.p12 beside a renewed SVID would be a trap.
      const format = o.format ?? (existsSync(join(o.dir, SVID_FILES.p12)) ? 'p12' : 'pem');
      const p12 = passwordFor(cmd, format, o.p12PasswordFile);
      const client = svidClient(cmd, o.dir);
      const { key, keyPem, csrPem } = newKeyAndCsr();
      const issued = await client.json<IssuedSvid>('POST', '/v1/svid/renew', { csr: csrPem });
      showIssued(cmd, issued, await writeSvidDir(o.dir, issued, key, keyPem, p12));
    });

  program
    .command('jwt-svid')
    .description('a JWT-SVID for the audiences given, over mTLS with the SVID in DIR (prints the token)')
    .requiredOption('--dir <dir>', 'the SVID directory')
    .requiredOption('--audience <aud>', 'an audience (repeat for several)', collect)
    .option('--token-file <file>', 'write the JWT-SVID to this file (mode 0600) instead of printing it')
    .action(async (o: { dir: string; audience: string[]; tokenFile?: string }, cmd: Command) => {
      const jwt = await svidClient(cmd, o.dir).json<{ token: string; spiffe_id: string; expires_at: string }>('POST', '/v1/jwt-svid', { audience: o.audience });
      const shown = writeSecret(jwt, 'token', o.tokenFile);
      print(globals(cmd).output, shown, () =>
        fields([
          ['token', shown.token ?? `written to ${shown.token_file}`],
          ['spiffe_id', jwt.spiffe_id],
          ['audience', o.audience],
          ['expires_at', jwt.expires_at],
        ]),
      );
    });
}
