import type { Redis } from 'ioredis';
import { DcacheError } from '../errors.js';
import type { HealthTracker } from '../health/health-tracker.js';
import type { Metrics, RedisOp } from '../metrics.js';
import type { NodePool } from './node-pool.js';
import { redisError } from './redis-errors.js';

type Timer = { observe(v: number): void };

/** Runs one Redis call on a node: times it, feeds passive health, maps failures to stable codes. */
export class Executor {
  private readonly pool: NodePool;
  private readonly health: HealthTracker;
  private readonly metrics: Metrics;
  private readonly timers = new Map<string, Timer>();
  private readonly deadlineMs: number;

  constructor(pool: NodePool, health: HealthTracker, metrics: Metrics, deadlineMs: number) {
    this.pool = pool;
    this.health = health;
    this.metrics = metrics;
    this.deadlineMs = deadlineMs;
  }

  /** Run `fn` on a connection of `node`; rejects with a DcacheError (NODE_TIMEOUT/UNAVAILABLE/ERROR). */
  async run<T>(node: string, op: RedisOp, fn: (r: Redis) => Promise<T>): Promise<T> {
    const client = this.pool.get(node);
    if (!client)
      throw new DcacheError('NODE_UNAVAILABLE', `node ${node} is not in the pool`, { node });
    const start = performance.now();
    try {
      const out = await withDeadline(fn(client.redis()), this.deadlineMs);
      this.timer(node, op).observe((performance.now() - start) / 1_000);
      this.health.success(node);
      return out;
    } catch (e) {
      const err = redisError(node, e);
      this.metrics.redisErrors.inc({ node, op, code: err.code });
      if (err.code !== 'NODE_ERROR') this.health.failure(node, err.message);
      throw err;
    }
  }

  private timer(node: string, op: RedisOp): Timer {
    const k = `${node}\u0000${op}`;
    let t = this.timers.get(k);
    if (!t) {
      t = this.metrics.redisDuration.labels({ node, op });
      this.timers.set(k, t);
    }
    return t;
  }

  /** Forget cached metric children of nodes that left. */
  forget(node: string): void {
    for (const k of [...this.timers.keys()])
      if (k.startsWith(`${node}\u0000`)) this.timers.delete(k);
  }
}

/**
 * Our own deadline per call. ioredis serves one auto-pipeline per connection at a time, so behind a
 * hung node a command can wait for the previous pipeline's timeout before its own starts; this
 * bound holds from the moment the request asked, whatever ioredis queues.
 */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`Command timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
