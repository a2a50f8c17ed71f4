import { EventEmitter } from 'node:events';

/** Circuit-breaker state of a node: closed = serving, open = ejected, half_open = ejected, probes succeeding. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** A breaker transition, emitted once per change as `transition`. */
export interface Transition {
  node: string;
  from: BreakerState;
  to: BreakerState;
  reason: string;
  at: number;
  /** The move follows a cluster-wide routing change (not this proxy's own observation). */
  cluster?: boolean;
}

/** Thresholds of the breaker. */
export interface HealthThresholds {
  failureThreshold: number;
  successThreshold: number;
}

interface NodeHealth {
  state: BreakerState;
  failures: number;
  successes: number;
  lastError: string | undefined;
  since: number;
  /** Set while a re-add is pending on the `beforeReadd` hook. */
  readding: boolean;
}

/**
 * Per-node failure counting: this proxy's own observations. An `open` breaker proposes the node's
 * ejection to the cluster (runtime.ts); routing itself follows the cluster-wide view, and the
 * breaker follows that view back (`markOut` / `markUp`) so that probing keeps its rhythm.
 */
export class HealthTracker extends EventEmitter<{ transition: [Transition] }> {
  private readonly nodes = new Map<string, NodeHealth>();
  private readonly t: HealthThresholds;
  /** Ejected node ids (open or half-open); replaced, never mutated. */
  ejected: ReadonlySet<string> = new Set();
  /** Runs before an ejected node serves again (stale-key purge); a rejection keeps it ejected. */
  beforeReadd: ((node: string) => Promise<void>) | undefined;

  constructor(t: HealthThresholds) {
    super();
    this.t = t;
  }

  /** Start tracking `ids` (closed) and forget nodes not in the list. */
  sync(ids: readonly string[]): void {
    const want = new Set(ids);
    for (const id of [...this.nodes.keys()]) if (!want.has(id)) this.nodes.delete(id);
    for (const id of ids) {
      if (!this.nodes.has(id)) {
        this.nodes.set(id, {
          state: 'closed',
          failures: 0,
          successes: 0,
          lastError: undefined,
          since: Date.now(),
          readding: false,
        });
      }
    }
    this.rebuild();
  }

  /** The breaker state of a node (closed for unknown ids). */
  state(id: string): BreakerState {
    return this.nodes.get(id)?.state ?? 'closed';
  }

  /** Detail for /health and stats. */
  info(id: string): {
    state: BreakerState;
    healthy: boolean;
    failures: number;
    lastError: string | undefined;
    since: number;
  } {
    const n = this.nodes.get(id);
    if (!n) return { state: 'closed', healthy: true, failures: 0, lastError: undefined, since: 0 };
    return {
      state: n.state,
      healthy: n.state === 'closed',
      failures: n.failures,
      lastError: n.lastError,
      since: n.since,
    };
  }

  /** A live request or probe succeeded; `probe` successes are the only ones that close an open breaker. */
  success(id: string, probe = false): void {
    const n = this.nodes.get(id);
    if (!n) return;
    if (n.state === 'closed') {
      n.failures = 0;
      return;
    }
    if (!probe || n.readding) return;
    n.successes++;
    if (n.state === 'open') this.move(id, n, 'half_open', 'probe succeeded');
    if (n.successes >= this.t.successThreshold) void this.readd(id, n);
  }

  /** A live request or probe failed with an availability error (timeout, refused, closed). */
  failure(id: string, reason: string): void {
    const n = this.nodes.get(id);
    if (!n) return;
    n.lastError = reason;
    n.successes = 0;
    if (n.state === 'closed') {
      n.failures++;
      if (n.failures >= this.t.failureThreshold)
        this.move(id, n, 'open', `${n.failures} consecutive failures: ${reason}`);
    } else if (n.state === 'half_open') {
      this.move(id, n, 'open', `probe failed while half-open: ${reason}`);
    }
  }

  /** The cluster took `id` out of routing: open its breaker, so it is probed at the retry interval. */
  markOut(id: string, reason: string): void {
    const n = this.nodes.get(id);
    if (n?.state !== 'closed') return;
    n.successes = 0;
    this.move(id, n, 'open', reason, true);
  }

  /** The cluster routes to `id` again: close its breaker. */
  markUp(id: string, reason: string): void {
    const n = this.nodes.get(id);
    if (!n || n.state === 'closed') return;
    n.failures = 0;
    this.move(id, n, 'closed', reason, true);
  }

  private async readd(id: string, n: NodeHealth): Promise<void> {
    n.readding = true;
    try {
      if (this.beforeReadd) await this.beforeReadd(id);
    } catch (e) {
      n.readding = false;
      this.failure(id, `stale-key purge failed: ${(e as Error).message}`);
      return;
    }
    n.readding = false;
    if (this.nodes.get(id) !== n || n.state !== 'half_open') return;
    n.failures = 0;
    this.move(id, n, 'closed', `${n.successes} consecutive successful probes`);
  }

  private move(id: string, n: NodeHealth, to: BreakerState, reason: string, cluster = false): void {
    const from = n.state;
    if (from === to) return;
    n.state = to;
    n.since = Date.now();
    if (to === 'closed') n.successes = 0;
    this.rebuild();
    this.emit('transition', {
      node: id,
      from,
      to,
      reason,
      at: n.since,
      ...(cluster ? { cluster } : {}),
    });
  }

  private rebuild(): void {
    const next = new Set<string>();
    for (const [id, n] of this.nodes) if (n.state !== 'closed') next.add(id);
    const prev = this.ejected;
    if (next.size !== prev.size || [...next].some((x) => !prev.has(x))) this.ejected = next;
  }
}
