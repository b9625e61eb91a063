/**
 * How the CLI fails. Each error becomes one line on stderr and an exit code: 1 when the broker
 * (or the local file system) refuses, 2 for usage errors, 3 when the broker cannot be reached
 * or its certificate is not trusted — so that a script can tell "no" from "no answer".
 */

/** Exit codes, as the README documents them. */
export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNREACHABLE: 3 } as const;

/** Something the command could not do: one line on stderr, exit 1. */
export class CliFailure extends Error {
  readonly exitCode: number = EXIT.REFUSED;
}

/**
 * The broker answered with an error: an RFC 9457 problem (`detail`) or an RFC 6749 §5.2
 * OAuth error (`error_description`). `reason` is the problem type's last segment or the
 * OAuth `error` code.
 */
export class BrokerRefused extends CliFailure {
  constructor(
    readonly status: number,
    readonly reason: string,
    detail: string,
  ) {
    super(`${detail} (${status} ${reason})`);
  }
}

/** The broker could not be reached, its TLS certificate was not trusted, or its answer was cut short: exit 3. */
export class BrokerUnreachable extends CliFailure {
  override readonly exitCode: number = EXIT.UNREACHABLE;
}

/** Squeezes a message onto one line, so stderr stays one line per failure. */
export const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
