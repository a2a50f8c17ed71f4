import { routingState } from '@dcache/ring';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type AdminAccess, bearerToken, safeEqual } from '../auth.js';
import type { Runtime } from '../runtime.js';
import { isLocalClient } from '../security/client-address.js';
import { errorClass } from '../upstream/node-client.js';

/**
 * Whoever may make admin calls sees the error detail of nodes: with an admin token, a request
 * that carries it (a wrong or missing one just gets the public view: no 401 here); without one,
 * as protected mode decides admin calls (clients on this host, or everyone when it is off).
 */
export function seesDetail(req: FastifyRequest, admin: AdminAccess): boolean {
  if (admin.token !== '') {
    const got = bearerToken(req);
    return got !== undefined && safeEqual(got, admin.token);
  }
  return !admin.protectedMode || isLocalClient(req.raw);
}

/**
 * Summary of node health: ok (all serving), degraded (some), down (none). Each node that cannot
 * serve says why as a class (`error_class`: refused, timeout, auth, tls, not_allowed, dns,
 * unavailable); the messages themselves (addresses, ports, certificate names, Redis' words: what
 * would make /health a port scanner) only with `detail`.
 */
export function healthSummary(rt: Runtime, opts: { detail?: boolean } = {}) {
  const snap = rt.holder.current;
  const nodes = [...snap.members.values()].map((m) => {
    const h = rt.health.info(m.id);
    const client = rt.pool.get(m.id);
    // The connection's own error says most (a TLS or AUTH failure; commands only see "closed").
    const connError = client && !client.connected ? client.lastError : undefined;
    const lastError = h.lastError && !h.healthy ? h.lastError : undefined;
    const why = connError ?? lastError;
    return {
      id: m.id,
      address: m.address,
      membership: m.state,
      routing: routingState(snap.doc, m.id),
      state: h.state,
      healthy: h.healthy,
      connected: client?.connected ?? false,
      since: new Date(h.since).toISOString(),
      ...(why !== undefined ? { error_class: errorClass(why) } : {}),
      ...(opts.detail && lastError !== undefined ? { last_error: lastError } : {}),
      ...(opts.detail && connError !== undefined ? { connection_error: connError } : {}),
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
  app.get('/health', { schema: { summary: 'Overall and per-node health' } }, async (req, reply) => {
    const s = healthSummary(rt, { detail: seesDetail(req, rt.config.admin) });
    return reply.code(s.status === 'down' ? 503 : 200).send(s);
  });
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
