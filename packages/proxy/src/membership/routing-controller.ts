import { type RoutingState, routingState } from '@dcache/ring';
import type { Logger } from 'pino';
import type { HealthTracker } from '../health/health-tracker.js';
import type { StaleJournal } from '../health/stale-journal.js';
import type { Metrics } from '../metrics.js';
import type { PeerSync } from '../peers/peer-sync.js';
import type { Router } from '../router.js';
import type { Executor } from '../upstream/executor.js';
import type { MembershipHolder, RingSnapshot, RoutingChange } from './membership-holder.js';
import type { MembershipManager } from './membership-manager.js';

/** What the routing controller works with. */
export interface RoutingControllerDeps {
  holder: MembershipHolder;
  membership: MembershipManager;
  health: HealthTracker;
  journal: StaleJournal;
  router: Router;
  exec: Executor;
  /** Resolves once `node` has a ready connection (or the connect timeout passed). */
  ready: (node: string) => Promise<void>;
  metrics: Metrics;
  log: Logger;
  /** The peers, once peer sync runs (undefined: a proxy alone confirms its own changes). */
  peers: () => PeerSync | undefined;
  replicas: number;
  /** After a node serves again, its interim owners keep their copies this long (warm-up source). */
  warmupWindow: number;
  /** A `rejoining` register of another proxy older than this is taken over (its coordinator died). */
  takeoverAfter: number;
  /** Longest wait for peers to confirm the `rejoining` state before the rejoin is given up. */
  confirmTimeout: number;
}

const CHUNK = 1_000;

/**
 * Turns this proxy's health observations into cluster-wide routing changes and carries out the
 * rejoin protocol (docs/membership.md):
 *
 * 1. `out`: a breaker that opens on this proxy takes the node out of routing for every proxy.
 * 2. `rejoining`: before the node serves again, it is fenced everywhere; once every reachable
 *    peer holds that state (nobody writes its keys to the interim owners any more), the journals
 *    of all proxies are collected and those keys are deleted on the node, or it is flushed when
 *    any journal is incomplete, any peer cannot answer, or the node is new to the ring.
 * 3. `up`: the node serves; after the warm-up window, the copies its keys left on the interim
 *    owners are deleted, so that a later ejection cannot bring them back.
 */
export class RoutingController {
  private readonly d: RoutingControllerDeps;
  private readonly running = new Map<string, Promise<void>>();
  /** Nodes that joined the ring (not returning): flushed before they serve. */
  private readonly joined = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(d: RoutingControllerDeps) {
    this.d = d;
    d.health.beforeReadd = (node) => this.rejoin(node);
  }

  /** Breakers and journals follow the snapshot this proxy starts from (it saw nothing leave). */
  init(snap: RingSnapshot): void {
    for (const id of snap.away) this.d.journal.incomplete(id);
    this.followHealth(snap);
  }

  /** A breaker opened on this proxy's own observation: take the node out cluster-wide. */
  ejected(node: string, reason: string): void {
    const snap = this.d.holder.current;
    if (snap.members.get(node)?.state !== 'active') return;
    if (routingState(snap.doc, node) !== 'up') return;
    if (this.d.membership.setRouting(node, 'out'))
      this.d.log.warn(
        { node, reason, epoch: this.d.holder.current.version },
        'node taken out of routing',
      );
  }

  /** Follow a routing change: journals, breakers, and the rejoins this proxy coordinates. */
  follow(c: RoutingChange): void {
    const { next, prev } = c;
    for (const id of next.members.keys()) {
      const nowAway = next.away.has(id);
      const wasAway = prev.away.has(id);
      if (!prev.members.has(id)) {
        // A node new to the ring may hold anything from an earlier time: flush before it serves.
        this.joined.add(id);
        if (nowAway) this.d.journal.incomplete(id);
      } else if (nowAway && !wasAway) this.d.journal.discard(id);
      else if (!nowAway && wasAway) this.d.journal.discard(id);
    }
    for (const id of prev.members.keys()) {
      if (!next.members.has(id)) {
        this.d.journal.discard(id);
        this.joined.delete(id);
      }
    }
    this.followHealth(next);
    // Rejoins this proxy started (an admin add or activate here): coordinate them.
    for (const id of next.rejoining) {
      const reg = next.doc.routing[id];
      if (reg?.writer === this.d.membership.writer && !this.running.has(id)) {
        void this.coordinate(id).catch(() => {});
      }
    }
  }

