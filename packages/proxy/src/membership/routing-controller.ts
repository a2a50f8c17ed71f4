import { type RoutingState, routingState } from '@dcache/ring';
import type { Logger } from 'pino';
import type { HealthTracker } from '../health/health-tracker.js';
import type { StaleJournal } from '../health/stale-journal.js';
import type { Metrics } from '../metrics.js';
import type { PeerSync } from '../peers/peer-sync.js';
import type { Router } from '../router.js';
import { type Executor, STALL_MS } from '../upstream/executor.js';
import { execPipeline } from '../upstream/redis-errors.js';
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
  /** A `rejoining` register of another proxy older than this is taken over (its coordinator died). */
  takeoverAfter: number;
  /** Longest wait for peers to confirm the `rejoining` state before the rejoin is given up. */
  confirmTimeout: number;
  /** The command deadline (ms): every Redis call settles within it (acknowledged or failed). */
  commandDeadline: number;
}

const CHUNK = 1_000;

/**
 * Turns this proxy's health observations into cluster-wide routing changes and carries out the
 * rejoin protocol (docs/membership.md):
 *
 * 1. `out`: a breaker that opens on this proxy takes the node out of routing for every proxy.
 * 2. `rejoining`: before the node serves again, it is fenced everywhere; once every reachable
 *    peer holds that state (nobody writes its keys to the interim owners any more) and the writes
 *    routed before that have settled (alone: its own; with peers: one command deadline), the journals
 *    of all proxies are collected and those keys are deleted on the node, or it is flushed when
 *    any journal is incomplete, any peer cannot answer, or the node is new to the ring.
 *    The same keys are deleted on the interim owners (or, after a flush, every other node is
 *    swept for copies of the node's keys), so that a later ejection cannot serve them.
 * 3. `up`: the node serves.
 */
export class RoutingController {
  private readonly d: RoutingControllerDeps;
  private readonly running = new Map<string, Promise<void>>();
  /** Nodes that joined the ring (not returning): flushed before they serve. */
  private readonly joined = new Set<string>();
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
      // Joined and served since: a later return is an ordinary one (journal, no flush).
      if (!nowAway) this.joined.delete(id);
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

