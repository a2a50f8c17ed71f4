import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { DcacheError, ERRORS, type ErrorCode, errorBody, isErrorCode, rawError } from './errors.js';
import {
  createFastPath,
  kLastResponse,
  type OrderedSocket,
  type RouteRecorder,
} from './fast-path.js';
import type { RingSnapshot } from './membership/membership-holder.js';
import { HTTP_DURATION_BUCKETS, statusClass } from './metrics.js';
import { nextRequestId } from './request-id.js';
import { batchRoutes } from './routes/batch.js';
import { cacheRoutes, singleKeyOps } from './routes/cache.js';
import { healthRoutes } from './routes/health.js';
import { keysRoutes } from './routes/keys.js';
import { metricsRoutes } from './routes/metrics.js';
import { ringRoutes } from './routes/ring.js';
import { statsRoutes } from './routes/stats.js';
import type { Runtime } from './runtime.js';
import { clientAddress, trustFn } from './security/client-address.js';
import { WindowCounter } from './security/window-counter.js';

/** Extra route plugins (ring admin, peer exchange) registered by other modules. */
export type RoutePlugin = (app: FastifyInstance, rt: Runtime) => void | Promise<void>;

/** Options of `buildApp`. */
export interface AppOptions {
  plugins?: RoutePlugin[];
  /** Headers added to every response after X-Ring-Version / X-Ring-Checksum; evaluated per response. */
  responseHeaders?: () => Record<string, string>;
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'INVALID_KEY',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

// Node's own client errors that deserve their own message (the rest: "not valid HTTP/1.1").
const CLIENT_ERRORS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'the request line and headers are larger than the server accepts',
  ERR_HTTP_REQUEST_TIMEOUT: 'the request was not received within the read timeout',
  HPE_INVALID_EOF_STATE: 'the connection ended before the whole request was received',
};

/** Map any error thrown while serving to a catalogue code. */
export function codeOf(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof DcacheError) return { code: err.code, message: err.message };
  const e = err as FastifyError & { status?: number };
  const mapped = e?.code ? FASTIFY_CODES[e.code] : undefined;
  if (mapped)
    return {
      code: mapped,
      message: mapped === 'INVALID_KEY' ? 'the URL is not valid percent-encoding' : e.message,
    };
  if (e?.code && isErrorCode(e.code)) return { code: e.code, message: e.message };
  const status = e?.statusCode ?? e?.status;
  if (e instanceof SyntaxError || (status === 400 && /JSON/i.test(e?.message ?? ''))) {
    return { code: 'INVALID_JSON', message: 'the request body is not valid JSON' };
  }
  if (status === 413) return { code: 'PAYLOAD_TOO_LARGE', message: e.message };
  if (status === 415) return { code: 'UNSUPPORTED_MEDIA_TYPE', message: e.message };
  if (status === 404) return { code: 'NOT_FOUND', message: e.message };
  if (status === 405) return { code: 'METHOD_NOT_ALLOWED', message: e.message };
  if (status === 429) return { code: 'RATE_LIMITED', message: e.message };
  if (status !== undefined && status >= 400 && status < 500)
    return { code: 'BAD_REQUEST', message: e.message };
  return { code: 'INTERNAL', message: 'internal error' };
}

/**
 * A request answered before its body was read (413 from Content-Length): Node closes the socket
 * right after the response, and closing with unread data makes the kernel send RST, which can
 * discard the 413 before the client reads it. Instead, half-close and keep reading (discarding)
 * until the client ends or `ms` passes — the lingering close Go's net/http does.
 */
export function lingerUnreadBody(raw: IncomingMessage, ms = 2_000): void {
  const sock = raw.socket as Socket & { destroySoon?: () => void };
  if (!sock || sock.destroyed) return;
  raw.resume();
  sock.on('data', () => {}); // keep the socket flowing after the parser lets go of it
  sock.destroySoon = () => {
    sock.end();
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    sock.once('end', done);
    sock.once('close', () => clearTimeout(timer));
  };
}