  /** Resolves when a rejoin of `node` under way here ended (either way); at once when none is. */
  settled(node: string): Promise<void> {
    return this.running.get(node)?.catch(() => {}) ?? Promise.resolve();
  }

  /** Stop timers; rejoins under way finish or fail on closed connections. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private followHealth(snap: RingSnapshot): void {
    for (const [id, e] of snap.members) {
      if (e.state !== 'active') continue;
      const rs = routingState(snap.doc, id);
      if (rs !== 'up') this.d.health.markOut(id, `cluster routing: ${rs}`);
      else if (this.d.health.state(id) !== 'closed')
        this.d.health.markUp(id, 'cluster routing: up');
    }
  }

  /**
   * The breaker of `node` saw enough successful probes: make the node serve again, through the
   * rejoin protocol unless the cluster already routes to it. Rejects when it cannot be done now
   * (the breaker then stays open and tries again).
   */
  async rejoin(node: string): Promise<void> {
    for (;;) {
      if (this.closed) throw new Error('shutting down');
      const snap = this.d.holder.current;
      if (snap.members.get(node)?.state !== 'active') return;
      const rs = routingState(snap.doc, node);
      if (rs === 'up') return;
      const reg = snap.doc.routing[node];
      const theirs =
        rs === 'rejoining' && reg !== undefined && reg.writer !== this.d.membership.writer;
      if (theirs && Date.now() - reg.updatedAt < this.d.takeoverAfter) {
        await this.changeOrTimeout(250);
        continue;
      }
      // A takeover cannot know what the first coordinator purged: flush.
      return this.coordinate(
        node,
        theirs ? 'took over a rejoin whose coordinator went away' : undefined,
      );
    }
  }

  private coordinate(node: string, flushWhy?: string): Promise<void> {
    const running = this.running.get(node);
    if (running) return running;
    // Registered before it starts: its first step changes the routing, whose listener asks here.
    const p = Promise.resolve()
      .then(() => this.runRejoin(node, flushWhy))
      .finally(() => this.running.delete(node));
    this.running.set(node, p);
    return p;
  }

  private async runRejoin(node: string, flushWhy?: string): Promise<void> {
    const { membership, holder, log, journal } = this.d;
    const t0 = performance.now();
    membership.setRouting(node, 'rejoining');
    const epoch = holder.current.version;
    log.info({ node, epoch }, 'rejoin: fenced the node; waiting for peers to confirm');
    try {
      await this.confirmed(node);
      let why = flushWhy ?? (this.joined.has(node) ? 'the node is new to the ring' : undefined);
      let keys: string[] = [];
      if (why === undefined) {
        const mine = journal.peek(node);
        const peers = this.d.peers();
        const theirs = peers ? await peers.journals(node) : { flush: false as const, keys: [] };
        if (mine.flush) why = "this proxy's journal overflowed or started after the node left";
        else if (theirs.flush) why = theirs.why;
        else keys = [...new Set([...mine.keys, ...theirs.keys])];
      }
      this.stillRejoining(node);
      // A node just added (or reconnecting) has no connection yet; commands fail fast without.
      await this.d.ready(node);
      if (why !== undefined) {
        await this.d.exec.run(node, 'flushdb', (c) => c.flushdb('ASYNC'));
        this.d.metrics.staleFlushes.inc({ node });
        log.warn({ node, why }, 'rejoin: flushed the node before it serves again');
      } else if (keys.length > 0) {
        for (let i = 0; i < keys.length; i += CHUNK) {
          const chunk = keys.slice(i, i + CHUNK);
          await this.d.exec.run(node, 'del', (c) => c.unlink(...chunk));
        }
        this.d.metrics.stalePurges.inc({ node }, keys.length);
        log.info(
          { node, keys: keys.length },
          'rejoin: purged the keys changed while the node was out',
        );
      }
      this.stillRejoining(node);
      const interim = holder.current;
      membership.setRouting(node, 'up');
      this.joined.delete(node);
      log.info(
        { node, epoch: holder.current.version, ms: Math.round(performance.now() - t0) },
        'rejoin: the node serves again',
      );
      this.later(() => this.cleanInterim(node, interim, why === undefined ? keys : undefined));
    } catch (e) {
      // Back to `out`: the interim owners still hold the newest values (nobody wrote while fenced).
      const rs = routingState(holder.current.doc, node);
      if (rs === 'rejoining' && holder.current.doc.routing[node]?.writer === membership.writer)
        membership.setRouting(node, 'out');
      log.warn({ node, err: (e as Error).message }, 'rejoin: given up for now; the node stays out');
      throw e;
    }
  }

