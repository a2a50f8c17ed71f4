import type { MembershipDoc, RingOptions } from '@dcache/ring';
import type { Logger } from 'pino';
import { CacheService } from './cache-service.js';
import { type Config, ConfigError, envName } from './config.js';
import { HealthTracker } from './health/health-tracker.js';
import { Prober } from './health/prober.js';
import { StaleJournal } from './health/stale-journal.js';
import {
  MembershipHolder,
  type RingSnapshot,
  type RoutingChange,
  seedDoc,
} from './membership/membership-holder.js';
import { MembershipManager } from './membership/membership-manager.js';
import { RoutingController } from './membership/routing-controller.js';
import type { StatePersister } from './membership/state-file.js';
import { BREAKER_STATES, createMetrics, type Metrics } from './metrics.js';
import type { PeerSync } from './peers/peer-sync.js';
import { Router } from './router.js';
import { type LookupAll, NodeAllowList } from './security/node-allow.js';
import { Executor } from './upstream/executor.js';
import { errorClass, isAuthError, redisTlsOptions } from './upstream/node-client.js';
import { NodePool } from './upstream/node-pool.js';
import { classifyRedisError } from './upstream/redis-errors.js';

/** Everything a proxy runs on; `buildApp` serves it over HTTP. One object owns every part. */
export interface Runtime {
  config: Config;
  log: Logger;
  metrics: Metrics;
  holder: MembershipHolder;
  /** Every membership and routing change goes through it (admin, peers, health). */
  membership: MembershipManager;
  pool: NodePool;
  health: HealthTracker;
  prober: Prober;
  router: Router;
  exec: Executor;
  journal: StaleJournal;
  cache: CacheService;
  routing: RoutingController;
  /** Peer sync, set by the cluster set-up when a cluster token is configured. */
  peers: PeerSync | undefined;
  /** The state file writer, set by the cluster set-up when a state file is configured. */
  persister: StatePersister | undefined;
  /** Set when shutdown begins: readiness fails and responses close their connections. */
  state: { shuttingDown: boolean; startedAt: number };
  /** Peer sync is attached: its confirmations and lease now gate routing changes. */
  attachPeers(peers: PeerSync): void;
  /** Start probing; resolves when each node connected or `connectTimeout` passed. */
  start(): Promise<void>;
  /** Stop probing and close every Redis connection. */
  close(): Promise<void>;
}

/** Options of `createRuntime`. */
export interface RuntimeOptions {
  /** The membership to start from (state file or peers); default: seeded from cache.addresses. */
  doc?: MembershipDoc;
  /** The document is only the DC_CACHE_ADDRESSES seed (no cluster history). */
  seeded?: boolean;
  metrics?: Metrics;
  /** Resolver of the node allow-list (tests replace it); default: the system's. */
  lookup?: LookupAll;
}

/** Views differ in who serves some key (ring, ejections or rejoining nodes). */
function routingDiffers(a: RingSnapshot, b: RingSnapshot): boolean {
  const same = (x: ReadonlySet<string>, y: ReadonlySet<string>) =>
    x.size === y.size && [...x].every((v) => y.has(v));
  return a.ring !== b.ring || !same(a.excluded, b.excluded) || !same(a.rejoining, b.rejoining);
}

