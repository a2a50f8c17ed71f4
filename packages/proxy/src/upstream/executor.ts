import { DcacheError } from '../errors.js';
import type { HealthTracker } from '../health/health-tracker.js';
import { type Metrics, REDIS_DURATION_BUCKETS, type RedisOp } from '../metrics.js';
import { FENCED } from '../router.js';
import type { NodePool } from './node-pool.js';
import { redisError } from './redis-errors.js';
import type { RedisConnection } from './resp/redis-connection.js';

type Timer = { observe(v: number): void };

/** A timer this late (ms) means the process stood still; what it measured is not the node's doing. */
export const STALL_MS = 250;

/** Options of one call. */
export interface RunOptions {
  /**
   * False for calls whose own size can make them slow (multi-key batches): their timeout is not
   * charged to the node's health. Connection failures still are.
   */
  chargeTimeout?: boolean;
}

/** Runs one Redis call on a node: times it, feeds passive health, maps failures to stable codes. */
export class Executor {
  private readonly pool: NodePool;
  private readonly health: HealthTracker;
  private readonly metrics: Metrics;
  private readonly timers = new Map<string, Map<RedisOp, Timer>>();
  private readonly deadlineMs: number;

  constructor(pool: NodePool, health: HealthTracker, metrics: Metrics, deadlineMs: number) {
    this.pool = pool;
    this.health = health;
    this.metrics = metrics;
    this.deadlineMs = deadlineMs;
  }

  /** Run `fn` on a connection of `node`; rejects with a DcacheError (NODE_TIMEOUT/UNAVAILABLE/ERROR). */
  run<T>(
    node: string,
    op: RedisOp,
    fn: (r: RedisConnection) => Promise<T>,
    opts?: RunOptions,
  ): Promise<T> {
    if (node === FENCED)
      return Promise.reject(
        new DcacheError(
          'NODE_UNAVAILABLE',
          "the key's routing is changing (a node leaves or rejoins and peers have not all confirmed it yet); retry shortly",
        ),
      );
    const client = this.pool.get(node);
    if (!client)
      return Promise.reject(
        new DcacheError('NODE_UNAVAILABLE', `node ${node} is not in the pool`, { node }),
      );
    const start = performance.now();
    // One promise per call (no async frame, no second promise for the deadline): whichever of
    // the reply and our deadline comes first settles it, the other is ignored.
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown, stalled = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        const err = redisError(node, e);
        this.metrics.redisErrors.inc({ node, op, code: err.code });
        if (err.code !== 'NODE_ERROR' && !stalled) this.health.failure(node, err.message);
        else if (err.code === 'NODE_ERROR' && err.details?.unhealthy === true)
          this.health.failure(node, err.message);
        reject(err);
      };
      // The one deadline of the call, from the moment the request asked: the connection has no
      // timer per command (a late reply is matched to its slot and dropped here).
      const deadline = setTimeout(() => {
        // A deadline that fires far too late says this process stood still (paused, starved),
        // not that the node is slow: the call fails, the node's health is not charged.
        const late = performance.now() - start - this.deadlineMs;
        fail(
          new Error(`Command timed out after ${this.deadlineMs} ms`),
          late > STALL_MS || opts?.chargeTimeout === false,
        );
      }, this.deadlineMs);
      let p: Promise<T>;
      try {
        p = fn(client.conn());
      } catch (e) {
        fail(e);
        return;
      }
      p.then((v) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.timer(node, op).observe((performance.now() - start) / 1_000);
        this.health.success(node);
        resolve(v);
      }, fail);
    });
  }

  private timer(node: string, op: RedisOp): Timer {
    let byOp = this.timers.get(node);
    if (!byOp) {
      byOp = new Map();
      this.timers.set(node, byOp);
    }
    let t = byOp.get(op);
    if (!t) {
      t = this.metrics.localHistogram(
        this.metrics.redisDuration,
        { node, op },
        REDIS_DURATION_BUCKETS,
      );
      byOp.set(op, t);
    }
    return t;
  }

  /** Forget cached metric children of nodes that left. */
  forget(node: string): void {
    this.timers.delete(node);
  }
}
