import type { Redis } from 'ioredis';
import { DcacheError, type ErrorCode } from './errors.js';
import type { StaleJournal } from './health/stale-journal.js';
import type { Metrics } from './metrics.js';
import { FENCED, type Router } from './router.js';
import type { Executor } from './upstream/executor.js';
import { classifyRedisError, execPipeline } from './upstream/redis-errors.js';

/** Per-key failure codes of a batch call. */
export type FailedMap = Record<string, ErrorCode>;

/** Result of a batch GET: raw JSON text per found key. */
export interface BatchGetResult {
  found: Map<string, string>;
  missing: string[];
  failed: FailedMap;
  nodes: number;
}

/** Result of a batch SET or DELETE. */
export interface BatchWriteResult {
  count: number;
  failed: FailedMap;
  nodes: number;
}

type Logger = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

/** Dependencies of the cache service. */
export interface CacheServiceDeps {
  router: Router;
  exec: Executor;
  journal: StaleJournal;
  metrics: Metrics;
  log: Logger;
}

/**
 * What a delete leaves on a key's owners while a copy could still bring the old value back (read
 * repair with R > 1, warm-up copies during the window): a copy is `SET … NX`, which a tombstone
 * blocks, where a plain DEL would let it land. Never a stored value: values are JSON text.
 */
export const TOMBSTONE = '\u0000dcache:deleted';

/** A key of a batch get left unfetched because the answer's byte budget was spent. */
const OVER_BUDGET = Symbol('over budget');

/** Executor options of multi-key commands: their own size may make them slow, not the node. */
const BULK = { chargeTimeout: false } as const;

/** A stored value, or null for an absent or deleted key. */
const live = (v: string | null | undefined): string | null =>
  v === null || v === undefined || v === TOMBSTONE ? null : v;

/** The bounds of one batch get: its answer's value bytes and the keys of one MGET. */
export interface BatchGetLimits {
  /** Most value bytes the answer may carry; keys past it fail with RESPONSE_TOO_LARGE. */
  maxBytes: number;
  /** Most keys in one MGET; a node's chunks run one after the other, each with its deadline. */
  chunkKeys: number;
}

const UNBOUNDED: BatchGetLimits = { maxBytes: Number.POSITIVE_INFINITY, chunkKeys: 1_000_000 };

/**
 * What is left of a batch answer's byte budget. Once a value does not fit, the budget is spent:
 * no further chunk is fetched on any node, and every key not yet answered fails.
 */
class AnswerBudget {
  left: number;
  spent = false;
  constructor(bytes: number) {
    this.left = bytes;
  }
  /** True when `v` fits (and is charged); false spends the budget. */
  take(v: string): boolean {
    if (this.spent) return false;
    // A JS string of n units is at most 3n UTF-8 bytes: count exactly only near the limit.
    const n = v.length * 3 <= this.left ? v.length : Buffer.byteLength(v);
    if (n > this.left) {
      this.spent = true;
      return false;
    }
    this.left -= n;
    return true;
  }
}

type WriteOp =
  | { key: string; del: true }
  | { key: string; del: false; value: string; ttlMs: number };

/**
 * The data path: single-key and batch operations over the ring, with replication (R owners),
 * fallback reads, read repair, warm-up from the previous owner, and the stale-key journal.
 */
export class CacheService {
  private readonly router: Router;
  private readonly exec: Executor;
  private readonly journal: StaleJournal;
  private readonly m: Metrics;
  private readonly log: Logger;

  constructor(d: CacheServiceDeps) {
    this.router = d.router;
    this.exec = d.exec;
    this.journal = d.journal;
    this.m = d.metrics;
    this.log = d.log;
  }

  /** Raw JSON text of `key`, or null when absent. */
  get(key: string): Promise<string | null> {
    const r = this.router;
    // Fast path: one owner; a miss may still be on the previous owner during a warm-up window.
    if (r.replicas === 1) {
      const p = r.primary(key);
      if (p === undefined) return Promise.reject(new DcacheError('NO_NODES'));
      return this.exec
        .run(p, 'get', (c) => c.get(key))
        .then((v) => (v === TOMBSTONE ? null : v !== null ? v : this.warmupRead(key, p)));
    }
    return this.getReplicated(key);
  }

