import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import { DcacheError, ERRORS, type ErrorCode, errorBody, isErrorCode } from './errors.js';
import { statusClass } from './metrics.js';
import { batchRoutes } from './routes/batch.js';
import { cacheRoutes } from './routes/cache.js';
import { healthRoutes } from './routes/health.js';
import { keysRoutes } from './routes/keys.js';
import { metricsRoutes } from './routes/metrics.js';
import { ringRoutes } from './routes/ring.js';
import { statsRoutes } from './routes/stats.js';
import type { Runtime } from './runtime.js';

/** Extra route plugins (ring admin, peer exchange) registered by other modules. */
export type RoutePlugin = (app: FastifyInstance, rt: Runtime) => void | Promise<void>;

/** Options of `buildApp`. */
export interface AppOptions {
  plugins?: RoutePlugin[];
  /** Headers added to every response (e.g. X-Ring-Version); evaluated per response. */
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

/** Write a whole error response straight to a socket (for requests Fastify never sees). */
function rawError(socket: Duplex, code: ErrorCode, message: string): void {
  if (!socket.writable) return;
  const text = JSON.stringify(errorBody(code, message));
  const status = ERRORS[code].status;
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

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

/** The HTTP server over a runtime, not listening (tests inject or listen on port 0). */
export async function buildApp(rt: Runtime, opts: AppOptions = {}): Promise<FastifyInstance> {
  const { config, metrics, log } = rt;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.maxBodyBytes,
    requestTimeout: config.server.readTimeout,
    connectionTimeout: config.server.writeTimeout,
    keepAliveTimeout: config.server.idleTimeout,
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    exposeHeadRoutes: false,
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
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
  await app.register(helmet, { contentSecurityPolicy: false, global: true });
  if (config.rateLimit.max > 0) {
    await app.register(rateLimit, {
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.window,
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

  const inflight = metrics.inflight;
  const extraHeaders = opts.responseHeaders;
  // The scrape itself is not counted in flight, so an idle proxy reads 0.
  const counted = (req: { routeOptions: { url?: string | undefined } }) =>
    req.routeOptions.url !== '/metrics';
  app.addHook('onRequest', (req, reply, done) => {
    if (counted(req)) inflight.inc();
    (req as { t0?: number }).t0 = performance.now();
    if (rt.state.shuttingDown) {
      reply.header('connection', 'close');
    }
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (extraHeaders) for (const [k, v] of Object.entries(extraHeaders())) reply.header(k, v);
    // A request that was in flight when shutdown began must not leave its keep-alive connection
    // open: the drain waits for every connection, so it would last the whole shutdown_timeout.
    if (rt.state.shuttingDown) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    if (counted(req)) inflight.dec();
    const route = req.routeOptions.url ?? 'unmatched';
    const labels = { route, method: req.method, status_class: statusClass(reply.statusCode) };
    metrics.http.requests.inc(labels);
    metrics.http.duration.observe(
      labels,
      (performance.now() - ((req as { t0?: number }).t0 ?? 0)) / 1_000,
    );
    done();
  });

  app.setErrorHandler((err, req, reply) => {
    const { code, message } = codeOf(err);
    const status = ERRORS[code].status;
    if (status >= 500 && code === 'INTERNAL') req.log.error({ err }, 'unhandled error');
    else if (status >= 500) req.log.warn({ code, msg: message }, 'upstream error');
    const body: Record<string, unknown> = errorBody(code, message);
    if (err instanceof DcacheError && err.details?.failed) body.failed = err.details.failed;
    void reply.code(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(errorBody('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  await app.register(async (scope) => {
    cacheRoutes(scope, rt);
    batchRoutes(scope, rt);
    keysRoutes(scope, rt);
    statsRoutes(scope, rt);
    healthRoutes(scope, rt);
    metricsRoutes(scope, rt);
    ringRoutes(scope, rt);
    for (const p of opts.plugins ?? []) await p(scope, rt);
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
