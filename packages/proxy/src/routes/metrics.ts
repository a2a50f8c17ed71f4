import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';

/** GET /metrics in the Prometheus text format. */
export function metricsRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics', hide: true } },
    async (_req, reply) => {
      const text = await rt.metrics.register.metrics();
      return reply.type(rt.metrics.register.contentType).send(text);
    },
  );
}