  /** Throw unless `node` is still rejoining (someone else finished it, or took it out again). */
  private stillRejoining(node: string): void {
    const rs: RoutingState = routingState(this.d.holder.current.doc, node);
    if (rs !== 'rejoining') throw new Error(`the node's routing became ${rs} meanwhile`);
  }

  /** Wait until every reachable peer confirmed the current view (rejoining included). */
  private async confirmed(node: string): Promise<void> {
    const until = performance.now() + this.d.confirmTimeout;
    while (this.d.router.unconfirmed > 0) {
      this.stillRejoining(node);
      if (performance.now() > until) throw new Error('peers did not confirm the rejoining state');
      await this.changeOrTimeout(20);
    }
  }

  private changeOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
    });
  }

  private later(fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) void fn();
    }, this.d.warmupWindow);
    t.unref();
    this.timers.add(t);
  }

  /**
   * Delete what `node`'s keys left on their interim owners while it was out (`keys` from the
   * journals), or, when the journals were incomplete, every key an up node holds but does not
   * own now (a SCAN of each). Runs after the warm-up window, which reads those copies.
   */
  private async cleanInterim(node: string, outView: RingSnapshot, keys?: string[]): Promise<void> {
    const { exec, metrics, log, holder } = this.d;
    const r = this.d.replicas;
    try {
      if (keys !== undefined) {
        const byNode = new Map<string, string[]>();
        const now = holder.current;
        for (const k of keys) {
          const was =
            r === 1
              ? [outView.ring.ownerExcluding(k, outView.excluded)]
              : outView.ring.owners(k, r, outView.excluded);
          const is = new Set(
            r === 1
              ? [now.ring.ownerExcluding(k, now.excluded)]
              : now.ring.owners(k, r, now.excluded),
          );
          for (const n of was) {
            if (n === undefined || is.has(n) || n === node) continue;
            const list = byNode.get(n) ?? [];
            list.push(k);
            byNode.set(n, list);
          }
        }
        let deleted = 0;
        for (const [n, list] of byNode) {
          for (let i = 0; i < list.length; i += CHUNK) {
            await exec.run(n, 'del', (c) => c.unlink(...list.slice(i, i + CHUNK)));
            deleted += Math.min(CHUNK, list.length - i);
          }
        }
        metrics.interimCleanups.inc({ result: 'deleted' }, deleted);
        if (deleted > 0) log.info({ node, keys: deleted }, 'rejoin: deleted the interim copies');
        return;
      }
      const swept = await this.sweep(node);
      metrics.interimCleanups.inc({ result: 'swept' }, swept);
      log.info({ node, keys: swept }, 'rejoin: swept interim copies from the other nodes');
    } catch (e) {
      metrics.interimCleanups.inc({ result: 'failed' });
      log.warn({ node, err: (e as Error).message }, 'rejoin: interim cleanup failed');
    }
  }

  /** SCAN every other serving node; delete the keys whose owners now include `node` but not it. */
  private async sweep(node: string): Promise<number> {
    const { exec, holder, router } = this.d;
    let deleted = 0;
    for (const n of holder.current.ring.nodes.map((x) => x.id)) {
      if (n === node || holder.current.excluded.has(n)) continue;
      let cursor = '0';
      do {
        const [next, batch] = await exec.run(n, 'scan', (c) => c.scan(cursor, 'COUNT', 500));
        cursor = next;
        if (this.closed) return deleted;
        const orphans = batch.filter((k) => {
          const o = router.owners(k);
          return o.includes(node) && !o.includes(n);
        });
        if (orphans.length > 0) {
          await exec.run(n, 'del', (c) => c.unlink(...orphans));
          deleted += orphans.length;
        }
      } while (cursor !== '0');
    }
    return deleted;
  }
}
