/**
 * What commands print: a human table by default, or stable JSON with `--output json`
 * (2-space indented, one document per invocation, the broker's own field names).
 */

export type OutputFormat = 'table' | 'json';

/** One column of a list: its header and how to read the cell from a row. */
export type Column<T> = [header: string, cell: (row: T) => unknown];

const cellText = (v: unknown): string => {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map(cellText).join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v).replace(/[\r\n\t]+/g, ' ');
};

/** Rows under upper-case headers, columns separated by two spaces. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = [columns.map(([h]) => h), ...rows.map((r) => columns.map(([, c]) => cellText(c(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** A single object as `key  value` lines, in the order given. */
export function fields(pairs: readonly [label: string, value: unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`).join('\n') + '\n';
}

export const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** Prints `value` as JSON, or as the table `human` renders. */
export function print(format: OutputFormat, value: unknown, human: () => string): void {
  process.stdout.write(format === 'json' ? json(value) : human());
}

/** A note for people (pagination hints, what was written where): stderr, so stdout stays data. */
export const note = (text: string): void => void process.stderr.write(`${text}\n`);
