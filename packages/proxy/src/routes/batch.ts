import type { FastifyInstance, FastifyReply } from 'fastify';
import type { FailedMap } from '../cache-service.js';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { checkKey, checkKeyList, checkObject, checkTtl, serializeValue } from '../validate.js';
import { errorSchema, failedSchema, ttlSchema } from './schemas.js';

/** Body of a batch GET (documentation only: the route splices stored JSON text itself). */
const batchGetSchema = {
  type: 'object',
  properties: {
    items: { type: 'object', additionalProperties: {} },
    missing: { type: 'array', items: { type: 'string' } },
    failed: failedSchema,
  },
} as const;

/** 200 when nothing failed, 207 when some keys failed, 503 ALL_FAILED when every key did. */
function batchStatus(total: number, failed: FailedMap): number {
  const n = Object.keys(failed).length;
  if (n === 0) return 200;
  return n >= total ? 503 : 207;
}

function allFailed(reply: FastifyReply, failed: FailedMap): FastifyReply {
  return reply.code(503).send({
    error: { code: 'ALL_FAILED', message: 'every node involved in the batch failed' },
    failed,
  });
}

/** Batch routes: POST /api/v1/cache/batch, POST /api/v1/cache/batch/get, DELETE /api/v1/cache/batch. */
export function batchRoutes(app: FastifyInstance, rt: Runtime): void {
  const { cache, config, metrics } = rt;
  const { maxBatchKeys, maxKeyBytes, maxValueBytes, maxValueDepth } = config.limits;
  // An MGET carries at most about one answer's worth of the largest values (16..256 keys).
  const getLimits = {
    maxBytes: config.limits.maxBatchResponseBytes,
    chunkKeys: Math.min(
      256,
      Math.max(16, Math.floor(config.limits.maxBatchResponseBytes / maxValueBytes)),
    ),
  };

  app.post<{ Body: unknown }>(
    '/api/v1/cache/batch',
    {
      schema: {
        summary: 'Store many values (one round trip per node)',
        body: {
          type: 'object',
          properties: {
            items: {
              type: 'object',
              additionalProperties: {
                type: 'object',
                properties: { value: {}, ttl: ttlSchema },
                required: ['value'],
              },
            },
          },
          required: ['items'],
        },
        response: {
          200: {
            type: 'object',
            properties: { stored: { type: 'integer' }, failed: failedSchema },
          },
          207: {
            type: 'object',
            properties: { stored: { type: 'integer' }, failed: failedSchema },
          },
          '4xx': errorSchema,
        },
      },
    },
    async (req, reply) => {
      const body = checkObject(req.body, 'the body');
      const items = body.items;
      if (typeof items !== 'object' || items === null || Array.isArray(items)) {
        throw new DcacheError(
          'INVALID_BODY',
          'the body must be {"items": {"key": {"value": ..., "ttl"?: ...}}}',
        );
      }
      const entries = Object.entries(items);
      if (entries.length > maxBatchKeys)
        throw new DcacheError(
          'BATCH_TOO_LARGE',
          `${entries.length} items; at most ${maxBatchKeys} per batch`,
        );
      const list = entries.map(([key, item]) => {
        checkKey(key, maxKeyBytes);
        if (
          typeof item !== 'object' ||
          item === null ||
          Array.isArray(item) ||
          !('value' in item)
        ) {
          throw new DcacheError('MISSING_VALUE', `item ${JSON.stringify(key)} has no "value"`);
        }
        const it = item as { value: unknown; ttl?: unknown };
        return {
          key,
          value: serializeValue(it.value, maxValueBytes, maxValueDepth),
          ttlMs: checkTtl(it.ttl, config.cache.defaultTtl),
        };
      });
      metrics.batchKeys.observe({ op: 'batch_set' }, list.length);
      const res = await cache.batchSet(list);
      const status = batchStatus(list.length, res.failed);
      if (status === 503) return allFailed(reply, res.failed);
      return reply.code(status).send({ stored: res.count, failed: res.failed });
    },
  );

  app.post<{ Body: unknown }>(
    '/api/v1/cache/batch/get',
    {
      schema: {
        summary: 'Read many values (MGET per node, all nodes in parallel)',
        body: {
          type: 'object',
          properties: { keys: { type: 'array', items: { type: 'string' } } },
          required: ['keys'],
        },
        response: {
          200: batchGetSchema,
          207: batchGetSchema,
          '4xx': errorSchema,
        },
      },
    },
    async (req, reply) => {
      const keys = checkKeyList(req.body, maxBatchKeys, maxKeyBytes);
      metrics.batchKeys.observe({ op: 'batch_get' }, keys.length);
      const res = await cache.batchGet(keys, getLimits);
      const unique = res.found.size + res.missing.length + Object.keys(res.failed).length;
      const status = batchStatus(unique, res.failed);
      if (status === 503 && Object.values(res.failed).every((c) => c === 'RESPONSE_TOO_LARGE'))
        // As text: the 4xx schema of the route knows no `failed`, and would drop it.
        return reply
          .code(413)
          .type('application/json')
          .serializer((x) => x as string)
          .send(
            JSON.stringify({
              error: {
                code: 'RESPONSE_TOO_LARGE',
                message: `no value fits in the ${getLimits.maxBytes}-byte answer limit (DC_LIMITS_MAX_BATCH_RESPONSE_BYTES)`,
              },
              failed: res.failed,
            }),
          );
      if (status === 503) return allFailed(reply, res.failed);
      // Values are stored JSON text: splice them in without parsing.
      let items = '';
      for (const [k, v] of res.found) items += `${items ? ',' : ''}${JSON.stringify(k)}:${v}`;
      const text = `{"items":{${items}},"missing":${JSON.stringify(res.missing)},"failed":${JSON.stringify(res.failed)}}`;
      return reply
        .code(status)
        .type('application/json')
        .serializer((x) => x as string)
        .send(text);
    },
  );

  app.delete<{ Body: unknown }>(
    '/api/v1/cache/batch',
    {
      schema: {
        summary: 'Delete many keys (one round trip per node)',
        body: {
          type: 'object',
          properties: { keys: { type: 'array', items: { type: 'string' } } },
          required: ['keys'],
        },
        response: {
          200: {
            type: 'object',
            properties: { deleted: { type: 'integer' }, failed: failedSchema },
          },
          207: {
            type: 'object',
            properties: { deleted: { type: 'integer' }, failed: failedSchema },
          },
          '4xx': errorSchema,
        },
      },
    },
    async (req, reply) => {
      const keys = checkKeyList(req.body, maxBatchKeys, maxKeyBytes);
      metrics.batchKeys.observe({ op: 'batch_del' }, keys.length);
      const res = await cache.batchDel(keys);
      const status = batchStatus(new Set(keys).size, res.failed);
      if (status === 503) return allFailed(reply, res.failed);
      return reply.code(status).send({ deleted: res.count, failed: res.failed });
    },
  );
}
