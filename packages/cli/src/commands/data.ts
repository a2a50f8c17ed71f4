import type { Argv } from 'yargs';
import { command, type Session } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { isStdin, readInput } from '../input.js';
import type { Output } from '../output.js';

/** Human form of a value: strings as they are, everything else as indented JSON. */
export function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

/** A command-line value: JSON when it parses as JSON, else the text itself (`--string` forces text). */
export function parseValue(text: string, forceString: boolean): unknown {
  if (forceString) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function ttlText(ms: number): string {
  if (ms === 0) return 'no expiry';
  if (ms % 3_600_000 === 0) return `expires in ${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `expires in ${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `expires in ${ms / 1_000}s`;
  return `expires in ${ms}ms`;
}

function printed(out: Output, human: string, json: unknown): void {
  if (out.json) out.emit(json);
  else out.line(human);
}

/** `dcache get|set|del|exists`. */
export function dataCommands(y: Argv, s: Session): Argv {
  let d = command(y, s, {
    command: 'get <key>',
    describe: 'Print the value of a key (exit 3 when absent)',
    usage: 'dcache get <key>',
    builder: (b) => b.positional('key', { type: 'string', demandOption: true }),
    handler: async (a, ctx) => {
      const value = await ctx.client().get(a.key);
      printed(ctx.out, showValue(value), { key: a.key, value });
      return 0;
    },
  });
  d = command(d, s, {
    command: 'set <key> [value]',
    describe: 'Store a value: JSON when it parses as JSON, else a string; stdin when omitted or -',
    usage: 'dcache set <key> [value] [--ttl 30s] [--string]',
    builder: (b) =>
      b
        .positional('key', { type: 'string', demandOption: true })
        .positional('value', { type: 'string', describe: 'the value (- or omitted: stdin)' })
        .option('ttl', {
          type: 'string',
          describe: 'Expiry: 500ms, 30s, 1h30m or seconds; 0 = none (default: the server’s)',
        })
        .option('string', {
          type: 'boolean',
          default: false,
          describe: 'Store the text as a string',
        }),
    handler: async (a, ctx) => {
      let text: string;
      if (isStdin(a.value)) {
        if (process.stdin.isTTY)
          throw new UsageError('no value: give it as an argument or pipe it on stdin');
        text = (await readInput(undefined)).replace(/\r?\n$/, '');
        if (text === '')
          throw new UsageError(
            'no value on stdin (store an empty string with: dcache set <key> "")',
          );
      } else text = a.value as string;
      const value = parseValue(text, a.string);
      const r = await ctx
        .client()
        .set(a.key, value, a.ttl === undefined ? {} : { ttl: ttlArg(a.ttl) });
      printed(ctx.out, `stored ${r.key} (${ttlText(r.ttl_ms)})`, r);
      return 0;
    },
  });
  d = command(d, s, {
    command: 'del <key>',
    describe: 'Delete a key (exit 3 when absent)',
    usage: 'dcache del <key>',
    builder: (b) => b.positional('key', { type: 'string', demandOption: true }),
    handler: async (a, ctx) => {
      const r = await ctx.client().del(a.key);
      printed(ctx.out, `deleted ${r.key}`, r);
      return 0;
    },
  });
  d = command(d, s, {
    command: 'exists <key>',
    describe: 'Whether a key exists (exit 0 yes, 3 no)',
    usage: 'dcache exists <key>',
    builder: (b) => b.positional('key', { type: 'string', demandOption: true }),
    handler: async (a, ctx) => {
      const found = await ctx.client().exists(a.key);
      printed(ctx.out, found ? `${a.key} exists` : `${a.key} does not exist`, {
        key: a.key,
        exists: found,
      });
      return found ? EXIT.OK : EXIT.NOT_FOUND;
    },
  });
  return d;
}

/** A `--ttl` argument: seconds as a number, anything else passed to the server to validate. */
export function ttlArg(t: string): string | number {
  if (t.trim() === '') throw new UsageError('--ttl needs a value such as 30s');
  return /^\d+(?:\.\d+)?$/.test(t.trim()) ? Number(t) : t.trim();
}
