import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';

export const MAIN = resolve(__dirname, '../../dist/main.js');

export interface WritProcess {
  readonly child: ChildProcess;
  /** Parsed JSON log lines from stdout. */
  readonly logs: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the listener URLs once the broker logs "writ listening"; rejects if it exits first. */
  readonly ready: Promise<{ apiUrl: string; opsUrl: string }>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the built broker (dist/main.js) as its own process in `cwd`, with only the
 * environment given (plus PATH), on ephemeral ports unless told otherwise; `command` runs
 * instead of `node dist/main.js` (e.g. an installed package's `writ serve`).
 */
export function spawnWrit(cwd: string, env: Record<string, string | undefined> = {}, command: readonly string[] = [process.execPath, MAIN]): WritProcess {
  const child = spawn(command[0]!, command.slice(1), {
    cwd,
    env: { PATH: process.env.PATH, WRIT_PORT: '0', WRIT_OPS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let buffered = '';
  let onListening: (urls: { apiUrl: string; opsUrl: string }) => void = () => undefined;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const ready = new Promise<{ apiUrl: string; opsUrl: string }>((res, rej) => {
    onListening = res;
    void exit.then(({ code }) => rej(new Error(`writ exited with ${code} before listening: ${stderr}`)));
  });
  ready.catch(() => undefined);
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === 'writ listening') onListening({ apiUrl: entry.api as string, opsUrl: entry.ops as string });
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return { child, logs, stderr: () => stderr, ready, exit };
}

/** Environment for a broker keeping its files under `dir` and using `databaseUrl` if set. */
export const brokerEnv = (dir: string, databaseUrl: string | undefined, extra: Record<string, string> = {}) => ({
  WRIT_DATA_DIR: join(dir, 'data'),
  WRIT_CA_DIR: join(dir, 'certs'),
  ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  ...extra,
});