type AnyLogFn = (...args: unknown[]) => void;
type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>;

/**
 * A request's logger that makes its pino child (bound to the request id) on first use. Fastify
 * builds one child per request; with request logging off almost no request ever logs, so the
 * child (bindings serialised, redaction set up) was pure cost on the hot path.
 */
class LazyRequestLogger {
  private readonly parent: FastifyBaseLogger;
  private readonly bindings: Bindings;
  private readonly opts: ChildLoggerOptions;
  private made: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.parent = parent;
    this.bindings = bindings;
    this.opts = opts;
  }

  private get real(): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings, this.opts);
    return this.made;
  }

  get level(): string {
    return this.made?.level ?? this.opts.level ?? this.parent.level;
  }

  set level(l: string) {
    this.real.level = l;
  }

  fatal(...a: unknown[]): void {
    (this.real.fatal as AnyLogFn)(...a);
  }

  error(...a: unknown[]): void {
    (this.real.error as AnyLogFn)(...a);
  }

  warn(...a: unknown[]): void {
    (this.real.warn as AnyLogFn)(...a);
  }

  info(...a: unknown[]): void {
    (this.real.info as AnyLogFn)(...a);
  }

  debug(...a: unknown[]): void {
    (this.real.debug as AnyLogFn)(...a);
  }

  trace(...a: unknown[]): void {
    (this.real.trace as AnyLogFn)(...a);
  }

  silent(...a: unknown[]): void {
    (this.real.silent as AnyLogFn)(...a);
  }

  child(b: Bindings, o?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(b, o);
  }
}

/** Headers Fastify sets itself: not part of what helmet adds. */
const BASE_HEADERS = new Set([
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
]);

/**
 * The headers @fastify/helmet sets with our options, read once from the plugin itself. The plugin
 * rebuilds helmet's middleware on every request (two more hooks, one async); with fixed options
 * the headers never vary, so copying them per request is equivalent and much cheaper.
 */
async function helmetHeaders(): Promise<[string, string][]> {
  const probe = Fastify({ logger: false });
  await probe.register(helmet, { contentSecurityPolicy: false, global: true });
  probe.get('/', async () => '');
  const res = await probe.inject({ method: 'GET', url: '/' });
  await probe.close();
  return Object.entries(res.headers).filter(
    (e): e is [string, string] => typeof e[1] === 'string' && !BASE_HEADERS.has(e[0]),
  );
}

type Hook = (req: FastifyRequest, reply: FastifyReply, done: () => void) => void;

/** A route option's hooks as a list (Fastify accepts one function or an array). */
function hookList(h: unknown): Hook[] {
  return h === undefined ? [] : Array.isArray(h) ? (h as Hook[]) : [h as Hook];
}

const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;
const FAST_PREFIX = '/api/v1/cache/';

/** The /metrics scrape is not counted in flight, so an idle proxy reads 0. */
function countedUrl(url: string): boolean {
  return !(url === '/metrics' || url.startsWith('/metrics?'));
}

/**
 * Counts and times the answers of one route template through label children made once per
 * method and status class (no label hashing per request).
 */
function routeRecorder(metrics: Runtime['metrics'], route: string): RouteRecorder {
  const { http } = metrics;
  type Children = { requests: { inc(): void }; duration: { observe(v: number): void } };
  const children = new Map<string, (Children | undefined)[]>();
  return (method, status, seconds) => {
    let byClass = children.get(method);
    if (!byClass) {
      byClass = [];
      children.set(method, byClass);
    }
    const sc = statusClass(status);
    const i = STATUS_CLASSES.indexOf(sc);
    let c = byClass[i];
    if (!c) {
      const labels = { route, method, status_class: sc };
      c = {
        requests: metrics.localCounter(http.requests, labels),
        duration: metrics.localHistogram(http.duration, labels, HTTP_DURATION_BUCKETS),
      };
      byClass[i] = c;
    }
    c.requests.inc();
    c.duration.observe(seconds);
  };
}

