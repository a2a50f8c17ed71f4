import type { IncomingMessage, ServerResponse } from 'node:http';
import { DcacheError } from '../errors.js';
import { requestIdOf } from '../request-id.js';
import type { Runtime } from '../runtime.js';
import { armBodyTimeout, inTurn } from './connection.js';
import { type ErrorLog, errorAnswer } from './errors.js';
import { parseJsonBody } from './json-body.js';
import type { RateLimit } from './rate-limit.js';
import { JSON_TYPE, type ResponseHead } from './response-head.js';
import type { RouteRecorder } from './route-metrics.js';
import type { SingleKeyOps } from './single-key-core.js';

/** What the fast path shares with Fastify's path: one implementation of each concern. */
export interface FastPathDeps {
  rt: Runtime;
  /** The route core (validation, cache call, answer body). */
  ops: SingleKeyOps;
  /** The headers of every answer. */
  head: ResponseHead;
  /** The metrics recorder of the `/api/v1/cache/:key` route. */
  record: RouteRecorder;
  /** The in-flight gauge and the count of requests the fast path served. */
  inflight: { inc(): void; dec(): void };
  served: { inc(): void };
  /** Static routes that share the `/api/v1/cache/{segment}` shape (`batch`, `keys`, `stats`). */
  reserved: ReadonlySet<string>;
  /** Body limit of a PUT (the route's). */
  putLimit: number;
  rateLimit: RateLimit | undefined;
}

const PREFIX = '/api/v1/cache/';

/** True for the two spellings clients send in practice; anything else goes to Fastify. */
function plainJsonType(ct: string | undefined): boolean {
  return ct === 'application/json' || ct === 'application/json; charset=utf-8';
}

/**
 * A request handler for `GET|HEAD|PUT|DELETE /api/v1/cache/{key}` on node:http, called before
 * Fastify's: it skips Fastify's routing, request and reply objects and hook chain, and nothing
 * else. Validation, cache calls and answer bodies come from the route core; headers, request id,
 * error answers and logs, pipelining order, the body timeout, the rate limit and metrics from
 * the same modules Fastify's path calls. It takes only the plain case (no query string, no `/`
 * in the key, a decodable key, no credentials, no body but a PUT's JSON with Content-Length
 * within the limit) and returns false for anything else, which Fastify serves. packages/proxy/test/parity.test.ts
 * sends the same requests both ways and compares the answers.
 */
export function createFastPath(
  d: FastPathDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { rt, ops, head, record, inflight, served, reserved, putLimit, rateLimit } = d;
  const maxSegment = rt.config.limits.maxKeyBytes * 3;
  const readTimeout = rt.config.server.readTimeout;

  /** One request being served: its answer, its metrics and its log lines. */
  function serve(req: IncomingMessage, res: ServerResponse, method: string, key: string): void {
    const start = performance.now();
    inflight.inc();
    served.inc();
    const id = requestIdOf(req.headers['x-request-id']);
    if (method === 'PUT') armBodyTimeout(req, res, readTimeout);
    const limit = rateLimit?.check(req);
    let answered = false;
    const send = (status: number, body: string, json: boolean, close = false) => {
      if (answered) return;
      answered = true;
      const h = head.headers(id);
      if (limit !== undefined) for (const x of limit.headers) h.push(x);
      if (close && !rt.state.shuttingDown) h.push('connection', 'close');
      // A HEAD answer carries neither, as Fastify sends it.
      if (json)
        h.push('content-type', JSON_TYPE, 'content-length', String(Buffer.byteLength(body)));
      res.writeHead(status, h);
      res.end(body);
      inflight.dec();
      record(method, status, (performance.now() - start) / 1_000);
    };
    let log: ErrorLog | undefined;
    const logOf = () => {
      log ??= rt.log.child({ reqId: id });
      return log;
    };
    const fail = (err: unknown, close = false) => {
      const a = errorAnswer(err, logOf);
      send(a.status, JSON.stringify(a.body), true, close);
    };
    inTurn(req, res, () => {
      if (limit?.refused !== undefined) fail(limit.refused);
      else dispatch(req, method, key, send, fail);
    });
  }

  /** The route core's call for `method`, answered through `send` or `fail`. */
  function dispatch(
    req: IncomingMessage,
    method: string,
    key: string,
    send: (status: number, body: string, json: boolean) => void,
    fail: (err: unknown, close?: boolean) => void,
  ): void {
    switch (method) {
      case 'GET':
        ops.get(key).then((text) => send(200, text, true), fail);
        return;
      case 'HEAD':
        ops.head(key).then((found) => send(found ? 200 : 404, '', false), fail);
        return;
      case 'DELETE':
        ops.del(key).then((r) => send(200, JSON.stringify(r), true), fail);
        return;
      default:
        readBody(req, (text) => {
          if (text === undefined) {
            fail(new DcacheError('BAD_REQUEST', 'the request was aborted'), true);
            return;
          }
          let body: unknown;
          try {
            body = parseJsonBody(text);
          } catch (e) {
            // As Fastify's parser does after any body it refused: the connection closes.
            fail(e, true);
            return;
          }
          ops.put(key, body).then((r) => send(200, JSON.stringify(r), true), fail);
        });
    }
  }

  return (req, res) => {
    const url = req.url as string;
    if (!url.startsWith(PREFIX)) return false;
    const method = req.method as string;
    const h = req.headers;
    // A request with credentials goes through Fastify's failed-authentication throttle.
    if (h.authorization !== undefined) return false;
    if (method === 'PUT') {
      const cl = h['content-length'];
      if (
        cl === undefined ||
        cl === '0' ||
        h['transfer-encoding'] !== undefined ||
        !plainJsonType(h['content-type']) ||
        Number(cl) > putLimit
      )
        return false;
    } else if (method === 'GET' || method === 'HEAD' || method === 'DELETE') {
      const cl = h['content-length'];
      if ((cl !== undefined && cl !== '0') || h['transfer-encoding'] !== undefined) return false;
    } else return false;
    let key = url.slice(PREFIX.length);
    if (
      key.length === 0 ||
      key.length > maxSegment ||
      key.includes('/') ||
      key.includes('?') ||
      key.includes('#')
    )
      return false;
    if (key.includes('%')) {
      try {
        key = decodeURIComponent(key);
      } catch {
        return false;
      }
    }
    if (reserved.has(key)) return false;
    serve(req, res, method, key);
    return true;
  };
}

/** The whole body as UTF-8 text, or undefined when the request was aborted. */
function readBody(req: IncomingMessage, done: (text: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (text: string | undefined) => {
    if (finished) return;
    finished = true;
    done(text);
  };
  req.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
  });
  req.on('end', () =>
    finish(
      chunks.length === 1
        ? (chunks[0] as Buffer).toString('utf8')
        : Buffer.concat(chunks, size).toString('utf8'),
    ),
  );
  req.on('error', () => finish(undefined));
}
