import { type Dispatcher, Pool } from 'undici';
import {
  DcacheAbortError,
  DcacheClientError,
  DcacheNetworkError,
  DcacheTimeoutError,
  type ErrorCode,
  type FailedMap,
} from './errors.js';
import type {
  AddNodeOptions,
  BatchDeleteResult,
  BatchGetResult,
  BatchItem,
  BatchOptions,
  BatchSetResult,
  CallOptions,
  DeleteResult,
  FlushResult,
  Health,
  JsonValue,
  KeysOptions,
  KeysPage,
  OwnerInfo,
  RingView,
  SetResult,
  Stats,
  Ttl,
  UpdateNodeChange,
} from './types.js';

/** Options of `new DcacheClient()`. */
export interface DcacheClientOptions {
  /** Base URL of a proxy (default `http://127.0.0.1:8080`); a path prefix is kept. */
  url?: string;
  /** Admin token, sent as `Authorization: Bearer <token>` (needed for flush and ring changes). */
  token?: string;
  /** Default timeout of every call in milliseconds (default 10000; 0 = none). */
  timeout?: number;
  /** Keep-alive connections to the proxy (default 16). */
  connections?: number;
  /** Extra headers sent with every call. */
  headers?: Record<string, string>;
}

/** The default proxy URL. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';
/** The default per-call timeout (ms). */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The default number of keys per batch request. */
export const DEFAULT_CHUNK_SIZE = 1_000;

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Keys whose single-key URL is another route for that method (the API's static paths win). */
const GET_SHADOWED = new Set(['keys', 'stats']);
const DELETE_SHADOWED = new Set(['batch']);

interface RawAnswer {
  status: number;
  text: string;
  requestId: string | undefined;
}

interface Call {
  method: Dispatcher.HttpMethod;
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  opts?: CallOptions | undefined;
}

/**
 * Typed client of the dcache REST and admin API over one undici keep-alive pool.
 * Server errors reject with `DcacheClientError` (stable `code`, `status`, message); transport
 * failures with `DcacheNetworkError` (`DcacheTimeoutError` on timeout); cancellation through an
 * AbortSignal with `DcacheAbortError`.
 */
export class DcacheClient {
  /** The base URL calls go to (without a trailing slash). */
  readonly url: string;
  private readonly prefix: string;
  private readonly pool: Pool;
  private readonly timeout: number;
  private readonly headers: Record<string, string>;

  constructor(opts: DcacheClientOptions = {}) {
    const raw = opts.url ?? DEFAULT_URL;
    let base: URL;
    try {
      base = new URL(raw);
    } catch {
      throw new TypeError(`invalid URL ${JSON.stringify(raw)}: expected http(s)://host:port`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new TypeError(`invalid URL ${JSON.stringify(raw)}: only http and https are supported`);
    if (base.search || base.hash)
      throw new TypeError(`invalid URL ${JSON.stringify(raw)}: no query string or fragment`);
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.url = `${base.origin}${this.prefix}`;
    const timeout = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout < 0)
      throw new TypeError(`invalid timeout ${timeout}: expected milliseconds ≥ 0`);
    this.timeout = timeout;
    this.pool = new Pool(base.origin, {
      connections: opts.connections ?? 16,
      keepAliveTimeout: 30_000,
      // Our own per-call timer covers the whole call; these only stop undici's defaults (300 s).
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.headers = {
      accept: 'application/json',
      'user-agent': 'dcache-client/0.1.0',
      ...opts.headers,
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    };
  }

  /** Close the keep-alive connections (in-flight calls finish first). */
  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
  }

  // --- single keys -------------------------------------------------------------------------

  /** Store `value` (any JSON-serialisable value) under `key`; `ttl` absent = the server default. */
  async set(
    key: string,
    value: unknown,
    opts: CallOptions & { ttl?: Ttl } = {},
  ): Promise<SetResult> {
    if (value === undefined) throw new TypeError('value must not be undefined');
    const body = opts.ttl === undefined ? { value } : { value, ttl: opts.ttl };
    return this.json<SetResult>({ method: 'PUT', path: keyPath(key), body, opts });
  }

  /** The value under `key`; rejects with `DcacheClientError` code `KEY_NOT_FOUND` when absent. */
  async get<T = JsonValue>(key: string, opts?: CallOptions): Promise<T> {
    if (GET_SHADOWED.has(key)) {
      // `GET /api/v1/cache/keys|stats` are the listing and stats routes: read through a batch.
      const b = await this.batchGet<T>([key], opts);
      if (Object.hasOwn(b.items, key)) return b.items[key] as T;
      const code = b.failed[key];
      if (code) throw new DcacheClientError(code, 503, `${key}: ${code}`);
      throw new DcacheClientError('KEY_NOT_FOUND', 404, 'key not found');
    }
    const r = await this.json<{ key: string; value: T }>({
      method: 'GET',
      path: keyPath(key),
      opts,
    });
    return r.value;
  }

  /** The value under `key`, or `undefined` when absent (other errors still reject). */
  async tryGet<T = JsonValue>(key: string, opts?: CallOptions): Promise<T | undefined> {
    try {
      return await this.get<T>(key, opts);
    } catch (e) {
      if (e instanceof DcacheClientError && e.code === 'KEY_NOT_FOUND') return undefined;
      throw e;
    }
  }

  /** Whether `key` exists (HEAD). */
  async exists(key: string, opts?: CallOptions): Promise<boolean> {
    const a = await this.send({ method: 'HEAD', path: keyPath(key), opts });
    if (a.status === 200) return true;
    if (a.status === 404) return false;
    throw this.errorOf({ method: 'HEAD', path: keyPath(key) }, a);
  }

  /** Delete `key`; rejects with code `KEY_NOT_FOUND` when it did not exist. */
  async del(key: string, opts?: CallOptions): Promise<DeleteResult> {
    if (DELETE_SHADOWED.has(key)) {
      // `DELETE /api/v1/cache/batch` is the batch delete route: delete through it.
      const b = await this.batchDel([key], opts);
      const code = b.failed[key];
      if (code) throw new DcacheClientError(code, 503, `${key}: ${code}`);
      if (b.deleted === 0) throw new DcacheClientError('KEY_NOT_FOUND', 404, 'key not found');
      return { key, deleted: true };
    }
    return this.json<DeleteResult>({ method: 'DELETE', path: keyPath(key), opts });
  }

  // --- batches -------------------------------------------------------------------------------

  /**
   * Store many values. `items` maps key → `{value, ttl?}`; `opts.ttl` applies to items without
   * one. Resolves with the count stored and the per-key `failed` map (also when every key failed).
   */
  async batchSet(
    items: Record<string, BatchItem> | ReadonlyMap<string, BatchItem>,
    opts: BatchOptions & { ttl?: Ttl } = {},
  ): Promise<BatchSetResult> {
    const entries = items instanceof Map ? [...items] : Object.entries(items);
    const list: [string, BatchItem][] = entries.map(([k, it]) => {
      checkKey(k);
      if (it === null || typeof it !== 'object' || it.value === undefined)
        throw new TypeError(`item ${JSON.stringify(k)} has no value`);
      const ttl = it.ttl ?? opts.ttl;
      return [k, ttl === undefined ? { value: it.value } : { value: it.value, ttl }];
    });
    const out: BatchSetResult = { stored: 0, failed: {} };
    await this.chunked(list, opts, async (chunk) => {
      const r = await this.batchCall<BatchSetResult>({
        method: 'POST',
        path: '/api/v1/cache/batch',
        body: { items: Object.fromEntries(chunk) },
        opts,
      });
      out.stored += r.stored ?? 0;
      Object.assign(out.failed, r.failed);
    });
    return out;
  }

  /** Read many keys: `items` found, `missing` keys, per-key `failed` codes. */
  async batchGet<T = JsonValue>(
    keys: readonly string[],
    opts: BatchOptions = {},
  ): Promise<BatchGetResult<T>> {
    const unique = [...new Set(keys)];
    for (const k of unique) checkKey(k);
    const out: BatchGetResult<T> = { items: {}, missing: [], failed: {} };
    await this.chunked(unique, opts, async (chunk) => {
      const r = await this.batchCall<BatchGetResult<T>>({
        method: 'POST',
        path: '/api/v1/cache/batch/get',
        body: { keys: chunk },
        opts,
      });
      Object.assign(out.items, r.items);
      out.missing.push(...(r.missing ?? []));
      Object.assign(out.failed, r.failed);
    });
    return out;
  }

  /** Delete many keys: the count deleted and per-key `failed` codes. */
  async batchDel(keys: readonly string[], opts: BatchOptions = {}): Promise<BatchDeleteResult> {
    const unique = [...new Set(keys)];
    for (const k of unique) checkKey(k);
    const out: BatchDeleteResult = { deleted: 0, failed: {} };
    await this.chunked(unique, opts, async (chunk) => {
      const r = await this.batchCall<BatchDeleteResult>({
        method: 'DELETE',
        path: '/api/v1/cache/batch',
        body: { keys: chunk },
        opts,
      });
      out.deleted += r.deleted ?? 0;
      Object.assign(out.failed, r.failed);
    });
    return out;
  }

  // --- listing, stats, health, flush ---------------------------------------------------------

  /** One page of keys across every node (SCAN); pass `cursor` from the previous page. */
  async keys(opts: KeysOptions = {}): Promise<KeysPage> {
    const page = await this.json<KeysPage>({
      method: 'GET',
      path: '/api/v1/cache/keys',
      query: { pattern: opts.pattern, limit: opts.limit, cursor: opts.cursor },
      opts,
    });
    return {
      keys: page.keys,
      cursor: page.cursor ?? null,
      skipped_nodes: page.skipped_nodes ?? [],
    };
  }

  /** Every page of a key listing, in order, until the cursor runs out. */
  async *scan(opts: Omit<KeysOptions, 'cursor'> = {}): AsyncGenerator<KeysPage, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.keys(cursor === undefined ? opts : { ...opts, cursor });
      yield page;
      cursor = page.cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** Per-node and total figures. */
  async stats(opts?: CallOptions): Promise<Stats> {
    return this.json<Stats>({ method: 'GET', path: '/api/v1/cache/stats', opts });
  }

  /** `GET /health`: resolves for `ok`, `degraded` and `down` (503) alike. */
  async health(opts?: CallOptions): Promise<Health> {
    const call: Call = { method: 'GET', path: '/health', opts };
    const a = await this.send(call);
    const body = this.parse<Partial<Health>>(call, a);
    if ((a.status === 200 || a.status === 503) && typeof body?.status === 'string')
      return body as Health;
    throw this.errorOf(call, a);
  }

  /** Prometheus metrics text. */
  async metrics(opts?: CallOptions): Promise<string> {
    const call: Call = { method: 'GET', path: '/metrics', opts };
    const a = await this.send(call);
    if (a.status !== 200) throw this.errorOf(call, a);
    return a.text;
  }

  /** FLUSHDB on every node (admin token). Resolves with `failed` for nodes that could not flush. */
  async flush(opts?: CallOptions): Promise<FlushResult> {
    const r = await this.json<FlushResult>({ method: 'DELETE', path: '/api/v1/cache/', opts });
    return { flushed_nodes: r.flushed_nodes, failed: r.failed ?? {} };
  }

  // --- ring ----------------------------------------------------------------------------------

  /** The ring: version, checksum, hash, nodes with health and share, peers. */
  async ring(opts?: CallOptions): Promise<RingView> {
    return this.json<RingView>({ method: 'GET', path: '/api/v1/ring', opts });
  }

  /** Which node serves `key`. */
  async owner(key: string, opts?: CallOptions): Promise<OwnerInfo> {
    checkKey(key);
    return this.json<OwnerInfo>({
      method: 'GET',
      path: `/api/v1/ring/owner/${encodeURIComponent(key)}`,
      opts,
    });
  }

  /** Add a node (admin token); resolves with the new ring. `NODE_EXISTS` when present. */
  async addNode(address: string, opts: AddNodeOptions = {}): Promise<RingView> {
    const body = {
      address,
      ...(opts.weight === undefined ? {} : { weight: opts.weight }),
      ...(opts.id === undefined ? {} : { id: opts.id }),
    };
    return this.json<RingView>({ method: 'POST', path: '/api/v1/ring/nodes', body, opts });
  }

  /** Remove a node (admin token); resolves with the new ring. `NODE_NOT_FOUND` when unknown. */
  async removeNode(id: string, opts?: CallOptions): Promise<RingView> {
    return this.json<RingView>({ method: 'DELETE', path: nodePath(id), opts });
  }

  /** Change a node's weight and/or admin state (admin token); resolves with the new ring. */
  async updateNode(id: string, change: UpdateNodeChange, opts?: CallOptions): Promise<RingView> {
    return this.json<RingView>({ method: 'PATCH', path: nodePath(id), body: change, opts });
  }

  /** Take a node out of the ring but keep it as a fallback for reads (`state: draining`). */
  async drainNode(id: string, opts?: CallOptions): Promise<RingView> {
    return this.updateNode(id, { state: 'draining' }, opts);
  }

  // --- plumbing ------------------------------------------------------------------------------

  private async json<T>(call: Call): Promise<T> {
    const a = await this.send(call);
    if (a.status >= 300) throw this.errorOf(call, a);
    return this.parse<T>(call, a);
  }

  /** Batch calls: 200, 207 and 503 `ALL_FAILED` (with its `failed` map) all resolve. */
  private async batchCall<T extends { failed: FailedMap }>(call: Call): Promise<T> {
    const a = await this.send(call);
    if (a.status === 200 || a.status === 207) {
      const r = this.parse<T>(call, a);
      return { ...r, failed: r.failed ?? {} };
    }
    const err = this.errorOf(call, a);
    if (err.code === 'ALL_FAILED' && err.failed) return { failed: err.failed } as T;
    throw err;
  }

  /** Run `fn` over chunks with bounded concurrency; the first error wins. */
  private async chunked<X>(
    list: readonly X[],
    opts: BatchOptions,
    fn: (chunk: X[]) => Promise<void>,
  ): Promise<void> {
    if (list.length === 0) return;
    const size = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(size) || size < 1)
      throw new TypeError(`invalid chunkSize ${size}: expected an integer ≥ 1`);
    const chunks: X[][] = [];
    for (let i = 0; i < list.length; i += size) chunks.push(list.slice(i, i + size));
    let next = 0;
    let stop = false;
    const worker = async () => {
      while (!stop && next < chunks.length) {
        try {
          await fn(chunks[next++] as X[]);
        } catch (e) {
          stop = true;
          throw e;
        }
      }
    };
    const n = Math.max(1, Math.min(opts.concurrency ?? 4, chunks.length));
    await Promise.all(Array.from({ length: n }, worker));
  }

  private describe(call: Pick<Call, 'method' | 'path'>): string {
    return `${call.method} ${this.url}${call.path}`;
  }

  private parse<T>(call: Call, a: RawAnswer): T {
    try {
      return JSON.parse(a.text) as T;
    } catch {
      throw new DcacheNetworkError(
        'BAD_RESPONSE',
        this.describe(call),
        `${this.describe(call)}: the answer (HTTP ${a.status}) is not JSON: ${snippet(a.text)}`,
      );
    }
  }

  private errorOf(call: Pick<Call, 'method' | 'path'>, a: RawAnswer): DcacheClientError {
    let code: ErrorCode = `HTTP_${a.status}`;
    let message = a.text ? snippet(a.text) : `HTTP ${a.status} from ${this.describe(call)}`;
    let failed: FailedMap | undefined;
    if (a.text) {
      try {
        const body = JSON.parse(a.text) as {
          error?: { code?: unknown; message?: unknown };
          failed?: unknown;
        };
        if (typeof body.error?.code === 'string') {
          code = body.error.code;
          message = typeof body.error.message === 'string' ? body.error.message : code;
        }
        if (body.failed && typeof body.failed === 'object') failed = body.failed as FailedMap;
      } catch {
        // not a dcache error body (a load balancer's HTML page): keep HTTP_<status>
      }
    } else if (a.status === 404 && call.method === 'HEAD') {
      code = 'KEY_NOT_FOUND';
      message = 'the key does not exist';
    }
    return new DcacheClientError(code, a.status, message, {
      ...(failed ? { failed } : {}),
      ...(a.requestId ? { requestId: a.requestId } : {}),
    });
  }

  /** One HTTP exchange under the call's timeout and signal; transport errors are classified. */
  private async send(call: Call): Promise<RawAnswer> {
    const what = this.describe(call);
    const user = call.opts?.signal;
    if (user?.aborted) throw new DcacheAbortError(what, user.reason);
    const timeout = call.opts?.timeout ?? this.timeout;
    const ac = new AbortController();
    let timedOut = false;
    const timer =
      timeout > 0
        ? setTimeout(() => {
            timedOut = true;
            ac.abort();
          }, timeout)
        : undefined;
    const onAbort = () => ac.abort();
    user?.addEventListener('abort', onAbort, { once: true });
    let path = this.prefix + call.path;
    if (call.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(call.query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) path += `?${s}`;
    }
    const headers: Record<string, string> = { ...this.headers };
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await this.pool.request({
        method: call.method,
        path,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: ac.signal,
      });
      const text = await res.body.text();
      const rid = res.headers['x-request-id'];
      return {
        status: res.statusCode,
        text,
        requestId: typeof rid === 'string' ? rid : undefined,
      };
    } catch (e) {
      if (timedOut) throw new DcacheTimeoutError(what, timeout);
      if (user?.aborted) throw new DcacheAbortError(what, user.reason);
      throw networkError(what, e);
    } finally {
      clearTimeout(timer);
      user?.removeEventListener('abort', onAbort);
    }
  }
}

function errnoOf(e: unknown): string | undefined {
  const x = e as { code?: unknown; errors?: unknown[]; cause?: unknown } | null;
  if (!x || typeof x !== 'object') return undefined;
  if (typeof x.code === 'string' && x.code !== 'UND_ERR_SOCKET') return x.code;
  // Happy-eyeballs connects fail with an AggregateError; undici wraps socket errors.
  if (Array.isArray(x.errors) && x.errors.length > 0) return errnoOf(x.errors[0]);
  if (x.cause) return errnoOf(x.cause) ?? (typeof x.code === 'string' ? x.code : undefined);
  return typeof x.code === 'string' ? x.code : undefined;
}

function networkError(what: string, e: unknown): DcacheNetworkError {
  const errno = errnoOf(e);
  const detail = (e as Error)?.message || errno || String(e);
  if (errno && CONNECT_CODES.has(errno)) {
    return new DcacheNetworkError('UNREACHABLE', what, `cannot connect: ${what} (${errno})`, e);
  }
  return new DcacheNetworkError(
    'CONNECTION_LOST',
    what,
    `connection lost: ${what} (${errno && !detail.includes(errno) ? `${errno}: ` : ''}${detail})`,
    e,
  );
}

function snippet(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}…` : one;
}

function checkKey(key: string): void {
  // An empty key would address `/api/v1/cache/` — whose DELETE flushes every node.
  if (typeof key !== 'string' || key.length === 0)
    throw new TypeError('key must be a non-empty string');
}

function keyPath(key: string): string {
  checkKey(key);
  return `/api/v1/cache/${encodeURIComponent(key)}`;
}

function nodePath(id: string): string {
  if (typeof id !== 'string' || id.length === 0)
    throw new TypeError('node id must be a non-empty string');
  return `/api/v1/ring/nodes/${encodeURIComponent(id)}`;
}
