import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import { DcacheError, ERRORS, errorBody, rawError } from './errors.js';
import { afterBody, answerUnderway, armBodyTimeout, inTurn } from './http/connection.js';
import { codeOf, errorAnswer } from './http/errors.js';
import { createFastPath } from './http/fast-path.js';
import { parseJsonBody } from './http/json-body.js';
import { RateLimit, rateLimitExempt } from './http/rate-limit.js';
import { LazyRequestLogger } from './http/request-logger.js';
import { ResponseHead } from './http/response-head.js';
import {
  countedUrl,
  httpTracker,
  type RouteRecorder,
  routeRecorder,
} from './http/route-metrics.js';
import { putBodyLimit, singleKeyOps } from './http/single-key-core.js';
import { requestIdOf } from './request-id.js';
import { batchRoutes } from './routes/batch.js';
import { cacheRoutes } from './routes/cache.js';
import { healthRoutes } from './routes/health.js';
import { keysRoutes } from './routes/keys.js';
import { metricsRoutes } from './routes/metrics.js';
import { ringRoutes } from './routes/ring.js';
import { statsRoutes } from './routes/stats.js';
import type { Runtime } from './runtime.js';
import { clientAddress, trustFn } from './security/client-address.js';
import { WindowCounter } from './security/window-counter.js';

export { codeOf } from './http/errors.js';

/** Extra route plugins (ring admin, peer exchange) registered by other modules. */
export type RoutePlugin = (app: FastifyInstance, rt: Runtime) => void | Promise<void>;

/** Per-request features a benchmark can leave out to measure what each costs. */
export const BENCH_CUTS = [
  'security-headers',
  'ring-headers',
  'request-id',
  'http-metrics',
] as const;

/** One of BENCH_CUTS. */
export type BenchCut = (typeof BENCH_CUTS)[number];

/** Options of `buildApp`. */
export interface AppOptions {
  plugins?: RoutePlugin[];
  /** Headers added to every response after X-Ring-Version / X-Ring-Checksum; evaluated per response. */
  responseHeaders?: () => Record<string, string>;
  /**
   * For benchmarks only (bench/feature-costs.ts): features left out of every answer. The
   * answers are then not the API's (no security headers, no routing epoch, no request id or no
   * HTTP metrics); never set it in a proxy that serves clients.
   */
  benchCut?: readonly BenchCut[];
}

const NO_GAUGE = { inc(): void {}, dec(): void {} };

// Node's own client errors that deserve their own message (the rest: "not valid HTTP/1.1").
const CLIENT_ERRORS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'the request line and headers are larger than the server accepts',
  ERR_HTTP_REQUEST_TIMEOUT: 'the request was not received within the read timeout',
  HPE_INVALID_EOF_STATE: 'the connection ended before the whole request was received',
};

type Hook = (req: unknown, reply: unknown, done: () => void) => void;

/** A route option's hooks as a list (Fastify accepts one function or an array). */
function hookList(h: unknown): Hook[] {
  return h === undefined ? [] : Array.isArray(h) ? (h as Hook[]) : [h as Hook];
}

const SINGLE_KEY_PREFIX = '/api/v1/cache/';

/**
 * The HTTP server over a runtime, not listening (tests inject or listen on port 0). Fastify
 * serves every route; plain single-key requests are answered by the fast path ahead of it
 * (http/fast-path.ts). Every concern the two share (headers, request id, errors and their logs,
 * pipelining order, body timeout, JSON parsing, rate limit, metrics) is one function under http/.
 */
