/** Where and how a command prints: streams, JSON mode, colour. */
export interface Output {
  /** `--json`: one JSON document on stdout per command. */
  readonly json: boolean;
  /** Colour enabled (a TTY, no `--no-color`, no `NO_COLOR`; `FORCE_COLOR` forces it). */
  readonly color: boolean;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  /** Write a line (or lines) to stdout. */
  line(text?: string): void;
  /** Write a line to stderr (notes, warnings, prompts). */
  note(text: string): void;
  /** Print a value as the command's JSON document. */
  emit(value: unknown): void;
}

/** Whether to colour `stream` given the `--color` flag and the environment. */
export function colorEnabled(
  flag: boolean,
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv,
): boolean {
  if (!flag) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0')
    return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** An Output over the process streams. */
export function createOutput(json: boolean, color: boolean): Output {
  const { stdout, stderr } = process;
  return {
    json,
    color,
    stdout,
    stderr,
    line: (text = '') => {
      stdout.write(`${text}\n`);
    },
    note: (text) => {
      stderr.write(`${text}\n`);
    },
    emit: (value) => {
      stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, dim: 2, bold: 1 } as const;

/** A colour name. */
export type Color = keyof typeof CODES;

/** Wrap `text` in an ANSI colour when `on`. */
export function paint(on: boolean, color: Color, text: string): string {
  return on ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters.
const ANSI = /\u001b\[[0-9;]*m/g;

/** Printed width of `text` (ANSI escapes do not count). */
export function visibleWidth(text: string): number {
  return [...text.replace(ANSI, '')].length;
}

/** A column of a table: header and alignment (`r` for numbers). */
export interface Column {
  header: string;
  align?: 'l' | 'r';
}

/** Rows as an aligned table: upper-case headers, two spaces between columns, no trailing blanks. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) =>
    Math.max(visibleWidth(c.header), ...rows.map((r) => visibleWidth(r[i] ?? ''))),
  );
  const fmt = (cells: readonly string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? '';
        const pad = ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleWidth(cell)));
        return c.align === 'r' ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [fmt(columns.map((c) => c.header.toUpperCase())), ...rows.map(fmt)].join('\n');
}

/** `0.3172` → `31.72%`. */
export function percent(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)}%`;
}

/** `12345` → `12,345`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Bytes in a readable unit: `1005080` → `981.5 KiB`. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Seconds as `3d 4h`, `2h 5m`, `4m 10s` or `12s`. */
export function uptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

/** `yes`/`no`, green/red when coloured. */
export function yesNo(on: boolean, value: boolean): string {
  return value ? paint(on, 'green', 'yes') : paint(on, 'red', 'no');
}
