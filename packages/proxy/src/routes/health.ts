import { routingState } from '@dcache/ring';
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';

/** Summary of node health: ok (all serving), degraded (some), down (none). */
export function healthSummary(rt: Runtime) {
  const snap = rt.holder.current;
  const nodes = [...snap.members.values()].map((m) => {
    const h = rt.health.info(m.id);
    return {
      id: m.id,
      address: m.address,
      membership: m.state,
      routing: routingState(snap.doc, m.id),
      state: h.state,
      healthy: h.healthy,
      connected: rt.pool.get(m.id)?.connected ?? false,
      since: new Date(h.since).toISOString(),
      ...(h.lastError && !h.healthy ? { last_error: h.lastError } : {}),
    };
  });
  // Serving = routed to cluster-wide (`up`) and reachable from this proxy.
  const serving = nodes.filter(
    (n) => n.healthy && n.membership === 'active' && n.routing === 'up',
  ).length;
  const active = nodes.filter((n) => n.membership === 'active').length;
  const status = serving === 0 ? 'down' : serving < active ? 'degraded' : 'ok';
  return {
    status,
    nodes,
    ring: {
      version: snap.version,
      epoch: snap.version,
      checksum: snap.checksum,
      fenced: rt.router.fenceReason() ?? null,
      nodes: snap.ring.size,
      serving,
      replication_factor: rt.router.replicas,
    },
  } as const;
}

/** /health (ok | degraded | down), /health/live and /health/ready. */
export function healthRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get(
    '/health',
    { schema: { summary: 'Overall and per-node health' } },
    async (_req, reply) => {
      const s = healthSummary(rt);
      return reply.code(s.status === 'down' ? 503 : 200).send(s);
    },
  );
  app.get(
    '/health/live',
    { schema: { summary: 'Liveness: the process serves HTTP' } },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/health/ready',
    {
      schema: {
        summary: 'Readiness: some node serves, the view of the cluster is fresh, no shutdown',
      },
    },
    async (_req, reply) => {
      const s = healthSummary(rt);
      // Not ready while this proxy's view of the cluster may be stale (just started, or paused):
      // it answers 503 for every key then, and a load balancer should send traffic elsewhere.
      const syncing = rt.router.fenceReason() === 'lease';
      const ready = !rt.state.shuttingDown && s.status !== 'down' && !syncing;
      const status = ready
        ? 'ready'
        : rt.state.shuttingDown
          ? 'shutting_down'
          : s.status === 'down'
            ? 'down'
            : 'syncing';
      return reply.code(ready ? 200 : 503).send({ status });
    },
  );
}