/** Build the parts and wire them: every change event is handled in one declared order. */
export function createRuntime(config: Config, log: Logger, opts: RuntimeOptions = {}): Runtime {
  const metrics = opts.metrics ?? createMetrics();
  const ringOpts: RingOptions = {
    hash: config.cache.hash,
    ...(config.cache.hashTag ? { hashTag: config.cache.hashTag } : {}),
  };
  const holder = new MembershipHolder(opts.doc ?? seedDoc(config.cache.addresses), ringOpts);
  const membership = new MembershipManager(holder, {
    writer: config.cluster.nodeId,
    log,
    metrics,
    seeded: opts.seeded ?? opts.doc === undefined,
  });
  // PEM files read once, here; config validation checked that they are readable.
  const tls = redisTlsOptions(config.cache);
  const pool = new NodePool({
    password: config.cache.password,
    username: config.cache.username,
    ...(tls ? { tls } : {}),
    allow: new NodeAllowList(config.cache.allowedAddresses, opts.lookup),
    database: config.cache.database,
    poolSize: config.cache.poolSize,
    // One binary-safe connection per node: a RESP client's commands reach a node in the order
    // it sent them (pipelining makes one connection enough, as twemproxy's default).
    rawPoolSize: config.resp.port !== 0 ? 1 : 0,
    maxPending: config.cache.maxPending,
    connectTimeout: config.cache.connectTimeout,
    reconnectMax: Math.min(config.health.retryInterval, 2_000),
  });
  const health = new HealthTracker({
    failureThreshold: config.health.failureThreshold,
    successThreshold: config.health.successThreshold,
  });
  const journal = new StaleJournal(config.health.journalSize);
  const router = new Router(holder, config.replication.factor, config.replication.warmupWindow);
  const exec = new Executor(pool, health, metrics, config.cache.commandTimeout);
  const cache = new CacheService({ router, exec, journal, metrics, log });
  const prober = new Prober(pool, health, {
    interval: config.health.interval,
    retryInterval: config.health.retryInterval,
    timeout: config.health.timeout,
    onProbe: (node, secs, err) => {
      if (!err) metrics.redisDuration.observe({ node, op: 'ping' }, secs);
      else metrics.redisErrors.inc({ node, op: 'ping', code: classifyRedisError(err) });
    },
  });
  let peers: PeerSync | undefined;
  const routing = new RoutingController({
    holder,
    membership,
    health,
    journal,
    router,
    exec,
    ready: async (node) => {
      await pool.get(node)?.waitReady(config.cache.connectTimeout);
    },
    metrics,
    log,
    peers: () => peers,
    replicas: config.replication.factor,
    takeoverAfter: Math.max(10_000, 5 * config.health.retryInterval),
    confirmTimeout: 2 * config.cluster.syncInterval + 5_000,
    commandDeadline: config.cache.commandTimeout,
  });

  const publishRing = (snap: RingSnapshot) => {
    metrics.ringVersion.set(snap.version);
    metrics.ringInfo.reset();
    metrics.ringInfo.set({ checksum: snap.checksum }, 1);
    metrics.keyShare.reset();
    for (const [node, share] of snap.ring.share()) metrics.keyShare.set({ node }, share);
    const states = { active: 0, draining: 0, ejected: 0, removed: 0 };
    for (const e of Object.values(snap.doc.entries)) states[e.state]++;
    states.ejected += snap.excluded.size;
    for (const [state, n] of Object.entries(states)) metrics.ringNodes.set({ state }, n);
  };
  const publishNode = (node: string) => {
    const s = health.state(node);
    metrics.nodeUp.set({ node }, s === 'closed' ? 1 : 0);
    for (const st of BREAKER_STATES)
      metrics.nodeBreakerState.set({ node, state: st }, st === s ? 1 : 0);
  };

  const followMembership = (snap: RingSnapshot) => {
    const members = [...snap.members.values()];
    const { closed } = pool.sync(members);
    health.sync(members.map((m) => m.id));
    const live = new Set(members.map((m) => m.id));
    for (const id of closed) {
      exec.forget(id);
      // A node that left the membership takes every per-node series with it (an address change
      // keeps the id and its series; publishNode below refreshes them).
      if (!live.has(id)) metrics.removeNode(id);
    }
    for (const m of members) publishNode(m.id);
    publishRing(snap);
  };
  followMembership(holder.current);
  routing.init(holder.current);

  // The fence: views replaced by a change stay pending until every reachable peer holds the new
  // one. The re-sync: after start or a stall, every key waits for an exchange with every peer.
  let unconfirmedSince: number | undefined;
  let confirmTimer: NodeJS.Timeout | undefined;
  const checkFence = () => {
    if (peers) router.setLease(peers.leaseUntil());
    if (router.unconfirmed > 0 && (!peers || peers.confirmed(holder.current.checksum))) {
      router.confirm();
      if (unconfirmedSince !== undefined)
        metrics.routingConfirm.observe((performance.now() - unconfirmedSince) / 1_000);
      unconfirmedSince = undefined;
    }
    metrics.routingFenced.set(router.fenceReason() || holder.current.rejoining.size > 0 ? 1 : 0);
    // A peer past its lease stops counting without any event: look again shortly.
    clearTimeout(confirmTimer);
    if (router.unconfirmed > 0) {
      confirmTimer = setTimeout(checkFence, 50);
      confirmTimer.unref();
    }
  };

  // Every change of the routing view, in this order: (1) the router holds the replaced view
  // (warm-up source; fenced until peers confirm), (2) peers get the change at once, (3) pool,
  // breakers, journals and metrics follow, rejoins this proxy started begin, (4) the state file.
  holder.on('change', (c: RoutingChange) => {
    const { next, prev, source } = c;
    if (routingDiffers(prev, next)) {
      router.changed({ ring: prev.ring, excluded: prev.excluded });
      if (peers) {
        router.hold(prev);
        unconfirmedSince ??= performance.now();
      }
    }
    peers?.changed(c.origin);
    followMembership(next);
    routing.follow(c);
    void rt.persister?.save();
    metrics.membershipChanges.inc({
      source: source === 'seed' ? 'file' : source,
    });
    log.info(
      {
        epoch: next.version,
        checksum: next.checksum,
        nodes: next.ring.size,
        out: [...next.excluded],
        source,
        ...(c.origin ? { from: c.origin } : {}),
      },
      'ring changed',
    );
    checkFence();
  });

  health.on('transition', (t) => {
    if (t.to === 'open' && t.from === 'closed' && !t.cluster)
      metrics.ejections.inc({ node: t.node, reason: /probe/.test(t.reason) ? 'probe' : 'request' });
    publishNode(t.node);
    const level = t.to === 'closed' ? 'info' : 'warn';
    log[level](
      { node: t.node, from: t.from, to: t.to, reason: t.reason, cluster: t.cluster === true },
      `breaker ${t.to === 'open' ? 'opened' : t.to === 'closed' ? 'closed' : 'half-open'}`,
    );
    // This proxy's own observation: propose the node's ejection to the cluster.
    if (t.to === 'open' && t.from === 'closed' && !t.cluster) routing.ejected(t.node, t.reason);
  });

  const state = { shuttingDown: false, startedAt: Date.now() };
  const rt: Runtime = {
    config,
    log,
    metrics,
    holder,
    membership,
    pool,
    health,
    prober,
    router,
    exec,
    journal,
    cache,
    routing,
    peers: undefined,
    persister: undefined,
    state,
    attachPeers(p) {
      peers = p;
      rt.peers = p;
      p.onPeerState = checkFence;
      checkFence();
    },
    async start() {
      const nodes = pool.all();
      await Promise.all(nodes.map((n) => n.waitReady(config.cache.connectTimeout)));
      // Credentials refused by EVERY node are a configuration error: stop at start with the
      // setting's name. Refused by some only (say a node added with another requirepass), those
      // are reported and left to health, which ejects them: one node must not stop the proxy.
      const refused = nodes.filter((n) => !n.connected && isAuthError(n.lastError));
      const user = config.cache.username;
      const setting = envName(user ? 'cache.username' : 'cache.password');
      const what = user
        ? `the credentials of ACL user "${user}" (${envName('cache.username')}, ${envName('cache.password')})`
        : `the credentials (${envName('cache.password')})`;
      if (refused.length > 0 && refused.length === nodes.length) {
        await pool.close();
        const first = refused[0] as (typeof refused)[number];
        throw new ConfigError(
          setting,
          `every Redis node (${refused.map((n) => n.address).join(', ')}) refused ${what}: ${first.lastError?.split('.')[0]}`,
        );
      }
      if (refused.length > 0)
        log.error(
          {
            nodes: refused.map((n) => n.id),
            setting,
            err: refused[0]?.lastError,
            class: 'auth',
          },
          `Redis node(s) ${refused.map((n) => n.address).join(', ')} refused ${what}; serving without them (health ejects them until their credentials match)`,
        );
      for (const n of nodes) {
        if (n.state === 'refused')
          log.error(
            { node: n.id, address: n.address, reason: n.refusal, class: 'not_allowed' },
            `node address not allowed by ${envName('cache.allowed_addresses')}: no connection is made to it (health ejects it)`,
          );
        else if (!n.connected && !refused.includes(n))
          log.warn(
            { node: n.id, err: n.lastError, class: errorClass(n.lastError ?? '') },
            'node not reachable at start; it will be probed',
          );
      }
      prober.start();
    },
    async close() {
      prober.stop();
      routing.close();
      clearTimeout(confirmTimer);
      await pool.close();
    },
  };
  return rt;
}
