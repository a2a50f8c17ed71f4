import type { FastifyInstance } from 'fastify';
import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { checkKey } from '../validate.js';
import { keyParams } from './schemas.js';

/** The ring as the API shows it: version, checksum, nodes with health and key share. */
export function ringView(rt: Runtime) {
  const snap = rt.holder.current;
  const share = snap.ring.share();
  return {
    version: snap.version,
    checksum: snap.checksum,
    hash: rt.config.cache.hash,
    replication_factor: rt.router.replicas,
    nodes: Object.values(snap.doc.entries)
      .filter((e) => e.state !== 'removed')
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((e) => {
        const h = rt.health.info(e.id);
        return {
          id: e.id,
          address: e.address,
          weight: e.weight,
          state: e.state,
          healthy: h.healthy,
          breaker: h.state,
          share: share.get(e.id) ?? 0,
          version: e.version,
        };
      }),
  };
}

/** GET /api/v1/ring and GET /api/v1/ring/owner/{key}. */
export function ringRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get('/api/v1/ring', { schema: { summary: 'The ring: version, nodes, peers' } }, async () => ({
    ...ringView(rt),
    peers: [] as unknown[],
  }));
  app.get<{ Params: { key: string } }>(
    '/api/v1/ring/owner/:key',
    { schema: { summary: 'Which node serves a key', params: keyParams } },
    async (req) => {
      const key = checkKey(req.params.key, rt.config.limits.maxKeyBytes);
      const ring = rt.holder.current.ring;
      if (ring.size === 0) throw new DcacheError('NO_NODES');
      const owners = rt.router.owners(key);
      return {
        key,
        node: owners[0] ?? null,
        home: ring.owner(key),
        replicas: owners.slice(1),
        hash: ring.hashKey(key),
        ring_version: rt.holder.current.version,
      };
    },
  );
}
