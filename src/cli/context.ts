import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BrokerClient } from './client';
import { currentSession, sessionFile } from './session';
import { CliFailure, EXIT } from './errors';
import type { OutputFormat } from './output';

/** The global options, as every command sees them (`optsWithGlobals`). */
export interface GlobalOptions {
  server: string;
  ca?: string;
  token?: string;
  svidDir?: string;
  output: OutputFormat;
}

/** The global options; an empty value (WRIT_CA= in the environment, say) counts as not given. */
export function globals(cmd: Command): GlobalOptions {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  for (const key of ['ca', 'token', 'svidDir'] as const) if (g[key] === '') delete g[key];
  return g;
}

/** A usage error found after parsing (a missing credential, options that exclude each other): the message, the usage, exit 2. */
export function usage(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: EXIT.USAGE, code: 'writ.usage' });
  throw new Error('unreachable'); // cmd.error exits or throws
}

/** Reads a local file; a failure is one line naming the file. */
export function readText(path: string, what = 'file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliFailure(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** All of standard input, as text (for `-` in place of a file). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The files of an SVID directory (what `writ attest` writes). */
export const SVID_FILES = { key: 'key.pem', svid: 'svid.pem', bundle: 'bundle.pem', p12: 'svid.p12' } as const;

function serverOf(cmd: Command, g: GlobalOptions): string {
  let url: URL;
  try {
    url = new URL(g.server);
  } catch {
    usage(cmd, `--server ${JSON.stringify(g.server)} is not a URL`);
  }
  if (url.protocol !== 'https:') usage(cmd, '--server must be an https:// URL: the broker speaks only TLS');
  return g.server;
}

const trust = (g: GlobalOptions, fallback?: string) => (g.ca !== undefined ? readText(g.ca, 'CA bundle') : fallback);

/** A client with no credentials (attestation, the bundle). Trusts --ca / WRIT_CA, else Node's roots. */
export function anonymousClient(cmd: Command): BrokerClient {
  const g = globals(cmd);
  const ca = trust(g);
  return new BrokerClient({ server: serverOf(cmd, g), ...(ca !== undefined && { ca }) });
}

/** mTLS with the SVID in `dir` (key.pem, svid.pem); the broker is trusted by --ca, else the directory's bundle.pem. */
export function svidClient(cmd: Command, dir: string): BrokerClient {
  const g = globals(cmd);
  return new BrokerClient({
    server: serverOf(cmd, g),
    ca: trust(g, readText(join(dir, SVID_FILES.bundle), 'trust bundle')),
    cert: readText(join(dir, SVID_FILES.svid), 'SVID'),
    key: readText(join(dir, SVID_FILES.key), 'SVID key'),
  });
}

/**
 * A client for the admin API. The credential, first found: --token, --svid-dir (mTLS with
 * an admin SVID), WRIT_ADMIN_TOKEN, WRIT_SVID_DIR. None: a usage error.
 */
export function adminClient(cmd: Command): BrokerClient {
  const g = globals(cmd);
  const from = (key: 'token' | 'svidDir') => (g[key] === undefined ? undefined : cmd.getOptionValueSourceWithGlobals(key));
  const order: ['token' | 'svidDir', string][] = [['token', 'cli'], ['svidDir', 'cli'], ['token', 'env'], ['svidDir', 'env']];
  const chosen = order.find(([key, source]) => from(key) === source)?.[0];
  if (chosen === 'svidDir') return svidClient(cmd, g.svidDir!);
  if (chosen !== 'token') {
    // Last: the person signed in with `writ login` (for this broker, until the token expires).
    const session = currentSession(sessionFile(), serverOf(cmd, g));
    if (session) {
      const ca = trust(g);
      return new BrokerClient({ server: serverOf(cmd, g), bearer: session.token, ...(ca !== undefined && { ca }) });
    }
    usage(cmd, 'admin commands need a credential: writ login, --token, WRIT_ADMIN_TOKEN, or --svid-dir with an admin SVID');
  }
  if (!/^[\x21-\x7e]{1,512}$/.test(g.token!)) usage(cmd, 'the admin token must be 1 to 512 printable ASCII characters');
  const ca = trust(g);
  return new BrokerClient({ server: serverOf(cmd, g), bearer: g.token!, ...(ca !== undefined && { ca }) });
}
