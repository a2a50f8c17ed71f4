import type { FastifyInstance } from 'fastify';
import { DcacheError } from '../errors.js';
import { JSON_TYPE } from '../http/response-head.js';
import { putBodyLimit, singleKeyOps } from '../http/single-key-core.js';
import type { Runtime } from '../runtime.js';
import { errorSchema, keyParams, ttlSchema } from './schemas.js';

type KeyReq = { Params: { key: string } };

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
      return reply.type(JSON_TYPE).serializer(identity).send(text);
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
