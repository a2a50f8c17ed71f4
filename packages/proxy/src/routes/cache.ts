import type { FastifyInstance } from 'fastify';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { checkKey, checkObject, checkTtl, serializeValue } from '../validate.js';
import { errorSchema, keyParams, ttlSchema } from './schemas.js';

type KeyReq = { Params: { key: string } };

/** Single-key routes: PUT, GET, HEAD, DELETE /api/v1/cache/{key}. */
export function cacheRoutes(app: FastifyInstance, rt: Runtime): void {
  const { cache, config, metrics } = rt;
  const maxKey = config.limits.maxKeyBytes;
  const hitGet = metrics.hits.labels({ op: 'get' });
  const missGet = metrics.misses.labels({ op: 'get' });
  const hitHead = metrics.hits.labels({ op: 'head' });
  const missHead = metrics.misses.labels({ op: 'head' });

  app.put<KeyReq & { Body: unknown }>(
    '/api/v1/cache/:key',
    {
      bodyLimit: config.limits.maxValueBytes + 64 * 1024,
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
    async (req) => {
      const key = checkKey(req.params.key, maxKey);
      if (req.body === undefined || req.body === null)
        throw new DcacheError('MISSING_VALUE', 'the body must be {"value": ..., "ttl"?: ...}');
      const body = checkObject(req.body, 'the body');
      if (!('value' in body)) throw new DcacheError('MISSING_VALUE');
      const ttlMs = checkTtl(body.ttl, config.cache.defaultTtl);
      const text = serializeValue(body.value, config.limits.maxValueBytes);
      await cache.set(key, text, ttlMs);
      return { key, ttl_ms: ttlMs };
    },
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
      const key = checkKey(req.params.key, maxKey);
      const raw = await cache.get(key);
      if (raw === null) {
        missGet.inc();
        throw new DcacheError('KEY_NOT_FOUND');
      }
      hitGet.inc();
      // The stored text is already JSON: splice it in, never parse and re-serialise it.
      return reply
        .type('application/json')
        .serializer(identity)
        .send(`{"key":${JSON.stringify(key)},"value":${raw}}`);
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
      const key = checkKey(req.params.key, maxKey);
      const found = await cache.exists(key);
      (found ? hitHead : missHead).inc();
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
    async (req) => {
      const key = checkKey(req.params.key, maxKey);
      if (!(await cache.del(key))) throw new DcacheError('KEY_NOT_FOUND');
      return { key, deleted: true };
    },
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
