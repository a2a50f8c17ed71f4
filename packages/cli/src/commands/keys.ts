import cliProgress from 'cli-progress';
import type { Argv } from 'yargs';
import { command, type Session } from '../context.js';
import { EXIT, report, UsageError } from '../errors.js';
import { count, paint } from '../output.js';

/** Writes keys as they arrive: plain lines, streamed JSON, or lines above a progress bar. */
interface Sink {
  page(keys: readonly string[], pages: number): void;
  end(summary: {
    count: number;
    complete: boolean;
    skipped: string[];
    error?: { code: string; message: string };
  }): void;
}

function jsonSink(out: NodeJS.WriteStream): Sink {
  let first = true;
  out.write('{"keys":[');
  return {
    page(keys) {
      if (keys.length === 0) return;
      const body = keys.map((k) => JSON.stringify(k)).join(',');
      out.write(first ? body : `,${body}`);
      first = false;
    },
    end(s) {
      const error = s.error ? `,"error":${JSON.stringify(s.error)}` : '';
      out.write(
        `],"count":${s.count},"complete":${s.complete},"skipped_nodes":${JSON.stringify(s.skipped)}${error}}\n`,
      );
    },
  };
}

function lineSink(out: NodeJS.WriteStream): Sink {
  return {
    page(keys) {
      if (keys.length > 0) out.write(`${keys.join('\n')}\n`);
    },
    end() {},
  };
}

function progressSink(out: NodeJS.WriteStream, total: number | undefined, color: boolean): Sink {
  const format =
    total !== undefined
      ? `${paint(color, 'blue', '{bar}')} {value}/{total} keys | page {page}`
      : 'listing… {value} keys | page {page}';
  const multi = new cliProgress.MultiBar(
    {
      stream: out,
      format,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
      fps: 10,
      noTTYOutput: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(total ?? 0, 0, { page: 0 });
  let n = 0;
  return {
    page(keys, pages) {
      if (keys.length > 0) multi.log(`${keys.join('\n')}\n`);
      n += keys.length;
      bar.setTotal(Math.max(total ?? 0, n));
      bar.update(n, { page: pages });
    },
    end() {
      // `log` is buffered until the next redraw; flush it before the bar goes away.
      multi.update();
      multi.stop();
    },
  };
}

/** `dcache keys [--pattern] [--limit]`: every page across shards, each key once. */
export function keysCommand(y: Argv, s: Session): Argv {
  return command(y, s, {
    command: 'keys',
    describe: 'List keys across every node (SCAN, page by page; never KEYS)',
    usage: 'dcache keys [--pattern "user:*"] [--limit N] [--page-size N]',
    builder: (b) =>
      b
        .option('pattern', { type: 'string', default: '*', describe: 'Redis glob pattern' })
        .option('limit', { type: 'number', describe: 'Stop after N keys' })
        .option('page-size', {
          type: 'number',
          default: 1_000,
          describe: 'Keys per request (1-10000)',
        })
        .option('progress', {
          type: 'boolean',
          describe: 'Progress indicator (default: on a terminal; never with --json)',
        }),
    handler: async (a, ctx) => {
      const limit = a.limit;
      if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1))
        throw new UsageError(`--limit must be a positive integer, got ${a.limit}`);
      const pageSize = a.pageSize;
      if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 10_000)
        throw new UsageError(`--page-size must be an integer from 1 to 10000, got ${a.pageSize}`);
      if (a.pattern === '') throw new UsageError('--pattern must not be empty');
      const client = ctx.client();
      const { out } = ctx;
      const showProgress = !out.json && (a.progress ?? out.stdout.isTTY === true);
      let sink: Sink;
      if (out.json) sink = jsonSink(out.stdout);
      else if (showProgress) {
        // A total is known only for the whole keyspace (DBSIZE sum); a pattern shows a counter.
        let total: number | undefined;
        if (a.pattern === '*') {
          try {
            total = (await client.stats()).total.keys;
          } catch {
            total = undefined;
          }
        }
        if (limit !== undefined && total !== undefined) total = Math.min(total, limit);
        sink = progressSink(out.stdout, total, out.color);
      } else sink = lineSink(out.stdout);

      // SCAN may return a key twice (a rehash during the listing): each key is printed once.
      const seen = new Set<string>();
      const skipped = new Set<string>();
      let pages = 0;
      let cut = false;
      try {
        for await (const page of client.scan({ pattern: a.pattern, limit: pageSize })) {
          pages++;
          for (const n of page.skipped_nodes) skipped.add(n);
          const fresh: string[] = [];
          for (const k of page.keys) {
            if (seen.has(k)) continue;
            if (limit !== undefined && seen.size >= limit) {
              cut = true;
              break;
            }
            seen.add(k);
            fresh.push(k);
          }
          sink.page(fresh, pages);
          if (cut || (limit !== undefined && seen.size >= limit && page.cursor !== null)) {
            cut = true;
            break;
          }
        }
      } catch (e) {
        if (!out.json) {
          sink.end({ count: seen.size, complete: false, skipped: [...skipped] });
          throw e;
        }
        // --json: the error goes inside the one document already started on stdout.
        const r = report(e, ctx.url);
        sink.end({
          count: seen.size,
          complete: false,
          skipped: [...skipped],
          error: { code: r.code, message: r.message },
        });
        out.note(`${paint(out.color, 'red', `error ${r.code}`)}: ${r.message}`);
        return r.exit;
      }
      sink.end({ count: seen.size, complete: !cut && skipped.size === 0, skipped: [...skipped] });
      if (!out.json && showProgress)
        out.note(`${count(seen.size)} keys${cut ? ` (stopped at --limit ${limit})` : ''}`);
      if (skipped.size > 0) {
        out.note(
          `${paint(out.color, 'red', 'error INCOMPLETE')}: nodes not listed (ejected or failing): ${[...skipped].join(', ')}`,
        );
        return EXIT.FAILED;
      }
      return EXIT.OK;
    },
  });
}