  /** Stop taking part; rejoins under way finish or fail on closed connections. */
  close(): void {
    this.closed = true;
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
    const { membership, holder, log, journal, metrics } = this.d;
    const t0 = performance.now();
    // (The check and the change run in one turn: no other rejoin can start in between here.)
    const other = [...holder.current.rejoining].find((n) => n !== node);
    if (other !== undefined) {
      if (routingState(holder.current.doc, node) === 'rejoining')
        membership.setRouting(node, 'out');
      throw new Error(`another node (${other}) is rejoining; trying again later`);
    }
    membership.setRouting(node, 'rejoining');
    const epoch = holder.current.version;
    log.info({ node, epoch }, 'rejoin: fenced the node; waiting for peers to confirm');
    try {
      await this.confirmed(node);
      // One rejoin at a time in the cluster: hand-backs of two returning nodes could pass keys
      // between them. Every concurrent `rejoining` is visible here once peers confirmed ours;
      // the smallest id goes on, the others go back to `out` and their breakers try again.
      const first = [...holder.current.rejoining].sort()[0];
      if (first !== undefined && first !== node)
        throw new Error(`another node (${first}) is rejoining; trying again later`);
      // Barrier: a write routed under an older view (to an interim owner) may still be on its
      // way. Only once it settled are interim owners read or cleaned up. Alone, this proxy waits
      // for its own writes in flight. With peers it cannot see theirs: each began before its proxy
      // held the `rejoining` view, so before the confirmation, and settles (acknowledged or
      // failed) within its deadline; STALL_MS covers a reply handled late by a busy event loop.
      if (this.d.peers()) await this.changeOrTimeout(this.d.commandDeadline + STALL_MS);
      else await this.d.exec.writesSettled();
      this.stillRejoining(node);
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
        metrics.staleFlushes.inc({ node });
        log.warn({ node, why }, 'rejoin: flushed the node before it serves again');
        // The other nodes hold the node's keys (written while it was out, or the keys it takes
        // over when it joins): without a list, find them, and hand the newest back.
        const swept = await this.sweep(node);
        metrics.interimCleanups.inc({ result: 'swept' }, swept);
        log.info({ node, keys: swept }, 'rejoin: swept its keys from the other nodes');
      } else if (keys.length > 0) {
        // The newest value of each key is on its interim owner (nobody writes while fenced):
        // hand it back to the node, or delete the node's old copy when there is none, and drop
        // the interim copy so that a later ejection cannot serve it after newer writes.
        const moved = await this.handBack(node, keys);
        metrics.stalePurges.inc({ node }, keys.length);
        metrics.interimCleanups.inc({ result: 'deleted' }, moved);
        log.info(
          { node, keys: keys.length, handed_back: moved },
          'rejoin: purged the keys changed while the node was out',
        );
      }
      this.stillRejoining(node);
      membership.setRouting(node, 'up');
      metrics.readds.inc({ node });
      this.joined.delete(node);
      log.info(
        { node, epoch: holder.current.version, ms: Math.round(performance.now() - t0) },
        'rejoin: the node serves again',
      );
    } catch (e) {
      metrics.interimCleanups.inc({ result: 'failed' });
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

  /** UNLINK `keys` on `node` in chunks. */
  private async unlink(node: string, keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK);
      await this.d.exec.run(node, 'del', (c) => c.unlink(...chunk));
    }
  }

  /** The owners of `key` once `node` serves again (the current view with `node` not excluded). */
  private ownersWhenUp(snap: RingSnapshot, node: string, key: string): string[] {
    const ex = new Set(snap.excluded);
    ex.delete(node);
    const r = this.d.replicas;
    if (r === 1) {
      const o = snap.ring.ownerExcluding(key, ex);
      return o === undefined ? [] : [o];
    }
    return snap.ring.owners(key, r, ex);
  }

  /** Where `key` is served while `node` is still out: the current view's owners. */
  private interimOwners(snap: RingSnapshot, key: string): string[] {
    const r = this.d.replicas;
    if (r === 1) {
      const o = snap.ring.ownerExcluding(key, snap.excluded);
      return o === undefined ? [] : [o];
    }
    return snap.ring.owners(key, r, snap.excluded);
  }

  /**
   * For each key: copy the newest value (from its first interim owner, with its remaining TTL)
   * onto `node`, or delete it there when the interim owner has none; then delete the interim
   * copies that are not owners once `node` serves. Returns the values handed back.
   */
  private async handBack(node: string, keys: readonly string[]): Promise<number> {
    const { exec } = this.d;
    const snap = this.d.holder.current;
    const bySource = new Map<string, string[]>();
    const drop = new Map<string, string[]>();
    const stale: string[] = [];
    for (const k of keys) {
      const interim = this.interimOwners(snap, k);
      const after = new Set(this.ownersWhenUp(snap, node, k));
      // Journalled for the node although it will not own the key (it only passed the ring walk
      // while another away node was the home): its copy is old, and nothing is handed to it.
      if (!after.has(node)) {
        stale.push(k);
        continue;
      }
      const src = interim[0] ?? '';
      bySource.set(src, [...(bySource.get(src) ?? []), k]);
      for (const n of interim)
        if (n !== node && !after.has(n)) drop.set(n, [...(drop.get(n) ?? []), k]);
    }
    await this.unlink(node, stale);
    let handed = 0;
    for (const [src, list] of bySource) {
      for (let i = 0; i < list.length; i += CHUNK) {
        const chunk = list.slice(i, i + CHUNK);
        const found = src === '' ? chunk.map(() => null) : await this.readWithTtl(src, chunk);
        await exec.run(node, 'pipeline', (c) => {
          const pl = c.pipeline();
          chunk.forEach((k, j) => {
            const f = found[j];
            if (!f) pl.unlink(k);
            else if (f.pttl > 0) pl.set(k, f.value, 'PX', f.pttl);
            else pl.set(k, f.value);
          });
          return execPipeline(pl);
        });
        handed += found.filter((f) => f).length;
      }
    }
    for (const [n, list] of drop) await this.unlink(n, list);
    this.journalAway(snap, node, keys);
    return handed;
  }

  /**
   * The keys changed owner and value: every other node that is away now may hold an older copy
   * from a time it served them, so each must purge them before it serves again.
   */
  private journalAway(snap: RingSnapshot, node: string, keys: readonly string[]): void {
    for (const w of snap.away) {
      if (w === node) continue;
      for (const k of keys) this.d.journal.record(w, k);
    }
  }

  /** Values and remaining TTLs of `keys` on `node` (null where absent). */
  private async readWithTtl(
    node: string,
    keys: readonly string[],
  ): Promise<({ value: string; pttl: number } | null)[]> {
    const res = await this.d.exec.run(node, 'pipeline', (c) => {
      const pl = c.pipeline();
      for (const k of keys) {
        pl.get(k);
        pl.pttl(k);
      }
      return execPipeline(pl);
    });
    return keys.map((_, j) => {
      const [ge, v] = res[2 * j] ?? [null, null];
      const [te, t] = res[2 * j + 1] ?? [null, -2];
      if (ge || te || typeof v !== 'string' || (t as number) === -2) return null;
      return { value: v, pttl: t as number };
    });
  }

  /**
   * SCAN every other serving node for the keys `node` will own but that node will not (copies
   * left there while `node` was out, or the keys it takes over when it joins): the copy a node
   * serves now is handed to `node`, then every such copy is deleted. Progress is logged every
   * 100,000 keys scanned.
   */
  private async sweep(node: string): Promise<number> {
    const { exec, holder, log } = this.d;
    let deleted = 0;
    let scanned = 0;
    const snap = holder.current;
    for (const n of snap.ring.nodes.map((x) => x.id)) {
      if (n === node || snap.excluded.has(n)) continue;
      let cursor = '0';
      do {
        this.stillRejoining(node);
        const [next, batch] = await exec.run(n, 'scan', (c) => c.scan(cursor, 'COUNT', 1_000));
        cursor = next;
        const orphans = batch.filter((k) => {
          const o = this.ownersWhenUp(snap, node, k);
          return o.includes(node) && !o.includes(n);
        });
        // Where a node serves the key now, its copy is the newest: hand it over first.
        const newest = orphans.filter((k) => this.interimOwners(snap, k)[0] === n);
        if (newest.length > 0) {
          const found = await this.readWithTtl(n, newest);
          await exec.run(node, 'pipeline', (c) => {
            const pl = c.pipeline();
            newest.forEach((k, j) => {
              const f = found[j];
              if (f && f.pttl > 0) pl.set(k, f.value, 'PX', f.pttl);
              else if (f) pl.set(k, f.value);
            });
            return execPipeline(pl);
          });
        }
        if (orphans.length > 0) {
          await exec.run(n, 'del', (c) => c.unlink(...orphans));
          this.journalAway(snap, node, orphans);
          deleted += orphans.length;
        }
        const before = scanned;
        scanned += batch.length;
        if (Math.floor(scanned / 100_000) > Math.floor(before / 100_000))
          log.info({ node, scanned, deleted, at: n }, 'rejoin: sweeping the other nodes');
      } while (cursor !== '0');
    }
    return deleted;
  }
}
