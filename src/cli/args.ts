import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../core/duration';
import { isUuid } from '../core/uuid';

/** Option value parsers: a bad value is a usage error naming the option (commander adds which). */

/** Seconds, or a number with one unit: `300`, `90s`, `10m`, `1h`, `7d`. */
export function seconds(value: string): number {
  const s = parseDuration(value);
  if (s === undefined) throw new InvalidArgumentError('expected a duration: seconds, or a number with s, m, h or d (300, 10m, 1h)');
  return s;
}

export function positiveInt(value: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new InvalidArgumentError('expected a positive whole number');
  return Number(value);
}

export function uuid(value: string): string {
  if (!isUuid(value)) throw new InvalidArgumentError('expected a UUID');
  return value;
}

export function spiffeId(value: string): string {
  if (!value.startsWith('spiffe://')) throw new InvalidArgumentError('expected a SPIFFE ID (spiffe://trust-domain/path)');
  return value;
}

/** For repeatable options: `--selector a --selector b` → ['a', 'b']. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** `NAME:ACTION` (the last colon separates them: tool names may hold colons). */
export function toolAction(value: string, previous: [string, string][] | undefined): [string, string][] {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) throw new InvalidArgumentError('expected NAME:ACTION, e.g. search:read');
  return [...(previous ?? []), [value.slice(0, i), value.slice(i + 1)]];
}