  private async getReplicated(key: string): Promise<string | null> {
    const r = this.router;
    const owners = r.owners(key);
    if (owners.length === 0) throw new DcacheError('NO_NODES');
    let lastErr: DcacheError | undefined;
    let answered = false;
    for (let i = 0; i < owners.length; i++) {
      const node = owners[i] as string;
      let v: string | null;
      try {
        v = await this.exec.run(node, 'get', (c) => c.get(key));
      } catch (e) {
        lastErr = e as DcacheError;
        continue;
      }
      answered = true;
      // Deleted (a tombstone on an owner): the replicas after it hold nothing newer.
      if (v === TOMBSTONE) return null;
      if (v !== null) {
        if (i > 0) {
          this.m.fallbackReads.inc();
          void this.repair(node, owners.slice(0, i), key, v);
        }
        return v;
      }
    }
    const w = await this.warmupRead(key, owners[0]);
    if (w !== null) return w;
    if (!answered && lastErr) throw lastErr;
    return null;
  }

  /** True when `key` exists (follows the same fallbacks as `get`). */
  async exists(key: string): Promise<boolean> {
    if (this.router.replicas === 1 && !this.router.previous()) {
      // No tombstone outlives the warm-up window with one owner, so EXISTS is exact here.
      const p = this.router.primary(key);
      if (p === undefined) throw new DcacheError('NO_NODES');
      return (await this.exec.run(p, 'exists', (c) => c.exists(key))) === 1;
    }
    return (await this.get(key)) !== null;
  }

  /** Store raw JSON text; resolves when the primary owner acknowledged. */
  set(key: string, value: string, ttlMs: number): Promise<void> {
    const owners = this.router.owners(key);
    if (owners.length === 0) return Promise.reject(new DcacheError('NO_NODES'));
    this.journalize(key, owners);
    const write = (c: Redis) => (ttlMs > 0 ? c.set(key, value, 'PX', ttlMs) : c.set(key, value));
    const primary = this.exec.run(owners[0] as string, 'set', write);
    for (let i = 1; i < owners.length; i++) {
      const node = owners[i] as string;
      this.exec.run(node, 'set', write).catch((e: DcacheError) => this.replicaFailed(node, key, e));
    }
    this.invalidatePrevious(key, owners);
    return primary.then(ignore);
  }

  /** Delete `key` everywhere it may live; resolves true when some copy existed. */
  async del(key: string): Promise<boolean> {
    const owners = this.router.owners(key);
    if (owners.length === 0) throw new DcacheError('NO_NODES');
    this.journalize(key, owners);
    const prev = this.router.previousOwner(key, owners[0]);
    const targets = prev && !owners.includes(prev) ? [...owners, prev] : owners;
    const tomb = this.tombstoneMs();
    const results = await Promise.allSettled(
      targets.map((n, i) =>
        // The owners keep a tombstone while copies may race; the previous owner just loses it.
        tomb > 0 && i < owners.length
          ? this.exec
              .run(n, 'del', (c) => c.set(key, TOMBSTONE, 'PX', tomb, 'GET'))
              .then((old) => (live(old) === null ? 0 : 1))
          : this.exec.run(n, 'del', (c) => c.del(key)),
      ),
    );
    const first = results[0] as PromiseSettledResult<number>;
    if (first.status === 'rejected') throw first.reason;
    results.forEach((res, i) => {
      if (i > 0 && res.status === 'rejected')
        this.replicaFailed(targets[i] as string, key, res.reason);
    });
    return results.some((res) => res.status === 'fulfilled' && res.value > 0);
  }

