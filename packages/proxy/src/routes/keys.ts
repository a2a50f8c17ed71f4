import type { FastifyInstance } from 'fastify';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { scanKeys } from '../scan.js';

/** GET /api/v1/cache/keys?pattern=*&limit=1000&cursor=C — SCAN across nodes, one opaque cursor. */
export function keysRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get<{ Querystring: { pattern?: string; limit?: string; cursor?: string } }>(
    '/api/v1/cache/keys',
    {
      schema: {
        summary: 'List keys across every node (SCAN, never KEYS)',
        querystring: {
          type: 'object',
          properties: {
            pattern: { type: 'string', default: '*' },
            limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
            cursor: { type: 'string' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              keys: { type: 'array', items: { type: 'string' } },
              cursor: { type: ['string', 'null'] },
              skipped_nodes: { type: 'array', items: { type: 'string' } },
            },
          },
        },
      },
    },
    async (req) => {
      const q = req.query;
      const pattern = q.pattern ?? '*';
      if (
        typeof pattern !== 'string' ||
        pattern.length === 0 ||
        Buffer.byteLength(pattern) > 1_024
      ) {
        throw new DcacheError('INVALID_QUERY', 'pattern must be 1-1024 bytes');
      }
      const limitRaw = q.limit ?? '1000';
      const limit = Number(limitRaw);
      if (typeof limitRaw !== 'string' || !/^\d+$/.test(limitRaw) || limit < 1 || limit > 10_000) {
        throw new DcacheError('INVALID_QUERY', 'limit must be an integer from 1 to 10000');
      }
      if (q.cursor !== undefined && typeof q.cursor !== 'string')
        throw new DcacheError('INVALID_CURSOR');
      const nodes = [...rt.holder.current.members.keys()];
      const page = await scanKeys(
        rt.exec,
        nodes,
        rt.health.ejected,
        pattern,
        limit,
        q.cursor || undefined,
      );
      return { keys: page.keys, cursor: page.cursor, skipped_nodes: page.skipped };
    },
  );
}