/** The onResponse hook of one route template: the in-flight count down, then its recorder. */
function httpTracker(metrics: Runtime['metrics'], record: RouteRecorder): Hook {
  const { inflight } = metrics;
  return (req, reply, done) => {
    if (countedUrl(req.url)) inflight.dec();
    record(req.method, reply.statusCode, reply.elapsedTime / 1_000);
    done();
  };
}

/** The HTTP server over a runtime, not listening (tests inject or listen on port 0). */
export async function buildApp(rt: Runtime, opts: AppOptions = {}): Promise<FastifyInstance> {
  const { config, metrics, log } = rt;
  // Set once the routes are in: plain single-key requests are answered before Fastify sees them.
  let fast: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  // One notion of the client for both paths: the socket's peer, or what a trusted proxy says.
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
      // What Fastify does to the server it makes itself.
      server.keepAliveTimeout = o.keepAliveTimeout as number;
      server.requestTimeout = o.requestTimeout as number;
      server.setTimeout(o.connectionTimeout as number);
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
    requestIdHeader: 'x-request-id',
    genReqId: nextRequestId,
    childLoggerFactory: (logger, bindings, opts) => new LazyRequestLogger(logger, bindings, opts),
    routerOptions: { maxParamLength: 65_536, ignoreTrailingSlash: false },
    ajv: { customOptions: { allErrors: false } },
    // Requests Node's HTTP parser refuses (bad framing, truncated body, header overflow, read
    // timeout) never reach Fastify: answer them with a catalogue body too, then close.
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const res = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (!res?.headersSent) {
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
  // Node dispatches pipelined requests at once and only orders the answers; RFC 9112 §9.3.2
  // allows that for safe methods only. Run a connection's requests one after the other, so that a
  // GET pipelined after a PUT of the same key reads what the PUT wrote.
  app.addHook('onRequest', (req, reply, done) => {
    const sock = req.raw.socket as OrderedSocket;
    const prev = sock[kLastResponse];
    sock[kLastResponse] = reply.raw;
    if (prev === undefined || prev.writableFinished || prev.destroyed) done();
    else prev.once('close', () => done());
  });
  // Node's requestTimeout stops counting once the headers are in: a body trickling in a byte a
  // second would hold its connection for ever. Close it read_timeout after the headers.
  const readTimeout = config.server.readTimeout;
  app.addHook('onRequest', (req, reply, done) => {
    const h = req.headers;
    if (h['transfer-encoding'] !== undefined || (h['content-length'] ?? '0') !== '0') {
      const raw = req.raw;
      const timer = setTimeout(() => {
        if (raw.complete) return;
        const why = 'the request body was not received within the read timeout';
        if (!reply.raw.headersSent) rawError(raw.socket, 'BAD_REQUEST', why);
        raw.socket.destroy();
      }, readTimeout);
      reply.raw.once('close', () => clearTimeout(timer));
    }
    done();
  });
  // Route schemas document the API (OpenAPI); validation is ours, with catalogue codes.
  app.setValidatorCompiler(() => () => true);
  app.removeContentTypeParser('text/plain');

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
  const security = await helmetHeaders();
  const { inflight } = metrics;
  // One hook for every request, registered before the rate limit so that a 429 carries the same
  // headers: security headers, Connection: close while shutting down, and the in-flight count.
  app.addHook('onRequest', (req, reply, done) => {
    for (let i = 0; i < security.length; i++) {
      const h = security[i] as [string, string];
      reply.header(h[0], h[1]);
    }
    if (rt.state.shuttingDown) reply.header('connection', 'close');
    if (countedUrl(req.url)) inflight.inc();
    // Node passes a raw `#` through in the request target, and the router would cut the path
    // there: `/api/v1/cache/a#b` would address key "a". Refuse it; `%23` is how a key holds `#`.
    if (req.url.includes('#')) {
      done(new DcacheError('INVALID_KEY', 'a raw "#" in the path: percent-encode it as %23'));
      return;
    }
    done();
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
  // The rate limit: one counter per client for both paths (the fast path counts in it too).
  const requests =
    config.rateLimit.max > 0 ? new WindowCounter(config.rateLimit.window) : undefined;
  if (requests) {
    const shared = {
      incr: (key: string, cb: (e: Error | null, r: { current: number; ttl: number }) => void) =>
        cb(null, requests.hit(key)),
      read: (key: string, cb: (e: Error | null, r: { current: number; ttl: number }) => void) =>
        cb(null, requests.peek(key)),
      child: () => shared,
    };
    await app.register(rateLimit, {
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.window,
      store: function Store() {
        return shared;
      } as unknown as never,
      allowList: (req) =>
        req.url.startsWith('/health') || req.url === '/metrics' || req.url.startsWith('/internal/'),
      onExceeded: () => metrics.rateLimited.inc(),
      errorResponseBuilder: (_req, ctx) => {
        const e = new DcacheError(
          'RATE_LIMITED',
          `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`,
        );
        return Object.assign(e, { statusCode: 429 });
      },
    });
  }

  // X-Ring-Version / X-Ring-Checksum (the routing epoch) on every answer, made once per snapshot,
  // then an embedder's headers if any.
  const embedderHeaders = opts.responseHeaders;
  let headersOf: RingSnapshot | undefined;
  let ringHeaders: Record<string, string> = {};
  const extraHeaders = (): Record<string, string> => {
    const snap = rt.holder.current;
    if (snap !== headersOf) {
      headersOf = snap;
      ringHeaders = { 'x-ring-version': String(snap.version), 'x-ring-checksum': snap.checksum };
    }
    return embedderHeaders ? { ...ringHeaders, ...embedderHeaders() } : ringHeaders;
  };
  const unmatched = httpTracker(metrics, routeRecorder(metrics, 'unmatched'));
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
    route.onResponse = [...hookList(route.onResponse), httpTracker(metrics, record)];
    const rest = route.url.startsWith(FAST_PREFIX) ? route.url.slice(FAST_PREFIX.length) : '';
    if (rest !== '' && !rest.includes('/') && !rest.includes(':')) reserved.add(rest);
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    reply.headers(extraHeaders());
    // A request that was in flight when shutdown began must not leave its keep-alive connection
    // open: the drain waits for every connection, so it would last the whole shutdown_timeout.
    if (rt.state.shuttingDown) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    if (req.is404) unmatched(req, reply, done);
    else done();
  });

  app.setErrorHandler((err, req, reply) => {
    const { code, message } = codeOf(err);
    const status = ERRORS[code].status;
    if (code === 'UNAUTHORIZED' || code === 'FORBIDDEN') {
      authFailures.hit(req.ip);
      metrics.authFailures.inc({ outcome: code === 'UNAUTHORIZED' ? 'unauthorized' : 'forbidden' });
    }
    if (status >= 500 && code === 'INTERNAL') req.log.error({ err }, 'unhandled error');
    else if (status >= 500) req.log.warn({ code, msg: message }, 'upstream error');
    const body: Record<string, unknown> = errorBody(code, message);
    if (err instanceof DcacheError && err.details?.failed) body.failed = err.details.failed;
    if (!req.raw.complete) {
      reply.header('connection', 'close');
      lingerUnreadBody(req.raw);
    }
    void reply.code(status).type('application/json').send(body);
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
  const record = recorders.get(`${FAST_PREFIX}:key`);
  if (config.server.fastPath && record) {
    fast = createFastPath({
      rt,
      ops,
      codeOf,
      record,
      security,
      extraHeaders,
      reserved,
      // Counted in the same windows as Fastify's path; a request past the limit is left to
      // Fastify, whose rate-limit plugin answers the 429.
      ...(requests
        ? {
            rateLimit: {
              max: config.rateLimit.max,
              hit: (req: IncomingMessage) => requests.hit(clientAddress(req, trust)),
            },
          }
        : {}),
    });
  }
  return app;
}
