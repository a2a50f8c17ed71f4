import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { batchCommands } from './commands/batch.js';
import { dataCommands } from './commands/data.js';
import { flushCommand } from './commands/flush.js';
import { infoCommands } from './commands/info.js';
import { keysCommand } from './commands/keys.js';
import { ringCommands } from './commands/ring.js';
import { serveCommands } from './commands/serve.js';
import { Session } from './context.js';
import { EXIT, report, UsageError } from './errors.js';
import { LITERAL_MARK, STDIN_ARG } from './input.js';
import { colorEnabled, paint } from './output.js';

/** Version of the binary (from its package.json). */
export const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/**
 * Arguments yargs would misread: a lone `-` (stdin) and everything after `--` (keys or values
 * that start with a dash), which yargs does not hand to positionals. They are marked here and
 * unmarked by `command()` before the handler runs.
 */
export function protectArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  let literal = false;
  for (const a of argv) {
    if (literal) out.push(LITERAL_MARK + a);
    else if (a === '--') literal = true;
    else out.push(a === '-' ? STDIN_ARG : a);
  }
  return out;
}

/** Build the yargs program (exported for tests of the parser). */
export async function buildCli(argv: readonly string[], s: Session): Promise<Argv> {
  let y: Argv = yargs(protectArgs(argv))
    .scriptName('dcache')
    .usage('$0 <command> [options]\n\nAdmin CLI of dcache, the sharded cache proxy.')
    .option('url', {
      type: 'string',
      describe: 'Proxy base URL',
      defaultDescription: '$DCACHE_URL or http://127.0.0.1:8080',
      global: true,
    })
    .option('token', {
      type: 'string',
      describe: 'Admin token (flush, ring changes)',
      defaultDescription: '$DCACHE_TOKEN',
      global: true,
    })
    .option('timeout', {
      type: 'string',
      describe: 'Per-request timeout: 500ms, 10s, 1m (a bare number is seconds)',
      defaultDescription: '10s',
      global: true,
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'Machine output: one JSON document on stdout',
      global: true,
    })
    .option('color', {
      type: 'boolean',
      default: true,
      describe: 'Colour on a terminal (--no-color or NO_COLOR to disable)',
      global: true,
    })
    .group(['url', 'token', 'timeout', 'json', 'color', 'help', 'version'], 'Global options:')
    .strict()
    .demandCommand(1, 'give a command (dcache --help lists them)')
    .recommendCommands()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue(
      'Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not found, 130 interrupted.\nDocs: docs/cli.md',
    )
    .exitProcess(false)
    .fail((msg, err, yy) => {
      // Errors thrown by handlers pass through here too: only yargs' own are usage errors.
      if (err && err.name !== 'YError') throw err;
      let usage = '';
      yy.showHelp((text) => {
        usage = text.split('\n')[0] ?? '';
      });
      throw new UsageError(msg ?? err?.message ?? 'bad arguments', usage);
    });
  y = ringCommands(y, s);
  y = dataCommands(y, s);
  y = batchCommands(y, s);
  y = keysCommand(y, s);
  y = infoCommands(y, s);
  y = flushCommand(y, s);
  // `serve`/`dev` declare every proxy setting as a flag: load the proxy only when they run.
  const first = argv.find((a) => !a.startsWith('-'));
  const wantsServe =
    first === 'serve' || first === 'dev' || argv.includes('--get-yargs-completions');
  y = await serveCommands(y, s, wantsServe);
  return y.completion(
    'completion',
    'Print the bash/zsh completion script (dcache completion >> ~/.bashrc)',
  );
}

/** Run the binary with `argv` (without node and script); resolves with the exit code. */
export async function main(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const s = new Session(env);
  s.json = argv.includes('--json') && !argv.includes('--no-json');
  s.color = colorEnabled(!argv.includes('--no-color'), process.stderr, env);
  let url = '';
  try {
    const y = await buildCli(argv, s);
    const parsed = (await y.parseAsync()) as { url?: string; help?: boolean };
    url = parsed.url || env.DCACHE_URL || '';
    return s.exit;
  } catch (e) {
    url ||= argUrl(argv) || env.DCACHE_URL || 'http://127.0.0.1:8080';
    const r = report(e, url);
    const usage = e instanceof UsageError ? (s.usage ?? e.usage) : undefined;
    if (s.json) {
      process.stdout.write(
        `${JSON.stringify({
          error: {
            code: r.code,
            message: r.message,
            ...(r.status ? { status: r.status } : {}),
            ...(usage ? { usage } : {}),
            ...r.details,
          },
        })}\n`,
      );
    }
    process.stderr.write(`${paint(s.color, 'red', `error ${r.code}`)}: ${r.message}\n`);
    if (usage) {
      process.stderr.write(`usage: ${usage}\n`);
      const cmd = usage.replace(/\s+[<[].*$/, '');
      process.stderr.write(`run '${cmd} --help' for the options\n`);
    }
    return r.exit;
  } finally {
    await s.close();
  }
}

function argUrl(argv: readonly string[]): string | undefined {
  const i = argv.findIndex((a) => a === '--url' || a.startsWith('--url='));
  if (i < 0) return undefined;
  const a = argv[i] as string;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
}

/** Exit codes, re-exported for scripts that import the CLI. */
export { EXIT };
