import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AppOptions, buildApp } from './app.js';
import type { Config } from './config.js';
import { createLogger } from './log.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';

/** A listening proxy. */
export interface RunningServer {
  app: FastifyInstance;
  rt: Runtime;
  /** `http://host:port` it listens on. */
  url: string;
  /** Graceful stop: refuse new work, drain in-flight requests (bounded), close Redis clients. */
  close(): Promise<void>;
}

/** Options of `startServer`. */
export interface StartOptions extends RuntimeOptions, AppOptions {
  log?: Logger;
  /** Hooks run after the runtime exists and before listening (membership, peers). */
  setup?: (rt: Runtime) => Promise<AppOptions | undefined> | AppOptions | undefined;
  /** Called during close, before Redis clients close. */
  teardown?: () => Promise<void>;
}

/** Build the runtime and app from a config and listen. */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logger);
  const rt = createRuntime(config, log, opts);
  const extra = (await opts.setup?.(rt)) ?? {};
  const app = await buildApp(rt, {
    plugins: [...(opts.plugins ?? []), ...(extra.plugins ?? [])],
    ...((extra.responseHeaders ?? opts.responseHeaders)
      ? { responseHeaders: extra.responseHeaders ?? opts.responseHeaders }
      : {}),
  } as AppOptions);
  await rt.start();
  const address = await app.listen({ host: config.server.host, port: config.server.port });
  const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      rt.state.shuttingDown = true;
      const drain = app.close();
      const limit = config.server.shutdownTimeout;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drain.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), limit);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        log.warn({ timeout_ms: limit }, 'drain timeout reached: closing remaining connections');
        app.server.closeAllConnections();
      }
      await opts.teardown?.();
      await rt.close();
    })();
    return closing;
  };
  return { app, rt, url, close };
}
