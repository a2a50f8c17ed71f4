import type { MembershipDoc, RingOptions } from '@dcache/ring';
import type { Logger } from 'pino';
import { CacheService } from './cache-service.js';
import { type Config, ConfigError, envName } from './config.js';
import { HealthTracker } from './health/health-tracker.js';
import { Prober } from './health/prober.js';
import { StaleJournal } from './health/stale-journal.js';
import { MembershipHolder, type RingSnapshot, seedDoc } from './membership/membership-holder.js';
import { BREAKER_STATES, createMetrics, type Metrics } from './metrics.js';
import { Router } from './router.js';
import { Executor } from './upstream/executor.js';
import { isAuthError } from './upstream/node-client.js';
import { NodePool } from './upstream/node-pool.js';

/** Everything a proxy runs on; `buildApp` serves it over HTTP. */
export interface Runtime {
  config: Config;
  log: Logger;
  metrics: Metrics;
  holder: MembershipHolder;
  pool: NodePool;
  health: HealthTracker;
  prober: Prober;
  router: Router;
  exec: Executor;
  journal: StaleJournal;
  cache: CacheService;
  /** Set when shutdown begins: readiness fails and responses close their connections. */
  state: { shuttingDown: boolean; startedAt: number };
  /** Start probing; resolves when each node connected or `connectTimeout` passed. */
  start(): Promise<void>;
  /** Stop probing and close every Redis connection. */
  close(): Promise<void>;
}

/** Options of `createRuntime`. */
export interface RuntimeOptions {
  /** The membership to start from (state file or peers); default: seeded from cache.addresses. */
  doc?: MembershipDoc;
  metrics?: Metrics;
}

/** Wire the pool, health, router and cache service so that they follow membership and health events. */
export function createRuntime(config: Config, log: Logger, opts: RuntimeOptions = {}): Runtime {
  const metrics = opts.metrics ?? createMetrics();
  const ringOpts: RingOptions = {
    hash: config.cache.hash,
    ...(config.cache.hashTag ? { hashTag: config.cache.hashTag } : {}),
  };
  const holder = new MembershipHolder(opts.doc ?? seedDoc(config.cache.addresses), ringOpts);
  const pool = new NodePool({
    password: config.cache.password,
    database: config.cache.database,
    poolSize: config.cache.poolSize,
    maxRetries: config.cache.maxRetries,
    connectTimeout: config.cache.connectTimeout,
    reconnectMax: Math.min(config.health.retryInterval, 2_000),
  });
  const health = new HealthTracker({
    failureThreshold: config.health.failureThreshold,
    successThreshold: config.health.successThreshold,
  });
  const journal = new StaleJournal(config.health.journalSize);
  const router = new Router(
    holder,
    health,
    config.replication.factor,
    config.replication.warmupWindow,
  );
  const exec = new Executor(pool, health, metrics, config.cache.commandTimeout);
  const cache = new CacheService({ router, exec, journal, metrics, log });
  const prober = new Prober(pool, health, {
    interval: config.health.interval,
    retryInterval: config.health.retryInterval,
    timeout: config.health.timeout,
    onProbe: (node, secs, err) => {
      if (!err) metrics.redisDuration.observe({ node, op: 'ping' }, secs);
    },
  });

  const publishRing = (snap: RingSnapshot) => {
    metrics.ringVersion.set(snap.version);
    metrics.ringInfo.reset();
    metrics.ringInfo.set({ checksum: snap.checksum }, 1);
    metrics.keyShare.reset();
    for (const [node, share] of snap.ring.share()) metrics.keyShare.set({ node }, share);
    const states = { active: 0, draining: 0, ejected: 0, removed: 0 };
    for (const e of Object.values(snap.doc.entries)) states[e.state]++;
    for (const id of health.ejected) if (snap.members.get(id)?.state === 'active') states.ejected++;
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
    for (const id of closed) {
      exec.forget(id);
      metrics.nodeUp.remove({ node: id });
      for (const st of BREAKER_STATES) metrics.nodeBreakerState.remove({ node: id, state: st });
    }
    for (const m of members) publishNode(m.id);
    publishRing(snap);
  };
  followMembership(holder.current);

  holder.on('change', (next, prev, source) => {
    router.changed({ ring: prev.ring, excluded: health.ejected });
    followMembership(next);
    metrics.membershipChanges.inc({ source: source === 'seed' ? 'file' : source });
    log.info(
      { version: next.version, checksum: next.checksum, nodes: next.ring.size, source },
      'ring changed',
    );
  });

  health.on('transition', (t) => {
    const before = new Set(health.ejected);
    if (t.to === 'closed') before.add(t.node);
    else before.delete(t.node);
    if ((t.from === 'closed') !== (t.to === 'closed'))
      router.changed({ ring: holder.current.ring, excluded: before });
    if (t.to === 'open' && t.from === 'closed')
      metrics.ejections.inc({ node: t.node, reason: /probe/.test(t.reason) ? 'probe' : 'request' });
    if (t.to === 'closed') metrics.readds.inc({ node: t.node });
    publishNode(t.node);
    publishRing(holder.current);
    const level = t.to === 'closed' ? 'info' : 'warn';
    log[level](
      { node: t.node, from: t.from, to: t.to, reason: t.reason },
      `node ${t.to === 'open' ? 'ejected' : t.to === 'closed' ? 're-added' : 'half-open'}`,
    );
  });

  // No stale read after re-add: purge what changed while the node was out, before it serves.
  health.beforeReadd = async (node) => {
    const taken = journal.take(node);
    try {
      if (taken.flush) {
        await exec.run(node, 'flushdb', (c) => c.flushdb());
        metrics.staleFlushes.inc({ node });
        log.warn({ node }, 'stale-key journal overflowed: flushed the node before re-adding it');
      } else if (taken.keys.length > 0) {
        for (let i = 0; i < taken.keys.length; i += 1_000) {
          const chunk = taken.keys.slice(i, i + 1_000);
          await exec.run(node, 'del', (c) => c.unlink(...chunk));
        }
        metrics.stalePurges.inc({ node }, taken.keys.length);
        log.info(
          { node, keys: taken.keys.length },
          'purged keys changed while the node was ejected',
        );
      }
    } catch (e) {
      journal.restore(node, taken);
      throw e;
    }
  };

  const state = { shuttingDown: false, startedAt: Date.now() };
  return {
    config,
    log,
    metrics,
    holder,
    pool,
    health,
    prober,
    router,
    exec,
    journal,
    cache,
    state,
    async start() {
      await Promise.all(pool.all().map((n) => n.waitReady(config.cache.connectTimeout)));
      // A refused password is a configuration error, not an outage: stop at start with its name.
      const refused = pool.all().filter((n) => !n.connected && isAuthError(n.lastError));
      if (refused.length > 0) {
        await pool.close();
        const first = refused[0] as (typeof refused)[number];
        throw new ConfigError(
          envName('cache.password'),
          `Redis ${refused.map((n) => n.address).join(', ')} refused the credentials (${first.lastError?.split('.')[0]})`,
        );
      }
      for (const n of pool.all()) {
        if (!n.connected)
          log.warn(
            { node: n.id, err: n.lastError },
            'node not reachable at start; it will be probed',
          );
      }
      prober.start();
    },
    async close() {
      prober.stop();
      await pool.close();
    },
  };
}
