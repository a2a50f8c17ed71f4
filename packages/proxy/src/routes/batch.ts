import type { FastifyInstance } from 'fastify';
import type { BatchOutcome } from '../cache-service.js';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import {
  asJsonText,
  checkKey,
  checkKeyList,
  checkObject,
  checkTtl,
  serializeValue,
} from '../validate.js';
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

/**
 * A batch that failed for every key, as the catalogue's error with the per-key codes: 413
 * RESPONSE_TOO_LARGE when no value fitted the answer, 503 ALL_FAILED otherwise.
 */
function refused(res: BatchOutcome, maxBytes: number): DcacheError {
  if (res.status === 413)
    return new DcacheError(
      'RESPONSE_TOO_LARGE',
      `no value fits in the ${maxBytes}-byte answer limit (DC_LIMITS_MAX_BATCH_RESPONSE_BYTES)`,
      { failed: res.failed },
    );
  return new DcacheError('ALL_FAILED', undefined, { failed: res.failed });
}

/** An error body with the per-key codes (the batch get's 413). */
const failedErrorSchema = {
  type: 'object',
  properties: { ...errorSchema.properties, failed: failedSchema },
} as const;

/** Batch routes: POST /api/v1/cache/batch, POST /api/v1/cache/batch/get, DELETE /api/v1/cache/batch. */
export function batchRoutes(app: FastifyInstance, rt: Runtime): void {
  const { cache, config, metrics } = rt;
  const { maxBatchKeys, maxKeyBytes, maxValueBytes, maxValueDepth } = config.limits;
  const strictJson = config.resp.port !== 0;
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
      if (res.status >= 400) throw refused(res, getLimits.maxBytes);
      return reply.code(res.status).send({ stored: res.count, failed: res.failed });
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
          413: failedErrorSchema,
          '4xx': errorSchema,
        },
      },
    },
    async (req, reply) => {
      const keys = checkKeyList(req.body, maxBatchKeys, maxKeyBytes);
      metrics.batchKeys.observe({ op: 'batch_get' }, keys.length);
      const res = await cache.batchGet(keys, getLimits);
      if (res.status >= 400) throw refused(res, getLimits.maxBytes);
      // Values are stored JSON text: splice them in without parsing.
      const { keys: ks, values } = res;
      let items = '';
      for (let i = 0; i < ks.length; i++) {
        const v = values[i];
        if (v === null || v === undefined) continue;
        items += `${items === '' ? '' : ','}${JSON.stringify(ks[i])}:${asJsonText(v, strictJson)}`;
      }
      const text = `{"items":{${items}},"missing":${JSON.stringify(res.missing)},"failed":${JSON.stringify(res.failed)}}`;
      return reply
        .code(res.status)
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
      if (res.status >= 400) throw refused(res, getLimits.maxBytes);
      return reply.code(res.status).send({ deleted: res.count, failed: res.failed });
    },
  );
}
