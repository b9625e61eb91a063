/**
 * `writ login`'s credential: the person's sign-in token (for WRIT_ADMIN_AUDIENCE), kept until it
 * expires in a file only its owner can read (0600, in a 0700 directory), for one broker. Admin
 * commands use it when no other credential is given; `writ logout` deletes it.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface SignInSession {
  /** The broker it was made for (`--server`). */
  readonly server: string;
  readonly token: string;
  /** The token's `exp`, as an ISO time. */
  readonly expires_at: string;
}

/** `$WRIT_SESSION_FILE`, else `$XDG_CONFIG_HOME/writ/session.json`, else `~/.config/writ/session.json`. */
export function sessionFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WRIT_SESSION_FILE) return env.WRIT_SESSION_FILE;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'writ', 'session.json');
}

/** The claims of a compact JWT, unverified (the broker verifies; this only reads `exp`), or undefined. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the session atomically with mode 0600 (the directory 0700). */
export function saveSession(file: string, session: SignInSession): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const staged = `${file}.${process.pid}.tmp`;
  writeFileSync(staged, `${JSON.stringify(session)}\n`, { mode: 0o600 });
  chmodSync(staged, 0o600);
  renameSync(staged, file);
}

/** The session for `server` while it has not expired; undefined otherwise (an expired one is removed). */
export function currentSession(file: string, server: string, now = new Date()): SignInSession | undefined {
  if (!existsSync(file)) return undefined;
  let session: SignInSession;
  try {
    session = JSON.parse(readFileSync(file, 'utf8')) as SignInSession;
  } catch {
    return undefined;
  }
  if (session.server !== server || typeof session.token !== 'string') return undefined;
  if (!(new Date(session.expires_at).getTime() > now.getTime())) {
    rmSync(file, { force: true });
    return undefined;
  }
  return session;
}

export function removeSession(file: string): boolean {
  if (!existsSync(file)) return false;
  rmSync(file, { force: true });
  return true;
}
