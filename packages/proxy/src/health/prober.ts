import { STALL_MS } from '../upstream/executor.js';
import type { NodePool } from '../upstream/node-pool.js';
import type { RedisConnection } from '../upstream/resp/redis-connection.js';
import type { HealthTracker } from './health-tracker.js';

/** Prober settings. */
export interface ProberOptions {
  interval: number;
  retryInterval: number;
  timeout: number;
  /** Called with the PING latency in seconds, or an error. */
  onProbe?: (node: string, seconds: number, err?: unknown) => void;
}

/** Rejects when the node is a replica (ROLE answers `slave`). */
async function assertPrimary(r: RedisConnection): Promise<void> {
  const role = (await r.role()) as unknown[];
  if (role[0] !== 'master')
    throw new Error(`READONLY the node is a ${String(role[0])}, not a primary`);
}

/** PINGs every node: healthy ones every `interval`, ejected ones every `retryInterval`. */
export class Prober {
  private readonly pool: NodePool;
  private readonly health: HealthTracker;
  private readonly opts: ProberOptions;
  private timer: NodeJS.Timeout | undefined;
  private readonly nextAt = new Map<string, number>();
  private readonly inflight = new Set<string>();
  private stopped = true;

  constructor(pool: NodePool, health: HealthTracker, opts: ProberOptions) {
    this.pool = pool;
    this.health = health;
    this.opts = opts;
  }

  /** Start probing (idempotent). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = Math.max(10, Math.min(this.opts.interval, this.opts.retryInterval) / 4);
    this.timer = setInterval(() => this.tick(), tick);
    this.timer.unref();
  }

  /** Stop probing. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Probe every node once now (start-up, tests). */
  async probeAll(): Promise<void> {
    await Promise.all(this.pool.all().map((n) => this.probe(n.id)));
  }

  private tick(): void {
    const now = Date.now();
    for (const n of this.pool.all()) {
      if (this.inflight.has(n.id)) continue;
      const due = this.nextAt.get(n.id) ?? 0;
      if (now >= due) void this.probe(n.id);
    }
  }

  private async probe(id: string): Promise<void> {
    const node = this.pool.get(id);
    if (!node || this.inflight.has(id)) return;
    this.inflight.add(id);
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // An ejected node comes back only as a primary: a replica answers PING but refuses
      // writes (READONLY), which is what ejected it.
      const check =
        this.health.state(id) === 'closed'
          ? node.pingAll()
          : node.pingAll().then(() => assertPrimary(node.conn()));
      await Promise.race([
        check,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`PING timed out after ${this.opts.timeout} ms`)),
            this.opts.timeout,
          );
        }),
      ]);
      const secs = (performance.now() - start) / 1_000;
      this.opts.onProbe?.(id, secs);
      this.health.success(id, true);
    } catch (e) {
      const took = performance.now() - start;
      this.opts.onProbe?.(id, took / 1_000, e);
      // A timeout that fired far too late: this process stood still, not the node.
      if (took - this.opts.timeout <= STALL_MS)
        this.health.failure(id, `probe: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
      this.inflight.delete(id);
      const every =
        this.health.state(id) === 'closed' ? this.opts.interval : this.opts.retryInterval;
      this.nextAt.set(id, Date.now() + every);
    }
  }
}
