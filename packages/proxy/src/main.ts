import { pathToFileURL } from 'node:url';
import { type Config, ConfigError, loadConfig, redact } from './config.js';
import { createLogger } from './log.js';
import { StateFileError } from './membership/state-file.js';
import { startServer } from './server.js';

/** Process entry: load config (exit 2 on a bad setting), listen, shut down gracefully on SIGTERM/SIGINT. */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
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
  await run(config);
}

/** Run a proxy with a loaded config until a signal stops it. */
export async function run(config: Config): Promise<void> {
  const log = createLogger(config.logger);
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
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
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