export async function buildApp(rt: Runtime, opts: AppOptions = {}): Promise<FastifyInstance> {
  const { config, metrics, log } = rt;
  // Set once the routes are in: plain single-key requests are answered before Fastify sees them.
  let fast: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  // One notion of the client for every path: the socket's peer, or what a trusted proxy says.
  const trust = trustFn(config.server.trustedProxies);
  const app = Fastify({
    ...(trust ? { trustProxy: trust } : {}),
    serverFactory: (handler, o) => {
      const server = createServer(o.http ?? {}, (req, res) => {
        if (fast === undefined || !fast(req, res)) handler(req, res);
      });
      if (config.server.maxConnections > 0) {
        server.maxConnections = config.server.maxConnections;
        server.on('drop', () => metrics.connectionsDropped.inc());
      }
      server.keepAliveTimeout = config.server.idleTimeout;
      server.requestTimeout = config.server.readTimeout;
      server.setTimeout(config.server.writeTimeout);
      return server;
    },
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.maxBodyBytes,
    requestTimeout: config.server.readTimeout,
    // Node enforces requestTimeout from a timer that runs every 30 s by default: a slowloris
    // client would live up to read_timeout + 30 s. Check often enough to cut it near the limit.
    http: {
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, config.server.readTimeout >> 2)),
    },
    connectionTimeout: config.server.writeTimeout,
    keepAliveTimeout: config.server.idleTimeout,
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    genReqId: (req) => requestIdOf(req.headers['x-request-id']),
    childLoggerFactory: (logger, bindings, opts) => new LazyRequestLogger(logger, bindings, opts),
    routerOptions: { maxParamLength: 65_536, ignoreTrailingSlash: false },
    ajv: { customOptions: { allErrors: false } },
    // Requests Node's HTTP parser refuses (bad framing, truncated body, header overflow, read
    // timeout) never reach Fastify: answer them with a catalogue body too, then close.
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      if (!answerUnderway(socket)) {
        const message = CLIENT_ERRORS[err.code ?? ''] ?? 'the request is not valid HTTP/1.1';
        rawError(socket, 'BAD_REQUEST', message);
      }
      socket.destroy();
    },
    // Bad percent-encoding and the like never reach a route: answer them with catalogue codes too.
    frameworkErrors: (err, _req, reply) => {
      const { code, message } = codeOf(err);
      void (reply as FastifyReply)
        .code(ERRORS[code].status)
        .type('application/json')
        .send(errorBody(code, message));
    },
  });
  // Node drops a CONNECT (a forward-proxy tunnel request) without a word unless someone listens.
  app.server.on('connect', (_req: unknown, socket: Duplex) => {
    rawError(socket, 'METHOD_NOT_ALLOWED', 'CONNECT is not supported');
    socket.end();
  });
  // Node answers an unknown `Expect` with a bare 417; RFC 9110 lets a server ignore it instead.
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
  // Route schemas document the API (OpenAPI); validation is ours, with catalogue codes.
  app.setValidatorCompiler(() => () => true);
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'dcache REST API',
        version: '1.0.0',
        description: 'Sharded cache proxy over Redis nodes',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
    },
  });

  const cut = new Set<string>(opts.benchCut ?? []);
  for (const c of cut)
    if (!(BENCH_CUTS as readonly string[]).includes(c))
      throw new Error(`benchCut: "${c}" is not one of ${BENCH_CUTS.join(', ')}`);
  const httpMetrics = !cut.has('http-metrics');
  const inflight = httpMetrics ? metrics.inflight : NO_GAUGE;
  const readTimeout = config.server.readTimeout;
  // Every request: counted in flight, its body timed, and run after the connection's previous one.
  app.addHook('onRequest', (req, reply, done) => {
    if (countedUrl(req.url)) inflight.inc();
    const h = req.headers;
    if (h['transfer-encoding'] !== undefined || (h['content-length'] ?? '0') !== '0')
      armBodyTimeout(req.raw, reply.raw, readTimeout);
    inTurn(req.raw, reply.raw, () => {
      // Node passes a raw `#` through in the request target, and the router would cut the path
      // there: `/api/v1/cache/a#b` would address key "a". Refuse it; `%23` is how a key holds `#`.
      if (req.url.includes('#'))
        done(new DcacheError('INVALID_KEY', 'a raw "#" in the path: percent-encode it as %23'));
      else done();
    });
  });
  // Failed authentications (401, 403) are counted per client on every route, /internal/
  // included; past the limit, a client's authenticated calls answer 429 until the window ends,
  // whatever token they carry, so that guessing tokens costs a window per few guesses.
  const authFailures = new WindowCounter(config.rateLimit.authWindow);
  const authLimit = config.rateLimit.authFailures;
  if (authLimit > 0) {
    app.addHook('onRequest', (req, reply, done) => {
      if (req.headers.authorization === undefined && !req.url.startsWith('/internal/')) {
        done();
        return;
      }
      const seen = authFailures.peek(req.ip);
      if (seen.current < authLimit) {
        done();
        return;
      }
      metrics.authFailures.inc({ outcome: 'throttled' });
      const retry = Math.max(1, Math.ceil(seen.ttl / 1_000));
      reply.header('retry-after', String(retry));
      done(
        new DcacheError(
          'AUTH_THROTTLED',
          `${seen.current} failed authentications from this client; retry in ${retry} s with a valid token`,
        ),
      );
    });
  }
  const rateLimit =
    config.rateLimit.max > 0
      ? new RateLimit(
          config.rateLimit.max,
          config.rateLimit.window,
          (req) => clientAddress(req, trust),
          () => metrics.rateLimited.inc(),
        )
      : undefined;
  if (rateLimit) {
    app.addHook('onRequest', (req, reply, done) => {
      if (rateLimitExempt(req.url)) {
        done();
        return;
      }
      const v = rateLimit.check(req.raw);
      for (let i = 0; i < v.headers.length; i += 2)
        reply.header(v.headers[i] as string, v.headers[i + 1]);
      done(v.refused);
    });
  }

  const head = new ResponseHead(rt.holder, rt.state, opts.responseHeaders, cut);
  app.addHook('onSend', (req, reply, payload, done) => {
    const h = head.headers(req.id);
    for (let i = 0; i < h.length; i += 2) reply.header(h[i] as string, h[i + 1]);
    done(null, payload);
  });
  const unmatched = httpTracker(metrics, routeRecorder(metrics, 'unmatched'));
  if (httpMetrics)
    app.addHook('onResponse', (req, reply, done) => {
      if (req.is404) unmatched(req, reply, done);
      else done();
    });
  const recorders = new Map<string, RouteRecorder>();
  // Static routes of the `/api/v1/cache/{segment}` shape: the fast path leaves them to Fastify.
  const reserved = new Set<string>();
  // Every route gets its own metrics hook as it is declared: it closes over the route template
  // and cached label children, so a request pays no route lookup (`req.routeOptions` builds an
  // object per read) and no label hashing. Unmatched requests (404) use the global hook.
  app.addHook('onRoute', (route) => {
    let record = recorders.get(route.url);
    if (!record) {
      record = routeRecorder(metrics, route.url);
      recorders.set(route.url, record);
    }
    if (httpMetrics)
      route.onResponse = [...hookList(route.onResponse), httpTracker(metrics, record)] as never;
    const rest = route.url.startsWith(SINGLE_KEY_PREFIX)
      ? route.url.slice(SINGLE_KEY_PREFIX.length)
      : '';
    if (rest !== '' && !rest.includes('/') && !rest.includes(':')) reserved.add(rest);
  });

  app.setErrorHandler((err, req, reply) => {
    const a = errorAnswer(err, () => req.log);
    if (a.code === 'UNAUTHORIZED' || a.code === 'FORBIDDEN') {
      authFailures.hit(req.ip);
      metrics.authFailures.inc({
        outcome: a.code === 'UNAUTHORIZED' ? 'unauthorized' : 'forbidden',
      });
    }
    afterBody(req.raw, () => void reply.code(a.status).type('application/json').send(a.body));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(errorBody('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  const ops = singleKeyOps(rt);
  await app.register(async (scope) => {
    cacheRoutes(scope, rt, ops);
    batchRoutes(scope, rt);
    keysRoutes(scope, rt);
    statsRoutes(scope, rt);
    healthRoutes(scope, rt);
    metricsRoutes(scope, rt);
    ringRoutes(scope, rt);
    for (const p of opts.plugins ?? []) await p(scope, rt);
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const record = recorders.get(`${SINGLE_KEY_PREFIX}:key`);
  if (config.server.fastPath && record) {
    fast = createFastPath({
      rt,
      ops,
      head,
      record: httpMetrics ? record : () => {},
      inflight,
      served: httpMetrics ? metrics.localCounter(metrics.fastPath, {}) : NO_GAUGE,
      reserved,
      putLimit: putBodyLimit(rt),
      rateLimit,
    });
  }
  return app;
}
