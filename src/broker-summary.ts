/** What the start-up summary tells an operator at a terminal. */
export interface StartupSummary {
  readonly apiUrl: string;
  readonly opsUrl: string;
  readonly bundleUrl: string;
  readonly trustDomain: string;
  /** The policy set in force: its version and how many policies it has; undefined when none was ever stored. */
  readonly policy: { readonly version: string; readonly policies: number } | undefined;
  readonly identityProviders: number;
  readonly signalTransmitters: number;
  /** Where the unused bootstrap admin token is kept, if it is. */
  readonly adminTokenFile: string | undefined;
}

/** Where a human-readable block goes: shown only when `isTTY` (JSON logs go to stdout either way). */
export interface Terminal {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** The block written to stderr after `writ listening` when it is a terminal. Names no secret. */
export function startupSummary(s: StartupSummary): string {
  const lines = [
    `writ is running (trust domain ${s.trustDomain})`,
    `  API:     ${s.apiUrl}`,
    `  bundle:  ${s.bundleUrl}`,
    `  ops:     ${s.opsUrl}/readyz, ${s.opsUrl}/metrics`,
    s.policy
      ? `  policy:  version ${s.policy.version}, ${plural(s.policy.policies, 'policy', 'policies')}${s.policy.policies === 0 ? ': every exchange is denied' : ''}`
      : '  policy:  no policy: every exchange is denied (set WRIT_POLICY_FILE)',
    s.identityProviders > 0
      ? `  identity providers: ${s.identityProviders}`
      : '  identity providers: none: every exchange is refused (set WRIT_IDENTITY_PROVIDERS)',
    `  signal transmitters: ${s.signalTransmitters}`,
    ...(s.adminTokenFile ? [`  admin token: in ${s.adminTokenFile} until its first use`] : []),
    'Next: register a workload, as the README\'s "Connect a workload" shows.',
  ];
  return `${lines.join('\n')}\n`;
}

/** Writes the summary to `terminal` if it is a TTY; returns whether it did. */
export function showStartupSummary(terminal: Terminal, s: StartupSummary): boolean {
  if (!terminal.isTTY) return false;
  terminal.write(startupSummary(s));
  return true;
}