  /**
   * How long a delete leaves a tombstone on the key's owners (0: a plain DEL). With R > 1 read
   * repair may copy a value read just before the delete; during a warm-up window a warm-up copy
   * may. A tombstone outlives the slowest such copy (two calls, each bounded by the deadline).
   */
  private tombstoneMs(): number {
    if (this.router.replicas > 1) return Math.max(10_000, this.router.warmupRemaining());
    return this.router.warmupRemaining();
  }

  /** MGET per node, all nodes in parallel; fallbacks (replicas, previous owner) in further rounds. */
  async batchGet(
    keys: readonly string[],
    limits: BatchGetLimits = UNBOUNDED,
  ): Promise<BatchGetResult> {
    const unique = [...new Set(keys)];
    const budget = new AnswerBudget(limits.maxBytes);
    if (this.router.replicas === 1 && this.router.previous() === undefined)
      return this.batchGetPrimaries(unique, limits.chunkKeys, budget);
    const found = new Map<string, string>();
    // Null prototype: a key named __proto__ must be an ordinary entry.
    const failed: FailedMap = Object.create(null);
    const missed = new Set<string>();
    const candidates = new Map<string, string[]>();
    const prevOf = new Map<string, string>();
    for (const k of unique) {
      const owners = this.router.owners(k);
      const prev = this.router.previousOwner(k, owners[0]);
      if (prev && !owners.includes(prev)) {
        prevOf.set(k, prev);
        candidates.set(k, [...owners, prev]);
      } else candidates.set(k, owners);
    }
    const nodesUsed = new Set<string>();
    let pending = unique;
    for (let round = 0; pending.length > 0; round++) {
      const groups = new Map<string, string[]>();
      for (const k of pending) {
        const node = candidates.get(k)?.[round];
        if (node === undefined) continue;
        let g = groups.get(node);
        if (!g) {
          g = [];
          groups.set(node, g);
        }
        g.push(k);
      }
      if (groups.size === 0) break;
      const next: string[] = [];
      await Promise.all(
        [...groups].map(async ([node, ks]) => {
          nodesUsed.add(node);
          try {
            const vals = await this.mgetChunked(node, ks, limits.chunkKeys, budget);
            const hitsHere: [string, string][] = [];
            ks.forEach((k, i) => {
              const v = vals[i];
              if (
                v === OVER_BUDGET ||
                (v !== null && v !== undefined && v !== TOMBSTONE && !budget.take(v))
              ) {
                // A definite answer for this key: asking the next candidate would not fit either.
                failed[k] = 'RESPONSE_TOO_LARGE';
                missed.delete(k);
                return;
              }
              if (v === TOMBSTONE) {
                // Deleted: a definite miss, not a reason to ask the next candidate.
                missed.add(k);
                return;
              }
              if (v !== null && v !== undefined) {
                found.set(k, v);
                delete failed[k];
                if (round > 0) {
                  hitsHere.push([k, v]);
                  if (prevOf.get(k) === node) this.m.warmupReads.inc({ result: 'hit' });
                  else this.m.fallbackReads.inc();
                }
              } else {
                if (prevOf.get(k) === node) this.m.warmupReads.inc({ result: 'miss' });
                missed.add(k);
                next.push(k);
              }
            });
            if (hitsHere.length > 0) void this.repairMany(node, hitsHere, candidates, prevOf);
          } catch (e) {
            const code = (e as DcacheError).code ?? 'NODE_ERROR';
            for (const k of ks) {
              if (!missed.has(k)) failed[k] = code;
              next.push(k);
            }
          }
        }),
      );
      if (round === 0 && groups.size > 0)
        this.m.batchFanout.observe({ op: 'batch_get' }, groups.size);
      pending = next;
    }
    const missing: string[] = [];
    for (const k of unique) {
      if (found.has(k)) continue;
      if (missed.has(k)) {
        delete failed[k];
        missing.push(k);
      } else if (!failed[k]) failed[k] = 'NO_NODES';
    }
    this.m.hits.inc({ op: 'batch_get' }, found.size);
    this.m.misses.inc({ op: 'batch_get' }, missing.length);
    return { found, missing, failed, nodes: nodesUsed.size };
  }

