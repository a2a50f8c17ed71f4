import type { Ring } from '@dcache/ring';
import {
  type MembershipHolder,
  type RingSnapshot,
  rejoinFenced,
} from './membership/membership-holder.js';

/**
 * The owner a key gets while its routing is being changed: no node has that id, so the executor
 * answers NODE_UNAVAILABLE at once. Keys are fenced while a node rejoins, while a change is not
 * yet confirmed by every reachable peer, and while this proxy's lease on the cluster view lapsed.
 */
export const FENCED = '\u0000fenced';

/** The routing in effect: a ring and the nodes ejected from it. */
export interface RoutingView {
  readonly ring: Ring;
  readonly excluded: ReadonlySet<string>;
}

/** Why keys are fenced now, for logs and errors. */
export type FenceReason = 'unconfirmed' | 'lease' | undefined;

/**
 * Key → node on the current snapshot, skipping nodes taken out of routing cluster-wide.
 *
 * Invariant (docs/membership.md): a key is served only by the owner every reachable peer would
 * pick. After a change, the views it replaced stay `pending` until every reachable peer has
 * confirmed the new one; meanwhile a key whose owner differs between the current view and any
 * pending one is FENCED. Keys whose owners did not change are never held up, and with no change
 * under way the check costs one branch.
 *
 * Keeps the previous view for the warm-up window after any change of the effective routing.
 */
export class Router {
  private readonly holder: MembershipHolder;
  readonly replicas: number;
  private readonly warmupWindow: number;
  private prev: RoutingView | undefined;
  private prevUntil = 0;
  /** Views replaced by changes that some reachable peer has not confirmed yet. */
  private pending: RingSnapshot[] = [];
  /** performance.now() until which this proxy's view is known fresh (Infinity: no peers). */
  private leaseUntil = Number.POSITIVE_INFINITY;
  /** Some key may be fenced by pending views or a lease (rejoining nodes: on the snapshot). */
  private guarded = false;

  constructor(holder: MembershipHolder, replicas: number, warmupWindow: number) {
    this.holder = holder;
    this.replicas = replicas;
    this.warmupWindow = warmupWindow;
  }

  /** The current snapshot. */
  get snapshot(): RingSnapshot {
    return this.holder.current;
  }

  /** The ring of the current snapshot. */
  get ring(): Ring {
    return this.holder.current.ring;
  }

  /** The nodes taken out of routing now. */
  get excluded(): ReadonlySet<string> {
    return this.holder.current.excluded;
  }

  /** Live nodes that do not serve their keys now (excluded or draining). */
  get away(): ReadonlySet<string> {
    return this.holder.current.away;
  }

  /** The view in effect now. */
  view(): RoutingView {
    const s = this.holder.current;
    return { ring: s.ring, excluded: s.excluded };
  }

  /** Remember `before` as the previous view for the warm-up window (call on every effective change). */
  changed(before: RoutingView): void {
    this.refreshGuard();
    if (this.warmupWindow <= 0) return;
    this.prev = before;
    this.prevUntil = Date.now() + this.warmupWindow;
  }

  /** Hold `before` as pending until `confirm()`: keys it routes differently are fenced meanwhile. */
  hold(before: RingSnapshot): void {
    this.pending.push(before);
    this.refreshGuard();
  }

  /** Every reachable peer holds the current view: drop the pending views. */
  confirm(): void {
    if (this.pending.length === 0) return;
    this.pending = [];
    this.refreshGuard();
  }

  /** Number of views awaiting confirmation by peers. */
  get unconfirmed(): number {
    return this.pending.length;
  }

  /** This proxy's view is fresh until `until` (performance.now() time; Infinity without peers). */
  setLease(until: number): void {
    this.leaseUntil = until;
    this.refreshGuard();
  }

  /** Why keys are fenced now (undefined when nothing beyond rejoining nodes is). */
  fenceReason(): FenceReason {
    if (performance.now() > this.leaseUntil) return 'lease';
    return this.pending.length > 0 ? 'unconfirmed' : undefined;
  }

  private refreshGuard(): void {
    this.guarded = this.pending.length > 0 || this.leaseUntil !== Number.POSITIVE_INFINITY;
  }

  /** Milliseconds left of the warm-up window (0 outside one). */
  warmupRemaining(): number {
    return this.previous() ? Math.max(1, this.prevUntil - Date.now()) : 0;
  }

  /** The previous view while the warm-up window lasts. */
  previous(): RoutingView | undefined {
    if (this.prev && Date.now() < this.prevUntil) return this.prev;
    this.prev = undefined;
    return undefined;
  }

  /** One request's routing: the snapshot and the warm-up view, read once for all its keys. */
  route(): Routing {
    const prev = this.previous();
    return new Routing(
      this,
      this.holder.current,
      prev,
      prev ? Math.max(1, this.prevUntil - Date.now()) : 0,
    );
  }

  /** First healthy owner of `key` (FENCED while its routing changes), undefined with no node. */
  primary(key: string): string | undefined {
    return this.primaryOn(this.holder.current, key);
  }

