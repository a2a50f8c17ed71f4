import type { FastifyInstance } from 'fastify';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { checkKey, checkObject, checkTtl, serializeValue } from '../validate.js';
import { errorSchema, keyParams, ttlSchema } from './schemas.js';

type KeyReq = { Params: { key: string } };

/** The single-key operations behind both the Fastify routes and the node:http fast path. */
export interface SingleKeyOps {
  /** The 200 body of a GET (`{"key","value"}` with the stored JSON text spliced in). */
  get(key: string): Promise<string>;
  /** True when the key exists (HEAD). */
  head(key: string): Promise<boolean>;
  /** Store a PUT body; resolves with the 200 answer. */
  put(key: string, body: unknown): Promise<{ key: string; ttl_ms: number }>;
  /** Delete; resolves with the 200 answer, throws KEY_NOT_FOUND. */
  del(key: string): Promise<{ key: string; deleted: true }>;
}

/** Validation, metrics and cache calls of the single-key API, over a runtime. */
export function singleKeyOps(rt: Runtime): SingleKeyOps {
  const { cache, config, metrics } = rt;
  const maxKey = config.limits.maxKeyBytes;
  const maxValue = config.limits.maxValueBytes;
  const defaultTtl = config.cache.defaultTtl;
  const hitGet = metrics.localCounter(metrics.hits, { op: 'get' });
  const missGet = metrics.localCounter(metrics.misses, { op: 'get' });
  const hitHead = metrics.localCounter(metrics.hits, { op: 'head' });
  const missHead = metrics.localCounter(metrics.misses, { op: 'head' });
  return {
    get(k) {
      let key: string;
      try {
        key = checkKey(k, maxKey);
      } catch (e) {
        return Promise.reject(e);
      }
      return cache.get(key).then((raw) => {
        if (raw === null) {
          missGet.inc();
          throw new DcacheError('KEY_NOT_FOUND');
        }
        hitGet.inc();
        // The stored text is already JSON: splice it in, never parse and re-serialise it.
        return `{"key":${JSON.stringify(key)},"value":${raw}}`;
      });
    },
    async head(k) {
      const key = checkKey(k, maxKey);
      const found = await cache.exists(key);
      (found ? hitHead : missHead).inc();
      return found;
    },
    put(k, b) {
      let key: string;
      let text: string;
      let ttlMs: number;
      try {
        key = checkKey(k, maxKey);
        if (b === undefined || b === null)
          throw new DcacheError('MISSING_VALUE', 'the body must be {"value": ..., "ttl"?: ...}');
        const body = checkObject(b, 'the body');
        if (!('value' in body)) throw new DcacheError('MISSING_VALUE');
        ttlMs = checkTtl(body.ttl, defaultTtl);
        text = serializeValue(body.value, maxValue, config.limits.maxValueDepth);
      } catch (e) {
        return Promise.reject(e);
      }
      return cache.set(key, text, ttlMs).then(() => ({ key, ttl_ms: ttlMs }));
    },
    async del(k) {
      const key = checkKey(k, maxKey);
      if (!(await cache.del(key))) throw new DcacheError('KEY_NOT_FOUND');
      return { key, deleted: true };
    },
  };
}

/** Body limit of `PUT /api/v1/cache/{key}`: the value limit plus room for the envelope. */
export const putBodyLimit = (rt: Runtime): number => rt.config.limits.maxValueBytes + 64 * 1024;

/** Single-key routes: PUT, GET, HEAD, DELETE /api/v1/cache/{key}. */
export function cacheRoutes(app: FastifyInstance, rt: Runtime, ops = singleKeyOps(rt)): void {
  app.put<KeyReq & { Body: unknown }>(
    '/api/v1/cache/:key',
    {
      bodyLimit: putBodyLimit(rt),
      schema: {
        summary: 'Store a value',
        params: keyParams,
        body: {
          type: 'object',
          properties: { value: { description: 'any JSON value' }, ttl: ttlSchema },
          required: ['value'],
        },
        response: {
          200: {
            type: 'object',
            properties: { key: { type: 'string' }, ttl_ms: { type: 'integer' } },
          },
          '4xx': errorSchema,
        },
      },
    },
    (req) => ops.put(req.params.key, req.body),
  );

  app.get<KeyReq>(
    '/api/v1/cache/:key',
    {
      schema: {
        summary: 'Read a value',
        params: keyParams,
        response: {
          200: { type: 'object', properties: { key: { type: 'string' }, value: {} } },
          404: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const text = await ops.get(req.params.key);
      return reply.type('application/json; charset=utf-8').serializer(identity).send(text);
    },
  );

  app.head<KeyReq>(
    '/api/v1/cache/:key',
    {
      // @fastify/swagger leaves HEAD routes out unless asked; this one is part of the API.
      config: { swagger: { exposeHeadRoute: true } },
      schema: {
        summary: 'Does the key exist (no body)',
        params: keyParams,
        response: {
          200: { description: 'the key exists', type: 'null' },
          404: { description: 'the key does not exist', type: 'null' },
        },
      },
    },
    async (req, reply) => {
      const found = await ops.head(req.params.key);
      return reply.code(found ? 200 : 404).send();
    },
  );

  app.delete<KeyReq>(
    '/api/v1/cache/:key',
    {
      schema: {
        summary: 'Delete a key',
        params: keyParams,
        response: {
          200: {
            type: 'object',
            properties: { key: { type: 'string' }, deleted: { type: 'boolean' } },
          },
          404: errorSchema,
        },
      },
    },
    (req) => ops.del(req.params.key),
  );

  // An empty key: `PUT|GET|HEAD /api/v1/cache/` (DELETE there is the flush).
  const emptyKey = async () => {
    throw new DcacheError('INVALID_KEY', 'the key is empty');
  };
  app.put('/api/v1/cache/', { schema: { hide: true } }, emptyKey);
  app.get('/api/v1/cache/', { schema: { hide: true } }, emptyKey);
  app.head('/api/v1/cache/', { schema: { hide: true } }, emptyKey);
}

const identity = (x: unknown) => x as string;