  /**
   * `batchGet` with one owner per key and no warm-up window: one round, no fallback candidates,
   * so no per-key owner lists or maps (what `batchGet` would compute, without the allocations).
   */
  private async batchGetPrimaries(
    unique: readonly string[],
    chunkKeys: number,
    budget: AnswerBudget,
  ): Promise<BatchGetResult> {
    const found = new Map<string, string>();
    // Null prototype: a key named __proto__ must be an ordinary entry.
    const failed: FailedMap = Object.create(null);
    const groups = new Map<string, string[]>();
    for (const k of unique) {
      const node = this.router.primary(k);
      if (node === undefined) {
        failed[k] = 'NO_NODES';
        continue;
      }
      const g = groups.get(node);
      if (g) g.push(k);
      else groups.set(node, [k]);
    }
    const calls: Promise<void>[] = [];
    for (const [node, ks] of groups) {
      calls.push(
        this.mgetChunked(node, ks, chunkKeys, budget).then(
          (vals) => {
            for (let i = 0; i < ks.length; i++) {
              const raw = vals[i];
              if (raw === OVER_BUDGET) {
                failed[ks[i] as string] = 'RESPONSE_TOO_LARGE';
                continue;
              }
              const v = live(raw);
              if (v === null) continue;
              if (budget.take(v)) found.set(ks[i] as string, v);
              else failed[ks[i] as string] = 'RESPONSE_TOO_LARGE';
            }
          },
          (e: unknown) => {
            const code = (e as DcacheError).code ?? 'NODE_ERROR';
            for (const k of ks) failed[k] = code;
          },
        ),
      );
    }
    await Promise.all(calls);
    if (groups.size > 0) this.m.batchFanout.observe({ op: 'batch_get' }, groups.size);
    const missing: string[] = [];
    for (const k of unique) if (!found.has(k) && failed[k] === undefined) missing.push(k);
    this.m.hits.inc({ op: 'batch_get' }, found.size);
    this.m.misses.inc({ op: 'batch_get' }, missing.length);
    return { found, missing, failed, nodes: groups.size };
  }

  /**
   * MGET `ks` on `node` in chunks of at most `chunkKeys`, one after the other: no command carries
   * more than a chunk, so none runs past the deadline because of the batch's own size, and a
   * timeout of one is not charged to the node's health (a probe or a single-key call would be).
   * Once the budget is spent, the keys of chunks not yet sent are OVER_BUDGET.
   */
  private async mgetChunked(
    node: string,
    ks: string[],
    chunkKeys: number,
    budget: AnswerBudget,
  ): Promise<(string | null | typeof OVER_BUDGET)[]> {
    if (ks.length <= chunkKeys) return this.exec.run(node, 'mget', (c) => c.mget(ks), BULK);
    const out: (string | null | typeof OVER_BUDGET)[] = [];
    for (let i = 0; i < ks.length; i += chunkKeys) {
      if (budget.spent) {
        for (let j = i; j < ks.length; j++) out.push(OVER_BUDGET);
        break;
      }
      const part = ks.slice(i, i + chunkKeys);
      const vals = await this.exec.run(node, 'mget', (c) => c.mget(part), BULK);
      for (const v of vals) out.push(v);
    }
    return out;
  }

  /** SET many keys: one pipeline per node, all nodes in parallel; a key fails when its primary did. */
  batchSet(
    items: readonly { key: string; value: string; ttlMs: number }[],
  ): Promise<BatchWriteResult> {
    return this.batchWrite(
      items.map((it) => ({ key: it.key, del: false, value: it.value, ttlMs: it.ttlMs })),
      'batch_set',
    );
  }

  /** DEL many keys: one pipeline per node, all nodes in parallel. */
  batchDel(keys: readonly string[]): Promise<BatchWriteResult> {
    return this.batchWrite(
      [...new Set(keys)].map((key) => ({ key, del: true })),
      'batch_del',
    );
  }

