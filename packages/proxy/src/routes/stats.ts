import type { FastifyInstance } from 'fastify';
import { requireAdmin } from '../auth.js';
import { DcacheError, type ErrorCode } from '../errors.js';
import { type NodeFigures, nodeFigures } from '../node-info.js';
import type { Runtime } from '../runtime.js';
import { adminSecurity } from './schemas.js';

const FIGURES = [
  'keys',
  'expires',
  'used_memory',
  'hits',
  'misses',
  'ops',
  'ops_per_sec',
  'connected_clients',
] as const;

/** GET /api/v1/cache/stats and DELETE /api/v1/cache/ (flush, admin). */
export function statsRoutes(app: FastifyInstance, rt: Runtime): void {
  const { exec, health, holder, config, metrics } = rt;

  app.get(
    '/api/v1/cache/stats',
    { schema: { summary: 'Per-node and total figures' } },
    async () => {
      const members = [...holder.current.members.values()];
      const nodes = await Promise.all(
        members.map(async (m) => {
          const h = health.info(m.id);
          const base = {
            id: m.id,
            address: m.address,
            weight: m.weight,
            membership: m.state,
            state: h.state,
            healthy: h.healthy,
          };
          try {
            return { ...base, ...(await nodeFigures(exec, m.id, config.cache.database)) };
          } catch (e) {
            return {
              ...base,
              error: {
                code: (e as DcacheError).code ?? 'NODE_ERROR',
                message: (e as Error).message,
              },
            };
          }
        }),
      );
      const total = Object.fromEntries(FIGURES.map((f) => [f, 0])) as Record<
        (typeof FIGURES)[number],
        number
      >;
      for (const n of nodes)
        for (const f of FIGURES) total[f] += (n as Partial<NodeFigures>)[f] ?? 0;
      const sum = async (name: string) => {
        const m = await metrics.register.getSingleMetric(name)?.get();
        return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
      };
      const [hits, misses, requests] = await Promise.all([
        sum('dcache_cache_hits_total'),
        sum('dcache_cache_misses_total'),
        sum('dcache_http_requests_total'),
      ]);
      return {
        nodes,
        total: {
          ...total,
          nodes: nodes.length,
          healthy_nodes: nodes.filter((n) => n.healthy).length,
        },
        proxy: {
          requests,
          hits,
          misses,
          hit_ratio: hits + misses > 0 ? hits / (hits + misses) : null,
          uptime_seconds: Math.round((Date.now() - rt.state.startedAt) / 1_000),
          ring_version: holder.current.version,
          ring_checksum: holder.current.checksum,
          replication_factor: config.replication.factor,
        },
      };
    },
  );

  app.delete(
    '/api/v1/cache/',
    {
      // The token is checked before a body (if any) is read.
      onRequest: async (req) => requireAdmin(req, config.admin),
      schema: { summary: 'Flush every node (FLUSHDB)', security: adminSecurity },
    },
    async (req, reply) => {
      const ids = [...holder.current.members.keys()];
      if (ids.length === 0) throw new DcacheError('NO_NODES');
      const failed: Record<string, ErrorCode> = {};
      let flushed = 0;
      await Promise.all(
        ids.map(async (id) => {
          try {
            await exec.run(id, 'flushdb', (c) => c.flushdb('ASYNC'));
            flushed++;
          } catch (e) {
            failed[id] = (e as DcacheError).code ?? 'NODE_ERROR';
          }
        }),
      );
      req.log.warn({ flushed, failed: Object.keys(failed).length }, 'cache flushed');
      if (flushed === 0)
        throw new DcacheError('ALL_FAILED', 'no node could be flushed', { failed });
      return reply
        .code(Object.keys(failed).length ? 207 : 200)
        .send({ flushed_nodes: flushed, failed });
    },
  );
}
