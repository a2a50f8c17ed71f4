import {
  IncomingMessage,
  ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from 'node:http';
import type { Socket } from 'node:net';
import secureJson from 'secure-json-parse';
import { DcacheError, ERRORS, errorBody, rawError } from './errors.js';
import { nextRequestId } from './request-id.js';
import type { SingleKeyOps } from './routes/cache.js';
import type { Runtime } from './runtime.js';

/** The last response of a connection: a pipelined request waits until it is finished. */
export const kLastResponse = Symbol('lastResponse');

/** A socket with the response of its latest request. */
export type OrderedSocket = Socket & { [kLastResponse]?: ServerResponse };

/** Records one answered request of a route: method, status and seconds. */
export type RouteRecorder = (method: string, status: number, seconds: number) => void;

/** Maps a thrown error to a catalogue code (the app's own mapping, shared with Fastify's path). */
export type CodeOf = (err: unknown) => { code: keyof typeof ERRORS; message: string };

/** What the fast path needs from the app. */
export interface FastPathDeps {
  rt: Runtime;
  ops: SingleKeyOps;
  codeOf: CodeOf;
  record: RouteRecorder;
  /** Headers of every response (the security headers), as name/value pairs. */
  security: readonly (readonly [string, string])[];
  /** Headers evaluated per response (X-Ring-Version and the like). */
  extraHeaders: (() => Record<string, string>) | undefined;
  /** Static routes that share the `/api/v1/cache/{segment}` shape (`batch`, `keys`, `stats`). */
  reserved: ReadonlySet<string>;
  /** The rate limit, when one is set: counts a request of its client, in Fastify's windows. */
  rateLimit?: {
    max: number;
    hit: (req: IncomingMessage) => { current: number; ttl: number };
  };
}

const PREFIX = '/api/v1/cache/';
const JSON_TYPE = 'application/json; charset=utf-8';
// Fastify's default JSON parser: prototype poisoning is refused, not stripped.
const PARSE_OPTS = { protoAction: 'error', constructorAction: 'error' } as const;
const INVALID_JSON = "Body is not valid JSON but content-type is set to 'application/json'";

/** `name: value\r\n` lines of fixed headers, each validated as writeHead would, once. */
export function headerLines(pairs: Iterable<readonly [string, string]>): string {
  let s = '';
  for (const [k, v] of pairs) {
    validateHeaderName(k);
    validateHeaderValue(k, v);
    s += `${k}: ${v}\r\n`;
  }
  return s;
}

/** True when both header sets have the same names and values, in the same order. */
function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i] as string;
    if (k !== kb[i] || a[k] !== b[k]) return false;
  }
  return true;
}

type HeadedResponse = ServerResponse & { _header?: unknown };

/**
 * True when node:http keeps the head of a response it has not sent yet as a string in
 * `_header` (status line first), which lets fixed header lines be spliced in after writeHead
 * instead of being validated and concatenated one by one on every response. Checked on this
 * Node at start-up; without it the fast path passes every header to writeHead.
 */
export function canSpliceHead(): boolean {
  try {
    const res = new ServerResponse(new IncomingMessage(null as never)) as HeadedResponse;
    res.writeHead(200, ['x-probe', '1']);
    const h = res._header;
    return typeof h === 'string' && h.startsWith('HTTP/1.1 200 OK\r\nx-probe: 1\r\n');
  } catch {
    return false;
  }
}

/** True for the two spellings clients send in practice; anything else goes to Fastify. */
function plainJsonType(ct: string | undefined): boolean {
  return ct === 'application/json' || ct === 'application/json; charset=utf-8';
}

/**
 * A request handler for `GET|HEAD|PUT|DELETE /api/v1/cache/{key}` on node:http, called before
 * Fastify's. It serves only the plain case: no query string, no `/` in the key, a decodable key,
 * no request body except a PUT's JSON with Content-Length within the limit, and no earlier
 * request of the same connection still being answered. It returns false for anything else
 * and Fastify serves it; answers are the same either way (test/fast-path-parity.test.ts).
 * With a rate limit, each request it serves is counted in the same windows as Fastify's path
 * and carries the same X-RateLimit-* headers; one past the limit is left to Fastify's 429.
 */
