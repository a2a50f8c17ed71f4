import type { Ring } from '@dcache/ring';
import type { HealthTracker } from './health/health-tracker.js';
import type { MembershipHolder } from './membership/membership-holder.js';

/** The routing in effect: a ring and the nodes ejected from it. */
export interface RoutingView {
  readonly ring: Ring;
  readonly excluded: ReadonlySet<string>;
}

/**
 * Key → node on the current snapshot, skipping ejected nodes. Keeps the previous view for the
 * warm-up window after any change of the effective routing (membership or ejection).
 */
export class Router {
  private readonly holder: MembershipHolder;
  private readonly health: HealthTracker;
  readonly replicas: number;
  private readonly warmupWindow: number;
  private prev: RoutingView | undefined;
  private prevUntil = 0;

  constructor(
    holder: MembershipHolder,
    health: HealthTracker,
    replicas: number,
    warmupWindow: number,
  ) {
    this.holder = holder;
    this.health = health;
    this.replicas = replicas;
    this.warmupWindow = warmupWindow;
  }

  /** The ring of the current snapshot. */
  get ring(): Ring {
    return this.holder.current.ring;
  }

  /** The nodes ejected now. */
  get excluded(): ReadonlySet<string> {
    return this.health.ejected;
  }

  /** The view in effect now. */
  view(): RoutingView {
    return { ring: this.holder.current.ring, excluded: this.health.ejected };
  }

  /** Remember `before` as the previous view for the warm-up window (call on every effective change). */
  changed(before: RoutingView): void {
    if (this.warmupWindow <= 0) return;
    this.prev = before;
    this.prevUntil = Date.now() + this.warmupWindow;
  }

  /** The previous view while the warm-up window lasts. */
  previous(): RoutingView | undefined {
    if (this.prev && Date.now() < this.prevUntil) return this.prev;
    this.prev = undefined;
    return undefined;
  }

  /** First healthy owner of `key`, or undefined when every node is ejected or the ring is empty. */
  primary(key: string): string | undefined {
    const ring = this.holder.current.ring;
    if (ring.size === 0) return undefined;
    const ex = this.health.ejected;
    return ex.size === 0 ? ring.owner(key) : ring.ownerExcluding(key, ex);
  }

  /** The first R healthy owners of `key` (writes go to all, reads try them in order). */
  owners(key: string): string[] {
    const ring = this.holder.current.ring;
    if (ring.size === 0) return [];
    if (this.replicas === 1) {
      const p = this.primary(key);
      return p === undefined ? [] : [p];
    }
    return ring.owners(key, this.replicas, this.health.ejected);
  }

  /** Owners in full ring order ignoring health: whom the key belongs to when everyone is up. */
  homeOwners(key: string): string[] {
    const ring = this.holder.current.ring;
    if (ring.size === 0) return [];
    return this.replicas === 1 ? [ring.owner(key)] : ring.owners(key, this.replicas);
  }

  /** The previous view's primary for `key` when it differs from `current` (warm-up source). */
  previousOwner(key: string, current: string | undefined): string | undefined {
    const p = this.previous();
    if (!p || p.ring.size === 0) return undefined;
    const o = p.excluded.size === 0 ? p.ring.owner(key) : p.ring.ownerExcluding(key, p.excluded);
    if (o === undefined || o === current || this.health.ejected.has(o)) return undefined;
    if (!this.holder.current.members.has(o)) return undefined;
    return o;
  }
}