  private async batchWrite(
    ops: WriteOp[],
    op: 'batch_set' | 'batch_del',
  ): Promise<BatchWriteResult> {
    // Per node: the ops to send, and for each the index into `ops` and whether it is the primary's.
    const plan = new Map<
      string,
      { ops: WriteOp[]; idx: number[]; primary: boolean[]; owner: boolean[] }
    >();
    const add = (node: string, i: number, o: WriteOp, primary: boolean, owner = true) => {
      let p = plan.get(node);
      if (!p) {
        p = { ops: [], idx: [], primary: [], owner: [] };
        plan.set(node, p);
      }
      p.ops.push(o);
      p.idx.push(i);
      p.primary.push(primary);
      p.owner.push(owner);
    };
    const tomb = this.tombstoneMs();
    const failed: FailedMap = Object.create(null);
    const ok = new Uint8Array(ops.length);
    ops.forEach((o, i) => {
      const owners = this.router.owners(o.key);
      if (owners.length === 0) {
        failed[o.key] = 'NO_NODES';
        return;
      }
      this.journalize(o.key, owners);
      owners.forEach((n, j) => {
        add(n, i, o, j === 0);
      });
      const prev = this.router.previousOwner(o.key, owners[0]);
      if (prev && !owners.includes(prev)) add(prev, i, { key: o.key, del: true }, false, false);
    });
    if (plan.size > 0) this.m.batchFanout.observe({ op }, plan.size);
    await Promise.all(
      [...plan].map(async ([node, p]) => {
        try {
          const res = await this.exec.run(
            node,
            'pipeline',
            (c) => {
              const pl = c.pipeline();
              for (let j = 0; j < p.ops.length; j++) {
                const o = p.ops[j] as WriteOp;
                if (o.del && tomb > 0 && p.owner[j]) pl.set(o.key, TOMBSTONE, 'PX', tomb, 'GET');
                else if (o.del) pl.del(o.key);
                else if (o.ttlMs > 0) pl.set(o.key, o.value, 'PX', o.ttlMs);
                else pl.set(o.key, o.value);
              }
              return execPipeline(pl);
            },
            BULK,
          );
          res.forEach(([err, val], j) => {
            const i = p.idx[j] as number;
            const key = (ops[i] as WriteOp).key;
            if (err) {
              if (p.primary[j]) failed[key] = classifyRedisError(err);
              else this.replicaFailed(node, key, err);
            } else if (p.primary[j] || (ops[i] as WriteOp).del) {
              // A delete counts when any copy existed (DEL's count, or the value a tombstone
              // replaced); a set when its primary acknowledged.
              const existed =
                typeof val === 'number' ? val > 0 : live(val as string | null) !== null;
              if ((ops[i] as WriteOp).del ? existed : true) ok[i] = 1;
            }
          });
        } catch (e) {
          const code = (e as DcacheError).code ?? 'NODE_ERROR';
          p.idx.forEach((i, j) => {
            const key = (ops[i] as WriteOp).key;
            if (p.primary[j]) failed[key] = code;
            else this.replicaFailed(node, key, e);
          });
        }
      }),
    );
    let count = 0;
    ops.forEach((o, i) => {
      if (failed[o.key]) return;
      if (ok[i]) count++;
    });
    return { count, failed, nodes: plan.size };
  }

  /**
   * Record `key` for every away node that the ring walk from the key passes before reaching the
   * nodes written now: each would serve the key were it back (a returning home, or an interim
   * owner that went away too), so each must not serve its old value later.
   */
  private journalize(key: string, owners: readonly string[]): void {
    const away = this.router.away;
    // A fenced write fails before it reaches any node: nothing to remember.
    if (away.size === 0 || owners[0] === FENCED) return;
    let served = 0;
    for (const n of this.router.homeWalk(key, away.size + owners.length)) {
      if (owners.includes(n)) {
        if (++served >= owners.length) return;
      } else if (away.has(n)) this.journal.record(n, key);
    }
  }

  /** During the warm-up window, drop the previous owner's copy so it cannot resurface later. */
  private invalidatePrevious(key: string, owners: readonly string[]): void {
    const prev = this.router.previousOwner(key, owners[0]);
    if (prev && !owners.includes(prev)) {
      this.exec.run(prev, 'del', (c) => c.del(key)).catch(() => {});
    }
  }

