import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { type Config, ConfigError, loadConfig, redact, unknownEnv, usage } from './config.js';
import { createLogger } from './log.js';
import { StateFileError } from './membership/state-file.js';
import { startServer } from './server.js';
import { version } from './version.js';

export { version };

/**
 * `--help`/`-h` and `--version` anywhere in argv: print and exit 0. True when handled (tests
 * pass `exit: false`).
 */
export function handleInfoFlags(
  argv: readonly string[],
  program: string,
  exit = true,
): string | undefined {
  let text: string | undefined;
  if (argv.includes('--help') || argv.includes('-h')) text = usage(program);
  else if (argv.includes('--version')) text = `dcache ${version()}\n`;
  if (text === undefined) return undefined;
  process.stdout.write(text);
  if (exit) process.exit(0);
  return text;
}

/** Process entry: load config (exit 2 on a bad setting), listen, shut down gracefully on SIGTERM/SIGINT. */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  handleInfoFlags(argv, 'node packages/proxy/dist/main.js');
  let config: Config;
  try {
    config = loadConfig({ argv, env });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`dcache: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  await run(config, env);
}

/** One warning at start naming every `DC_*` variable that is no setting (a typo, most often). */
export function warnUnknownEnv(env: NodeJS.ProcessEnv, log: Logger): void {
  const unknown = unknownEnv(env);
  if (unknown.length === 0) return;
  const said = unknown.map((u) =>
    u.suggestion ? `${u.name} (did you mean ${u.suggestion}?)` : u.name,
  );
  log.warn(
    { unknown: unknown.map((u) => u.name), suggestions: unknown.map((u) => u.suggestion ?? null) },
    `ignored environment variables that name no setting: ${said.join(', ')} (every setting: --help or docs/configuration.md)`,
  );
}

/** Run a proxy with a loaded config until a signal stops it; `env` is checked for unknown DC_* names. */
export async function run(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const log = createLogger(config.logger);
  warnUnknownEnv(env, log);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, { log });
  } catch (e) {
    if (e instanceof StateFileError) {
      // One line, no stack: the message says which file and what to do.
      process.stderr.write(`dcache: ${e.message}\n`);
      process.exit(1);
    }
    log.fatal({ err: e }, 'start-up failed');
    process.stderr.write(`dcache: start-up failed: ${(e as Error).message}\n`);
    process.exit(1);
  }
  log.info(
    { url: server.url, nodes: server.rt.holder.current.ring.size, config: redact(config) },
    'dcache listening',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal ends the shutdown delay; the drain (bounded) still runs.
      server.hurry();
      return;
    }
    stopping = true;
    log.info(
      { signal, delay_ms: config.server.shutdownDelay },
      config.server.shutdownDelay > 0
        ? 'shutting down: not ready, serving until the shutdown delay ends, then draining'
        : 'shutting down: draining in-flight requests',
    );
    server.close().then(
      () => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void main();
}
