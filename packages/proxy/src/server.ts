import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AppOptions, buildApp } from './app.js';
import type { Config } from './config.js';
import { createLogger } from './log.js';
import {
  authoritativeAtStart,
  type Cluster,
  initialMembership,
  setupCluster,
} from './membership/cluster.js';
import { type RespServer, startRespServer } from './resp/resp-server.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';

/** A listening proxy. */
export interface RunningServer {
  app: FastifyInstance;
  rt: Runtime;
  /** `http://host:port` it listens on. */
  url: string;
  /** The RESP front end, when resp.port is set. */
  resp: RespServer | undefined;
  /**
   * Graceful stop: /health/ready answers 503 at once while requests are still served for
   * server.shutdown_delay, then refuse new work, drain in-flight requests (bounded), close Redis.
   */
  close(): Promise<void>;
  /** End the shutdown delay now (a second signal): the drain starts at once. */
  hurry(): void;
}

/** Options of `startServer`. */
export interface StartOptions extends RuntimeOptions, AppOptions {
  log?: Logger;
  /** Hooks run after the runtime exists and before listening (membership, peers). */
  setup?: (rt: Runtime) => Promise<AppOptions | undefined> | AppOptions | undefined;
  /** Called during close, before Redis clients close. */
  teardown?: () => Promise<void>;
  /**
   * Membership wiring (default true): state file, peer sync and /internal/v1 routes (with a
   * cluster token), X-Ring-Version / X-Ring-Checksum headers. `false` starts from `doc` or
   * the seed with an in-memory membership only.
   */
  membership?: boolean;
}

/** Build the runtime and app from a config and listen. */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logger);
  // Throws StateFileError on a corrupt state file: never start from an empty or guessed ring.
  const init =
    opts.membership === false
      ? undefined
      : await initialMembership(config, log, opts.doc ? { doc: opts.doc } : {});
  const rt = createRuntime(
    config,
    log,
    init ? { ...opts, doc: init.doc, seeded: init.seeded } : opts,
  );
  let cluster: Cluster | undefined;
  let app: FastifyInstance;
  let url: string;
  let resp: RespServer | undefined;
  let listening: FastifyInstance | undefined;
  try {
    cluster = init ? await setupCluster(rt, init) : undefined;
    const extra = (await opts.setup?.(rt)) ?? {};
    const responseHeaders = extra.responseHeaders ?? opts.responseHeaders;
    app = await buildApp(rt, {
      plugins: [
        ...(cluster?.appOptions.plugins ?? []),
        ...(opts.plugins ?? []),
        ...(extra.plugins ?? []),
      ],
      ...(responseHeaders ? { responseHeaders } : {}),
      ...(opts.benchCut ? { benchCut: opts.benchCut } : {}),
    });
    await rt.start();
    if (init) authoritativeAtStart(rt);
    const address = await app.listen({ host: config.server.host, port: config.server.port });
    url = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
    listening = app;
    if (config.resp.port !== 0) resp = await startRespServer(rt);
  } catch (e) {
    // The HTTP side listens already when the RESP port cannot be had: stop it too.
    await listening?.close().catch(() => {});
    await cluster?.stop().catch(() => {});
    await rt.close().catch(() => {});
    throw e;
  }
  cluster?.started(url);
  warnOpenAdmin(config, log);
  let closing: Promise<void> | undefined;
  let hurry = () => {};
  const close = () => {
    closing ??= (async () => {
      // Not ready from here on (and keep-alive answers say `connection: close`), but still
      // serving: load balancers take a while to stop sending to an endpoint that left.
      rt.state.shuttingDown = true;
      const wait = config.server.shutdownDelay;
      if (wait > 0) {
        log.info({ delay_ms: wait }, 'shutdown delay: /health/ready answers 503, still serving');
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          hurry = () => {
            clearTimeout(t);
            r();
          };
        });
      }
      const drain = Promise.all([app.close(), resp?.close()]);
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
      await cluster?.stop();
      await opts.teardown?.();
      await rt.close();
    })();
    return closing;
  };
  return { app, rt, url, resp, close, hurry: () => hurry() };
}

/** One warning at start when admin calls (flush, ring changes) need no token. */
function warnOpenAdmin(config: Config, log: Logger): void {
  if (config.admin.token !== '') return;
  if (config.admin.protectedMode)
    log.warn(
      { setting: 'DC_ADMIN_TOKEN' },
      'no admin token: flush and ring changes answer loopback clients only (protected mode); set DC_ADMIN_TOKEN to manage the proxy from elsewhere',
    );
  else
    log.warn(
      { setting: 'DC_ADMIN_PROTECTED_MODE' },
      'no admin token and protected mode off: ANY client that reaches this port can flush the cache and change the ring; set DC_ADMIN_TOKEN',
    );
}
