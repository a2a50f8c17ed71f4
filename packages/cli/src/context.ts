import { DcacheClient, DEFAULT_URL } from '@dcache/client';
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UsageError } from './errors.js';
import { LITERAL_MARK } from './input.js';
import { colorEnabled, createOutput, type Output } from './output.js';

/** Options every command accepts. */
export interface GlobalArgs {
  url?: string | undefined;
  token?: string | undefined;
  timeout?: string | undefined;
  json: boolean;
  color: boolean;
}

/** What a command handler works with. */
export interface Ctx {
  /** Base URL of the proxy. */
  url: string;
  out: Output;
  /** The API client (created on first use). */
  client(): DcacheClient;
  /** Per-request timeout in ms. */
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
}

/** A command's handler: resolves with the exit code (0 when nothing is returned). */
export type Handler<A> = (argv: ArgumentsCamelCase<A>, ctx: Ctx) => Promise<number | undefined>;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** `500ms`, `10s`, `1m`, `1h30m` or a bare number of seconds → milliseconds; undefined when invalid. */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(s)) return Math.round(Number(s) * 1_000);
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return Math.round(total);
}

/** A repeated option arrives as an array: the last one wins. */
function last(v: string | readonly string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v[v.length - 1] as string | undefined) : (v as string | undefined);
}

/** One run of the binary: global options, the lazily created client, the usage line of errors. */
export class Session {
  private clientInstance: DcacheClient | undefined;
  private ctxInstance: Ctx | undefined;
  /** Usage line of the command being run (for usage errors its handler throws). */
  usage: string | undefined;
  /** `--json` as far as it is known (for errors before or outside a handler). */
  json = false;
  /** Colour on stderr, for error lines. */
  color = false;
  /** Exit code the command resolved with. */
  exit = 0;
  readonly env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv) {
    this.env = env;
  }

  /** The context of a handler, from the parsed global options. */
  context(argv: GlobalArgs): Ctx {
    if (this.ctxInstance) return this.ctxInstance;
    const url = last(argv.url) || this.env.DCACHE_URL || DEFAULT_URL;
    const token = last(argv.token) ?? this.env.DCACHE_TOKEN;
    const timeout = last(argv.timeout);
    let timeoutMs = 10_000;
    if (timeout !== undefined) {
      const t = parseDurationMs(timeout);
      if (t === undefined)
        throw new UsageError(
          `--timeout ${JSON.stringify(timeout)} is not a duration (500ms, 10s, 1m; a number is seconds)`,
        );
      timeoutMs = t;
    }
    const out = createOutput(argv.json, colorEnabled(argv.color, process.stdout, this.env));
    this.json = argv.json;
    this.color = colorEnabled(argv.color, process.stderr, this.env);
    const ctx: Ctx = {
      url,
      out,
      timeoutMs,
      env: this.env,
      client: () => {
        if (!this.clientInstance) {
          try {
            this.clientInstance = new DcacheClient({
              url,
              timeout: timeoutMs,
              connections: 8,
              ...(token ? { token } : {}),
            });
          } catch (e) {
            throw new UsageError(`--url: ${(e as Error).message}`);
          }
        }
        return this.clientInstance;
      },
    };
    this.ctxInstance = ctx;
    return ctx;
  }

  /** Close the client's connections so that the process can exit. */
  async close(): Promise<void> {
    await this.clientInstance?.close();
  }
}

/**
 * Register a command whose handler gets a `Ctx` and returns an exit code; `usage` is what a
 * usage error prints (`dcache ring add <address> [--weight N]`).
 */
export function command<T, U>(
  y: Argv<T>,
  s: Session,
  spec: {
    command: string;
    describe: string;
    usage: string;
    builder: (y: Argv<T>) => Argv<U>;
    handler: Handler<U & GlobalArgs>;
  },
): Argv<T> {
  const builder = (b: Argv<T>) => {
    // The builder runs once the command is matched, before validation: usage errors name it.
    s.usage = spec.usage;
    return spec.builder(b);
  };
  return y.command(spec.command, spec.describe, builder, async (argv) => {
    s.usage = spec.usage;
    const raw = argv as Record<string, unknown>;
    for (const [k, v] of Object.entries(raw))
      if (typeof v === 'string' && v.startsWith(LITERAL_MARK))
        raw[k] = v.slice(LITERAL_MARK.length);
    const a = argv as unknown as ArgumentsCamelCase<U & GlobalArgs>;
    const ctx = s.context(a);
    const code = await spec.handler(a, ctx);
    s.exit = code ?? 0;
  });
}
