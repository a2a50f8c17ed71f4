import { parseAddress, routingState } from '@dcache/ring';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requireAdmin } from '../auth.js';
import { DcacheError } from '../errors.js';
import type { AddNodeInput, UpdateNodeInput } from '../membership/membership-manager.js';
import type { Runtime } from '../runtime.js';
import { checkKey, checkObject } from '../validate.js';
import { adminSecurity, errorSchema, keyParams } from './schemas.js';

/** The ring as the API shows it: version, checksum, nodes with health and key share. */
export function ringView(rt: Runtime) {
  const snap = rt.holder.current;
  const share = snap.ring.share();
  return {
    version: snap.version,
    epoch: snap.version,
    checksum: snap.checksum,
    hash: rt.config.cache.hash,
    hash_tag: rt.config.cache.hashTag,
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
          routing: routingState(snap.doc, e.id),
          healthy: h.healthy,
          breaker: h.state,
          share: share.get(e.id) ?? 0,
          version: e.version,
        };
      }),
  };
}

/** GET /api/v1/ring: the ring, this proxy's identity and its peers with their last exchange. */
export function fullRingView(rt: Runtime) {
  const sync = rt.peers;
  return {
    ...ringView(rt),
    node_id: rt.config.cluster.nodeId,
    seeded: rt.membership.seeded,
    fenced: rt.router.fenceReason() ?? null,
    unconfirmed_changes: rt.router.unconfirmed,
    peer_sync: sync ? 'on' : 'off',
    peers: sync?.list() ?? [],
  };
}

const nodeIdParams = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'node id (host:port or a name), percent-encoded' },
  },
  required: ['id'],
} as const;

const ADD_FIELDS = new Set(['address', 'weight', 'id']);
const PATCH_FIELDS = new Set(['weight', 'state']);

function checkFields(body: Record<string, unknown>, allowed: Set<string>): void {
  for (const k of Object.keys(body)) {
    if (!allowed.has(k)) {
      throw new DcacheError(
        'INVALID_BODY',
        `unknown field ${JSON.stringify(k)}; expected ${[...allowed].join(', ')}`,
      );
    }
  }
}

/**
 * Refuse (400 NODE_NOT_ALLOWED) an address outside `cache.allowed_addresses` before anything
 * changes: the cluster would connect to it and send it the Redis password. A malformed address
 * is left to `addNode`, which answers INVALID_ADDRESS.
 */
async function checkAllowed(rt: Runtime, address: string): Promise<void> {
  try {
    parseAddress(address);
  } catch {
    return;
  }
  const d = await rt.pool.allow.decide(address);
  if (!d.allowed)
    throw new DcacheError(
      'NODE_NOT_ALLOWED',
      `${address} is not an allowed node address: ${d.reason}`,
      { address },
    );
}

/** Ring routes: GET ring and owner; admin POST/DELETE/PATCH of nodes. */
export function ringRoutes(app: FastifyInstance, rt: Runtime): void {
  // An onRequest hook: the token is checked before the body is read or parsed.
  const admin = async (req: FastifyRequest) => requireAdmin(req, rt.config.admin);
  // The change is live when these answer; they also wait (bounded) for the state file.
  const saved = async () => {
    await rt.persister?.flushed();
    return fullRingView(rt);
  };

  app.get('/api/v1/ring', { schema: { summary: 'The ring: version, nodes, peers' } }, async () =>
    fullRingView(rt),
  );

  app.post<{ Body: unknown }>(
    '/api/v1/ring/nodes',
    {
      onRequest: admin,
      schema: {
        summary: 'Add a Redis node to the ring',
        security: adminSecurity,
        body: {
          type: 'object',
          properties: {
            address: { type: 'string', description: 'host:port' },
            weight: { type: 'integer', minimum: 1, maximum: 1000 },
            id: { type: 'string', description: 'a name instead of host:port' },
          },
          required: ['address'],
        },
        response: { '4xx': errorSchema },
      },
    },
    async (req, reply) => {
      const body = checkObject(req.body, 'the body');
      checkFields(body, ADD_FIELDS);
      if (typeof body.address !== 'string') {
        throw new DcacheError('INVALID_ADDRESS', 'the body must be {"address": "host:port"}');
      }
      if (body.id !== undefined && (typeof body.id !== 'string' || body.id === '')) {
        throw new DcacheError('INVALID_BODY', '"id" must be a non-empty string');
      }
      const input: AddNodeInput = { address: body.address };
      if (body.weight !== undefined) input.weight = body.weight as number;
      if (body.id !== undefined) input.id = body.id as string;
      await checkAllowed(rt, input.address);
      const snap = rt.membership.addNode(input);
      // The answer waits for the new node's purge, so that it serves when the call returns.
      await rt.routing.settled(
        Object.values(snap.doc.entries).find(
          (e) => e.address === input.address && e.state !== 'removed',
        )?.id ?? '',
      );
      return reply.code(201).send(await saved());
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/ring/nodes/:id',
    {
      onRequest: admin,
      schema: {
        summary: 'Remove a node from the ring',
        security: adminSecurity,
        params: nodeIdParams,
        response: { '4xx': errorSchema },
      },
    },
    async (req) => {
      rt.membership.removeNode(req.params.id);
      return saved();
    },
  );

  app.patch<{ Params: { id: string }; Body: unknown }>(
    '/api/v1/ring/nodes/:id',
    {
      onRequest: admin,
      schema: {
        summary: "Change a node's weight or state (active, draining)",
        security: adminSecurity,
        params: nodeIdParams,
        body: {
          type: 'object',
          properties: {
            weight: { type: 'integer', minimum: 1, maximum: 1000 },
            state: { type: 'string', enum: ['active', 'draining'] },
          },
        },
        response: { '4xx': errorSchema },
      },
    },
    async (req) => {
      const body = checkObject(req.body, 'the body');
      checkFields(body, PATCH_FIELDS);
      if (body.weight === undefined && body.state === undefined) {
        throw new DcacheError('INVALID_BODY', 'the body must set "weight" or "state"');
      }
      const patch: UpdateNodeInput = {};
      if (body.weight !== undefined) patch.weight = body.weight as number;
      if (body.state !== undefined) patch.state = body.state as UpdateNodeInput['state'] & string;
      rt.membership.updateNode(req.params.id, patch);
      // An activated node is purged first; the answer waits for it (see POST).
      await rt.routing.settled(req.params.id);
      return saved();
    },
  );

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