export function createFastPath(
  d: FastPathDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { rt, ops, codeOf, record, security, extraHeaders, reserved, rateLimit } = d;
  const { inflight } = rt.metrics;
  const fastPath = rt.metrics.localCounter(rt.metrics.fastPath, {});
  const { state, log } = rt;
  const putLimit = rt.config.limits.maxValueBytes + 64 * 1024;
  const maxSegment = rt.config.limits.maxKeyBytes * 3;
  const readTimeout = rt.config.server.readTimeout;
  // The fixed headers of every answer (security headers, then X-Ring-*, then Content-Type when
  // there is a body) go in as one block of lines, validated once: per header, writeHead's
  // validation and concatenation cost more than all of the proxy's own work on a GET. The
  // per-response headers are re-validated only when they change (the app hands out one object
  // per ring snapshot; with an embedder's headers, a new object with the same content).
  const splice = canSpliceHead();
  const securityLines = headerLines(security);
  let extraOf: Record<string, string> | undefined;
  let bare = securityLines;
  let withType = `${securityLines}content-type: ${JSON_TYPE}\r\n`;
  const fixed = (json: boolean): string => {
    if (extraHeaders) {
      const x = extraHeaders();
      if (x !== extraOf) {
        if (extraOf === undefined || !sameHeaders(x, extraOf)) {
          bare = securityLines + headerLines(Object.entries(x));
          withType = `${bare}content-type: ${JSON_TYPE}\r\n`;
        }
        extraOf = x;
      }
    }
    return json ? withType : bare;
  };
  const base: string[] = [];
  if (!splice) for (const [k, v] of security) base.push(k, v);

  // One array for every response: writeHead reads it synchronously and keeps no reference.
  const out: string[] = base.slice();
  // The X-RateLimit-* values of the request being answered (set just before it is served).
  let limitHeaders: string[] | undefined;
  function headers(id: string, length: number, json: boolean, close: boolean): string[] {
    out.length = base.length;
    if (limitHeaders !== undefined) out.push(...limitHeaders);
    if (!splice) {
      if (json) out.push('content-type', JSON_TYPE);
      if (extraHeaders) {
        const x = extraHeaders();
        for (const k in x) out.push(k, x[k] as string);
      }
    }
    out.push('x-request-id', id);
    if (close || state.shuttingDown) out.push('connection', 'close');
    // A HEAD answer carries no Content-Length, as Fastify sends it.
    if (json) out.push('content-length', String(length));
    return out;
  }

  /** writeHead with the fixed lines spliced in after the status line. */
  function writeHead(res: ServerResponse, status: number, h: string[], json: boolean): void {
    res.writeHead(status, h);
    if (!splice) return;
    const r = res as HeadedResponse;
    const head = r._header as string;
    const eol = head.indexOf('\r\n') + 2;
    r._header = head.slice(0, eol) + fixed(json) + head.slice(eol);
  }

  /** One request being served: its answer, its metrics and its log lines. */
  function serve(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    key: string,
    limit: string[] | undefined,
  ): void {
    const start = performance.now();
    inflight.inc();
    fastPath.inc();
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && given !== '' ? given : nextRequestId();
    let answered = false;
    const send = (status: number, body: string, json: boolean, close = false) => {
      if (answered) return;
      answered = true;
      limitHeaders = limit;
      writeHead(res, status, headers(id, Buffer.byteLength(body), json, close), json);
      res.end(body);
      inflight.dec();
      record(method, status, (performance.now() - start) / 1_000);
    };
    const fail = (err: unknown, close = false) => {
      const { code, message } = codeOf(err);
      const status = ERRORS[code].status;
      if (status >= 500 && code === 'INTERNAL') log.error({ reqId: id, err }, 'unhandled error');
      else if (status >= 500) log.warn({ reqId: id, code, msg: message }, 'upstream error');
      send(status, JSON.stringify(errorBody(code, message)), true, close);
    };
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
            fail(Object.assign(new Error('request aborted'), { statusCode: 400 }), true);
            return;
          }
          let body: unknown;
          try {
            body = secureJson.parse(text, undefined, PARSE_OPTS);
          } catch {
            // As Fastify does after any body it could not parse: the client may send more.
            fail(new DcacheError('INVALID_JSON', INVALID_JSON), true);
            return;
          }
          ops.put(key, body).then((r) => send(200, JSON.stringify(r), true), fail);
        });
    }
  }

  /**
   * The whole body as UTF-8 text, or undefined when the request was aborted. A body still
   * trickling in read_timeout after the headers closes the connection, as on Fastify's path.
   */
  function readBody(req: IncomingMessage, done: (text: string | undefined) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = (text: string | undefined) => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
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
    // A body that came with its headers is complete once the parser has run over the rest of
    // the packet, before the next tick: only a body still missing then gets a timer.
    process.nextTick(() => {
      if (finished || req.complete) return;
      timer = setTimeout(() => {
        if (req.complete) return;
        rawError(
          req.socket,
          'BAD_REQUEST',
          'the request body was not received within the read timeout',
        );
        req.socket.destroy();
      }, readTimeout);
    });
  }

  return (req, res) => {
    const url = req.url as string;
    if (!url.startsWith(PREFIX)) return false;
    const method = req.method as string;
    const h = req.headers;
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
    const sock = req.socket as OrderedSocket;
    const prev = sock[kLastResponse];
    if (prev !== undefined && !prev.writableFinished && !prev.destroyed) return false;
    let limit: string[] | undefined;
    if (rateLimit !== undefined) {
      const c = rateLimit.hit(req);
      if (c.current > rateLimit.max) return false;
      limit = [
        'x-ratelimit-limit',
        String(rateLimit.max),
        'x-ratelimit-remaining',
        String(rateLimit.max - c.current),
        'x-ratelimit-reset',
        String(Math.ceil(c.ttl / 1_000)),
      ];
    }
    sock[kLastResponse] = res;
    serve(req, res, method, key, limit);
    return true;
  };
}