  /** `primary` on snapshot `s`. */
  primaryOn(s: RingSnapshot, key: string): string | undefined {
    const ring = s.ring;
    if (ring.size === 0) return undefined;
    const o = s.excluded.size === 0 ? ring.owner(key) : ring.ownerExcluding(key, s.excluded);
    if (o === undefined || (!this.guarded && s.rejoining.size === 0)) return o;
    return this.fenced(key, s, (v) => primaryIn(v, key)) ? FENCED : o;
  }

  /** The first R healthy owners of `key` (writes go to all, reads try them in order). */
  owners(key: string): string[] {
    return this.ownersOn(this.holder.current, key);
  }

  /** `owners` on snapshot `s`. */
  ownersOn(s: RingSnapshot, key: string): string[] {
    if (this.replicas === 1) {
      const p = this.primaryOn(s, key);
      return p === undefined ? [] : [p];
    }
    if (s.ring.size === 0) return [];
    const o = s.ring.owners(key, this.replicas, s.excluded);
    if (o.length === 0 || (!this.guarded && s.rejoining.size === 0)) return o;
    const same = (v: RingSnapshot) => v.ring.owners(key, this.replicas, v.excluded).join('\n');
    return this.fenced(key, s, same) ? [FENCED] : o;
  }

  /** The first `n` distinct nodes of the ring walk from `key` over every live node. */
  homeWalk(key: string, n: number): string[] {
    const ring = this.holder.current.homeRing;
    return ring.size === 0 ? [] : ring.owners(key, Math.min(n, ring.size));
  }

  /** The previous view's primary for `key` when it differs from `current` (warm-up source). */
  previousOwner(key: string, current: string | undefined): string | undefined {
    return this.previousOwnerOn(this.holder.current, this.previous(), key, current);
  }

  /** `previousOwner` on snapshot `s` with previous view `p`. */
  previousOwnerOn(
    s: RingSnapshot,
    p: RoutingView | undefined,
    key: string,
    current: string | undefined,
  ): string | undefined {
    if (!p || p.ring.size === 0 || current === FENCED) return undefined;
    const o = p.excluded.size === 0 ? p.ring.owner(key) : p.ring.ownerExcluding(key, p.excluded);
    if (o === undefined || o === current || s.excluded.has(o)) return undefined;
    if (!s.members.has(o)) return undefined;
    return o;
  }

  /**
   * True when `key` must not be served now: the lease lapsed, a node it will be served by is being
   * purged before it rejoins, or a pending view routes it elsewhere (`pick` gives its owner(s)).
   */
  private fenced(key: string, s: RingSnapshot, pick: (v: RingSnapshot) => unknown): boolean {
    if (performance.now() > this.leaseUntil) return true;
    if (rejoinFenced(s, key, this.replicas)) return true;
    if (this.pending.length === 0) return false;
    const now = pick(s);
    for (const v of this.pending) if (pick(v) !== now) return true;
    return false;
  }
}

/**
 * The routing of one request: a snapshot and the warm-up view read once, so every key of a batch
 * and every later step of the request (fallback rounds, copies, journal entries) follow the same
 * ring and ejected set even when a newer snapshot arrives across an await. Fencing is checked
 * when a key is asked for, on this snapshot.
 */
export class Routing {
  private readonly router: Router;
  /** The snapshot every key of the request is routed on. */
  readonly snapshot: RingSnapshot;
  /** The previous view while the warm-up window lasted when the request began. */
  readonly previous: RoutingView | undefined;
  /** Milliseconds left of the warm-up window when the request began (0 outside one). */
  readonly warmupRemaining: number;
  /** Owners per key (1 without replication). */
  readonly replicas: number;

  constructor(
    router: Router,
    snapshot: RingSnapshot,
    previous: RoutingView | undefined,
    warmupRemaining: number,
  ) {
    this.router = router;
    this.snapshot = snapshot;
    this.previous = previous;
    this.warmupRemaining = warmupRemaining;
    this.replicas = router.replicas;
  }

  /** First healthy owner of `key` (FENCED while its routing changes), undefined with no node. */
  primary(key: string): string | undefined {
    return this.router.primaryOn(this.snapshot, key);
  }

  /** The first R healthy owners of `key`. */
  owners(key: string): string[] {
    return this.router.ownersOn(this.snapshot, key);
  }

  /** The previous view's primary for `key` when it differs from `current` (warm-up source). */
  previousOwner(key: string, current: string | undefined): string | undefined {
    if (this.previous === undefined) return undefined;
    return this.router.previousOwnerOn(this.snapshot, this.previous, key, current);
  }

  /** Live nodes that do not serve their keys now (excluded or draining). */
  get away(): ReadonlySet<string> {
    return this.snapshot.away;
  }

  /** The first `n` distinct nodes of the ring walk from `key` over every live node. */
  homeWalk(key: string, n: number): string[] {
    const ring = this.snapshot.homeRing;
    return ring.size === 0 ? [] : ring.owners(key, Math.min(n, ring.size));
  }
}

function primaryIn(v: RingSnapshot, key: string): string | undefined {
  if (v.ring.size === 0) return undefined;
  return v.excluded.size === 0 ? v.ring.owner(key) : v.ring.ownerExcluding(key, v.excluded);
}
