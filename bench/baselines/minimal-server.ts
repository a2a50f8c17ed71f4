/**
 * The practical limit of a Node REST→Redis path as a naive user writes it: node:http + one
 * pipelined Redis client, no framework, no validation beyond what the benchmark needs. Serves the
 * dcache single-key routes so the same load spec drives both: GET /api/v1/cache/:key → 200
 * {"key","value"} (the stored JSON text spliced in, as dcache does) or 404; PUT /api/v1/cache/:key
 * with {"value": V} → SET → 200 {"key","ttl_ms":0}. GET /ready answers once Redis is connected;
 * GET /static answers a constant 130-byte body without Redis (the load generator's ceiling).
 * Env: PORT, REDIS_ADDRESS (host:port), CLIENT: `ioredis` (auto-pipelined; the default and the
 * "minimal server" of the targets), `node-redis` (the `redis` package), or `dcache` (the proxy's
 * own RESP connection) — bench/redis-clients.ts compares the three.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { RedisConnection } from '@dcache/proxy';
import { Redis } from 'ioredis';
import { createClient } from 'redis';

/** The two calls the benchmark makes, whatever the client. */
interface Client {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<unknown>;
  ready(): boolean;
  close(): void;
}

const [host = '127.0.0.1', port = '6379'] = (process.env.REDIS_ADDRESS ?? '127.0.0.1:6379').split(
  ':',
);

function open(kind: string): Client {
  if (kind === 'node-redis') {
    const c = createClient({ socket: { host, port: Number(port) } });
    c.on('error', () => {});
    void c.connect();
    return {
      get: (k) => c.get(k),
      set: (k, v) => c.set(k, v),
      ready: () => c.isReady,
      close: () => void c.destroy(),
    };
  }
  if (kind === 'dcache') {
    const c = new RedisConnection({ host, port: Number(port), connectTimeout: 5_000 });
    c.on('error', () => {});
    return {
      get: (k) => c.get(k),
      set: (k, v) => c.set(k, v),
      ready: () => c.status === 'ready',
      close: () => void c.close(0),
    };
  }
  const c = new Redis({ host, port: Number(port), enableAutoPipelining: true });
  c.on('error', () => {});
  return {
    get: (k) => c.get(k),
    set: (k, v) => c.set(k, v),
    ready: () => c.status === 'ready',
    close: () => c.disconnect(),
  };
}

const PREFIX = '/api/v1/cache/';
const STATIC = `{"key":"bench:000000","value":"${'s'.repeat(98)}"}`;
const redis = open(process.env.CLIENT ?? 'ioredis');

function json(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const fail = (res: ServerResponse) => () =>
  json(res, 503, '{"error":{"code":"NODE_UNAVAILABLE","message":"redis failed"}}');

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  if (url === '/ready') {
    json(res, redis.ready() ? 200 : 503, '{}');
    return;
  }
  if (url === '/static') {
    json(res, 200, STATIC);
    return;
  }
  if (!url.startsWith(PREFIX) || url.length === PREFIX.length) {
    json(res, 404, '{"error":{"code":"NOT_FOUND","message":"no route"}}');
    return;
  }
  const key = decodeURIComponent(url.slice(PREFIX.length));
  if (req.method === 'GET') {
    redis.get(key).then((raw) => {
      if (raw === null) json(res, 404, '{"error":{"code":"KEY_NOT_FOUND","message":"not found"}}');
      else json(res, 200, `{"key":${JSON.stringify(key)},"value":${raw}}`);
    }, fail(res));
    return;
  }
  if (req.method === 'PUT') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let value: unknown;
      try {
        value = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { value: unknown }).value;
      } catch {
        json(res, 400, '{"error":{"code":"INVALID_JSON","message":"bad body"}}');
        return;
      }
      redis
        .set(key, JSON.stringify(value))
        .then(() => json(res, 200, `{"key":${JSON.stringify(key)},"ttl_ms":0}`), fail(res));
    });
    return;
  }
  json(res, 405, '{"error":{"code":"METHOD_NOT_ALLOWED","message":"method"}}');
}

const server = createServer(handle);
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8090), '127.0.0.1');
const stop = () => {
  server.close();
  server.closeAllConnections();
  redis.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
