const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses a duration in seconds: a whole number of seconds ("300") or a number with one
 * unit ("90s", "5m", "1h", "365d"). Returns undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNITS[m[2] || 's']!;
}
