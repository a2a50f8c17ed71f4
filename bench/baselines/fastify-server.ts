/**
 * The floor of a Fastify REST→Redis path: the minimal server's two routes on a bare Fastify
 * (no logger, no hooks, no plugins) with one auto-pipelined ioredis client. Not a competitor: it
 * shows how much of dcache's cost per request is Fastify itself. GET /ready once Redis is
 * connected. Env: PORT, REDIS_ADDRESS (host:port).
 */
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { Redis } from 'ioredis';

// The very Fastify the proxy runs on (bench does not depend on fastify itself).
const Fastify = createRequire(new URL('../../packages/proxy/package.json', import.meta.url))(
  'fastify',
) as (opts: FastifyServerOptions) => FastifyInstance;

const [host, port] = (process.env.REDIS_ADDRESS ?? '127.0.0.1:6379').split(':');
const redis = new Redis({ host, port: Number(port), enableAutoPipelining: true });
redis.on('error', () => {});
const app = Fastify({ logger: false });
const identity = (x: unknown) => x as string;

app.get('/ready', async (_req, reply) => reply.code(redis.status === 'ready' ? 200 : 503).send({}));
app.get<{ Params: { key: string } }>('/api/v1/cache/:key', async (req, reply) => {
  const raw = await redis.get(req.params.key);
  if (raw === null)
    return reply.code(404).send({ error: { code: 'KEY_NOT_FOUND', message: 'not found' } });
  return reply
    .type('application/json')
    .serializer(identity)
    .send(`{"key":${JSON.stringify(req.params.key)},"value":${raw}}`);
});
app.put<{ Params: { key: string }; Body: { value: unknown } }>(
  '/api/v1/cache/:key',
  {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { key: { type: 'string' }, ttl_ms: { type: 'integer' } },
        },
      },
    },
  },
  async (req) => {
    await redis.set(req.params.key, JSON.stringify(req.body.value));
    return { key: req.params.key, ttl_ms: 0 };
  },
);

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 8091) });
const stop = () => {
  void app.close().finally(() => {
    redis.disconnect();
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
