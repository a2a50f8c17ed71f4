import type { BatchItem, FailedMap } from '@dcache/client';
import type { Argv } from 'yargs';
import { type Ctx, command, type Session } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { isStdin, parseJsonInput, readInput } from '../input.js';
import { count, type Output, paint, table } from '../output.js';
import { ttlArg } from './data.js';

async function load(file: string | undefined): Promise<unknown> {
  if (isStdin(file) && process.stdin.isTTY)
    throw new UsageError('no input: give a JSON file or pipe JSON on stdin');
  const from = isStdin(file) ? 'stdin' : (file as string);
  return parseJsonInput(await readInput(file), from);
}

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/** A key list: `["a","b"]` or `{"keys": ["a","b"]}`. */
export function keyList(input: unknown): string[] {
  const list = isRecord(input) && Array.isArray(input.keys) ? input.keys : input;
  if (!Array.isArray(list) || list.some((k) => typeof k !== 'string' || k === ''))
    throw new UsageError('expected a JSON array of non-empty key strings, or {"keys": [...]}');
  if (list.length === 0) throw new UsageError('the key list is empty');
  return list as string[];
}

/** Batch items: the API body `{"items": {k: {value, ttl?}}}` or a plain map `{k: value}`. */
export function itemMap(input: unknown): Record<string, BatchItem> {
  if (!isRecord(input))
    throw new UsageError('expected a JSON object: {"key": value, ...} or {"items": {...}}');
  const keys = Object.keys(input);
  if (keys.length === 1 && keys[0] === 'items' && isRecord(input.items)) {
    const out: Record<string, BatchItem> = {};
    for (const [k, it] of Object.entries(input.items)) {
      if (!isRecord(it) || !('value' in it))
        throw new UsageError(`item ${JSON.stringify(k)} has no "value" (API form: {"value": ...})`);
      const ttl = it.ttl;
      if (ttl !== undefined && typeof ttl !== 'string' && typeof ttl !== 'number')
        throw new UsageError(`item ${JSON.stringify(k)}: ttl must be a string or a number`);
      out[k] = ttl === undefined ? { value: it.value } : { value: it.value, ttl };
    }
    return out;
  }
  return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, { value: v }]));
}

function printFailed(out: Output, failed: FailedMap): void {
  const rows = Object.entries(failed);
  if (rows.length === 0) return;
  out.line(paint(out.color, 'red', `failed: ${count(rows.length)}`));
  out.line(
    table(
      [{ header: 'key' }, { header: 'error' }],
      rows.map(([k, c]) => [k, c]),
    ),
  );
}

function finish(ctx: Ctx, failed: FailedMap, total: number): number {
  const n = Object.keys(failed).length;
  if (n === 0) return EXIT.OK;
  ctx.out.note(
    `${paint(ctx.out.color, 'red', 'error PARTIAL_FAILURE')}: ${count(n)} of ${count(total)} keys failed`,
  );
  return EXIT.FAILED;
}

function short(value: unknown, max = 80): string {
  const s = JSON.stringify(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** `dcache batch get|set|del [file]`: JSON from a file or stdin. */
export function batchCommands(y: Argv, s: Session): Argv {
  return y.command(
    'batch',
    'Many keys at once: JSON from a file or stdin (split per node by the proxy)',
    (b) => {
      let by = b as Argv;
      by = command(by, s, {
        command: 'get [file]',
        describe: 'Read keys: ["a","b"] or {"keys": [...]}',
        usage: 'dcache batch get [file|-]',
        builder: (x) =>
          x.positional('file', { type: 'string', describe: 'JSON file (- or omitted: stdin)' }),
        handler: async (a, ctx) => {
          const keys = keyList(await load(a.file));
          const r = await ctx.client().batchGet(keys);
          if (ctx.out.json) ctx.out.emit(r);
          else {
            const found = Object.entries(r.items);
            if (found.length > 0) {
              ctx.out.line(
                table(
                  [{ header: 'key' }, { header: 'value' }],
                  found.map(([k, v]) => [k, short(v)]),
                ),
              );
              ctx.out.line();
            }
            ctx.out.line(
              `found ${count(found.length)}, missing ${count(r.missing.length)}, failed ${count(Object.keys(r.failed).length)}`,
            );
            if (r.missing.length > 0) ctx.out.line(`missing: ${r.missing.join(', ')}`);
            printFailed(ctx.out, r.failed);
          }
          return finish(ctx, r.failed, new Set(keys).size);
        },
      });
      by = command(by, s, {
        command: 'set [file]',
        describe:
          'Store values: {"key": value, ...} or the API body {"items": {"key": {"value", "ttl"?}}}',
        usage: 'dcache batch set [file|-] [--ttl 30s]',
        builder: (x) =>
          x
            .positional('file', { type: 'string', describe: 'JSON file (- or omitted: stdin)' })
            .option('ttl', { type: 'string', describe: 'TTL of items that have none' }),
        handler: async (a, ctx) => {
          const items = itemMap(await load(a.file));
          const total = Object.keys(items).length;
          if (total === 0) throw new UsageError('no items to store');
          const r = await ctx
            .client()
            .batchSet(items, a.ttl === undefined ? {} : { ttl: ttlArg(a.ttl) });
          if (ctx.out.json) ctx.out.emit(r);
          else {
            ctx.out.line(`stored ${count(r.stored)} of ${count(total)} keys`);
            printFailed(ctx.out, r.failed);
          }
          return finish(ctx, r.failed, total);
        },
      });
      by = command(by, s, {
        command: 'del [file]',
        describe: 'Delete keys: ["a","b"] or {"keys": [...]}',
        usage: 'dcache batch del [file|-]',
        builder: (x) =>
          x.positional('file', { type: 'string', describe: 'JSON file (- or omitted: stdin)' }),
        handler: async (a, ctx) => {
          const keys = keyList(await load(a.file));
          const total = new Set(keys).size;
          const r = await ctx.client().batchDel(keys);
          if (ctx.out.json) ctx.out.emit(r);
          else {
            const absent = total - r.deleted - Object.keys(r.failed).length;
            ctx.out.line(
              `deleted ${count(r.deleted)} of ${count(total)} keys${absent > 0 ? ` (${count(absent)} did not exist)` : ''}`,
            );
            printFailed(ctx.out, r.failed);
          }
          return finish(ctx, r.failed, total);
        },
      });
      return by.demandCommand(1, 'give a batch command: get, set or del');
    },
  );
}