  /** On a miss at the new owner during the warm-up window, read the previous owner and copy back. */
  private async warmupRead(key: string, current: string | undefined): Promise<string | null> {
    const prev = this.router.previousOwner(key, current);
    if (prev === undefined) return null;
    let v: string | null;
    try {
      v = live(await this.exec.run(prev, 'get', (c) => c.get(key)));
    } catch {
      this.m.warmupReads.inc({ result: 'miss' });
      return null;
    }
    this.m.warmupReads.inc({ result: v === null ? 'miss' : 'hit' });
    if (v !== null && current !== undefined) void this.copy(prev, current, key, v, true);
    return v;
  }

  private async repair(
    source: string,
    targets: readonly string[],
    key: string,
    value: string,
  ): Promise<void> {
    for (const t of targets) await this.copy(source, t, key, value, false);
  }

  private async repairMany(
    source: string,
    hits: [string, string][],
    candidates: Map<string, string[]>,
    prevOf: Map<string, string>,
  ): Promise<void> {
    let pttls: number[];
    try {
      pttls = await this.exec.run(source, 'pttl', async (c) => {
        const pl = c.pipeline();
        for (const [k] of hits) pl.pttl(k);
        const res = await execPipeline(pl);
        return res.map(([err, v]) => (err ? -2 : (v as number)));
      });
    } catch {
      return;
    }
    const byTarget = new Map<
      string,
      { key: string; value: string; pttl: number; warmup: boolean }[]
    >();
    hits.forEach(([key, value], i) => {
      const pttl = pttls[i] ?? -2;
      if (pttl === -2) return;
      const cands = candidates.get(key) ?? [];
      const at = cands.indexOf(source);
      for (const t of cands.slice(0, at)) {
        let list = byTarget.get(t);
        if (!list) {
          list = [];
          byTarget.set(t, list);
        }
        list.push({ key, value, pttl, warmup: prevOf.get(key) === source });
      }
    });
    for (const [t, list] of byTarget) for (const it of list) this.journalize(it.key, [t]);
    await Promise.all(
      [...byTarget].map(([t, list]) =>
        this.exec
          .run(t, 'pipeline', (c) => {
            const pl = c.pipeline();
            for (const it of list) {
              if (it.pttl > 0) pl.set(it.key, it.value, 'PX', it.pttl, 'NX');
              else pl.set(it.key, it.value, 'NX');
            }
            return execPipeline(pl);
          })
          .then(() => {
            const warm = list.filter((it) => it.warmup).length;
            if (warm > 0) this.m.warmupCopies.inc(warm);
            if (list.length > warm) this.m.readRepairs.inc(list.length - warm);
          })
          .catch(() => {}),
      ),
    );
  }

  /** Copy `key` to `target` with its remaining TTL, never over a newer value (NX). */
  private async copy(
    source: string,
    target: string,
    key: string,
    value: string,
    warmup: boolean,
  ): Promise<void> {
    try {
      const pttl = await this.exec.run(source, 'pttl', (c) => c.pttl(key));
      if (pttl === -2) return;
      // A copy is a write to a node that is not the key's home while the home is away.
      this.journalize(key, [target]);
      await this.exec.run(target, 'set', (c) =>
        pttl > 0 ? c.set(key, value, 'PX', pttl, 'NX') : c.set(key, value, 'NX'),
      );
      if (warmup) this.m.warmupCopies.inc();
      else this.m.readRepairs.inc();
    } catch {
      // best effort: the value is still served from the source
    }
  }

  private replicaFailed(node: string, key: string, err: unknown): void {
    this.m.replicaWriteFailures.inc({ node });
    // A replica that missed a write holds an old value: purge it before it is read again.
    this.journal.record(node, key);
    this.log.warn({ node, err: (err as Error)?.message }, 'replica write failed');
  }
}

const ignore = (): void => {};
