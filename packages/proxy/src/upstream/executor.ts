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

/** Calls that may change data: counted until they settle (`writesSettled`). */
const WRITE_OPS: ReadonlySet<RedisOp> = new Set<RedisOp>(['set', 'del', 'pipeline', 'flushdb']);

/** Write calls begun since the last `writesSettled()` and still in flight. */
interface WriteGeneration {
  open: number;
  idle?: () => void;
}

/** Options of one call. */
export interface RunOptions {
  /**
   * False for calls whose own size can make them slow (multi-key batches): their timeout is not
   * charged to the node's health. Connection failures still are.
   */
  chargeTimeout?: boolean;
  /** Use the node's binary-safe connection (bulk replies as Buffers): the RESP front end's. */
  raw?: boolean;
}

/** Runs one Redis call on a node: times it, feeds passive health, maps failures to stable codes. */
export class Executor {
  private readonly pool: NodePool;
  private readonly health: HealthTracker;
  private readonly metrics: Metrics;
  private readonly timers = new Map<string, Map<RedisOp, Timer>>();
  private readonly deadlineMs: number;
  private writes: WriteGeneration = { open: 0 };
  private settledBefore: Promise<void> = Promise.resolve();

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
    const gen = WRITE_OPS.has(op) ? this.writes : undefined;
    if (gen) gen.open++;
    // One promise per call (no async frame, no second promise for the deadline): whichever of
    // the reply and our deadline comes first settles it, the other is ignored.
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown, stalled = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (gen && --gen.open === 0) gen.idle?.();
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
        p = fn(opts?.raw === true ? client.rawConn() : client.conn());
      } catch (e) {
        fail(e);
        return;
      }
      p.then((v) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (gen && --gen.open === 0) gen.idle?.();
        this.timer(node, op).observe((performance.now() - start) / 1_000);
        this.health.success(node);
        resolve(v);
      }, fail);
    });
  }

  /**
   * Resolves once every write call in flight now has settled, acknowledged or failed (each within
   * the deadline); calls begun later are not waited for.
   */
  writesSettled(): Promise<void> {
    const g = this.writes;
    this.writes = { open: 0 };
    const mine =
      g.open === 0
        ? undefined
        : new Promise<void>((resolve) => {
            g.idle = resolve;
          });
    this.settledBefore = Promise.all([this.settledBefore, mine]).then(() => {});
    return this.settledBefore;
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
