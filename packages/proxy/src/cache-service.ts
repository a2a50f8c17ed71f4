import {
  type BatchOutcome,
  codeOf,
  dedupe,
  type FailedMap,
  fail,
  fanOut,
  outcome,
  pick,
  split,
  takeUnrouted,
} from './batch-splitter.js';
import { DcacheError, type ErrorCode } from './errors.js';
import type { StaleJournal } from './health/stale-journal.js';
import type { Metrics } from './metrics.js';
import { FENCED, type Router, type Routing } from './router.js';
import type { Executor } from './upstream/executor.js';
import { classifyRedisError, execPipeline } from './upstream/redis-errors.js';

export type { BatchOutcome, FailedMap };

/**
 * A batch get's answer: its outcome, and per distinct key (in request order) the stored JSON
 * text or null (missing, or failed: see `failed`).
 */
export interface BatchGetResult<V extends Value = string> extends BatchOutcome {
  keys: readonly string[];
  values: readonly (V | null)[];
  missing: string[];
}

/** A batch SET's or DELETE's answer: its outcome and the keys stored or deleted. */
export interface BatchWriteResult extends BatchOutcome {
  count: number;
}

/** One command's answer in a pipeline: `[error, value]`. */
type PipelineResult = Awaited<ReturnType<typeof execPipeline>>[number];

/** The answer of a command a pipeline gave no reply for (never expected): a failure of it. */
const NO_REPLY = [new Error('the pipeline gave no reply for this command'), null] as PipelineResult;

/** Where a write lands now: the away nodes and the ring walk over every live node. */
type Placement = Pick<Routing, 'away' | 'homeWalk'>;

type Logger = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

/** Dependencies of the cache service. */
export interface CacheServiceDeps {
  router: Router;
  exec: Executor;
  /** Values as Buffers on the nodes' binary-safe connections (the RESP front end's service). */
  raw?: boolean;
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
const TOMBSTONE_BYTES = Buffer.from(TOMBSTONE);

/** A stored value: JSON text on the REST side, bytes on the RESP side. */
export type Value = string | Buffer;

/** True when `v` is the tombstone a delete left (text or bytes). */
export function isTombstone(v: Value | null | undefined): boolean {
  if (typeof v === 'string') return v === TOMBSTONE;
  return v != null && v.length === TOMBSTONE_BYTES.length && v.equals(TOMBSTONE_BYTES);
}

/** A key of a batch get left unfetched because the answer's byte budget was spent. */
const OVER_BUDGET = Symbol('over budget');

/** Executor options of multi-key commands: their own size may make them slow, not the node. */
const BULK = { chargeTimeout: false } as const;

/** What a batch get fetched for a key: its raw value, nil, or OVER_BUDGET. */
type Fetched = Value | null | typeof OVER_BUDGET;

/** Charge every stored value of `vals` to `budget`; one that does not fit becomes OVER_BUDGET. */
function charge(vals: Fetched[], budget: AnswerBudget): Fetched[] {
  for (let j = 0; j < vals.length; j++) {
    const v = vals[j];
    if (v != null && v !== OVER_BUDGET && !isTombstone(v) && !budget.take(v)) vals[j] = OVER_BUDGET;
  }
  return vals;
}

/** A stored value, or null for an absent or deleted key. */
const live = <T extends Value>(v: T | null | undefined): T | null =>
  v === null || v === undefined || isTombstone(v) ? null : v;

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
  take(v: Value): boolean {
    if (this.spent) return false;
    // A JS string of n units is at most 3n UTF-8 bytes: count exactly only near the limit.
    const n = typeof v !== 'string' || v.length * 3 <= this.left ? v.length : Buffer.byteLength(v);
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
  | { key: string; del: false; value: Value; ttlMs: number };

/**
 * The data path: single-key and batch operations over the ring, with replication (R owners),
 * fallback reads, read repair, warm-up from the previous owner, and the stale-key journal.
 */
export class CacheService<V extends Value = string> {
  private readonly router: Router;
  private readonly exec: Pick<Executor, 'run'>;
  private readonly journal: StaleJournal;
  private readonly m: Metrics;
  private readonly log: Logger;

  constructor(d: CacheServiceDeps) {
    this.router = d.router;
    const exec = d.exec;
    this.exec = d.raw
      ? { run: (node, op, fn, opts) => exec.run(node, op, fn, { ...opts, raw: true }) }
      : exec;
    this.journal = d.journal;
    this.m = d.metrics;
    this.log = d.log;
  }

  /** Raw JSON text of `key`, or null when absent. */
  get(key: string): Promise<V | null> {
    const r = this.router;
    // Fast path: one owner; a miss may still be on the previous owner during a warm-up window.
    if (r.replicas === 1) {
      // The snapshot of the request: a miss asks the previous owner it names, not a newer one's.
      const s = r.snapshot;
      const p = r.primaryOn(s, key);
      if (p === undefined) return Promise.reject(new DcacheError('NO_NODES'));
      return this.exec
        .run(p, 'get', (c) => c.get(key) as Promise<V | null>)
        .then((v) =>
          isTombstone(v)
            ? null
            : v !== null
              ? v
              : this.warmupRead(key, p, r.previousOwnerOn(s, r.previous(), key, p)),
        );
    }
    return this.getReplicated(key);
  }

  private async getReplicated(key: string): Promise<V | null> {
    const route = this.router.route();
    const owners = route.owners(key);
    if (owners.length === 0) throw new DcacheError('NO_NODES');
    let lastErr: DcacheError | undefined;
    let answered = false;
    for (let i = 0; i < owners.length; i++) {
      const node = owners[i] as string;
      let v: V | null;
      try {
        v = await this.exec.run(node, 'get', (c) => c.get(key) as Promise<V | null>);
      } catch (e) {
        lastErr = e as DcacheError;
        continue;
      }
      answered = true;
      // Deleted (a tombstone on an owner): the replicas after it hold nothing newer.
      if (isTombstone(v)) return null;
      if (v !== null) {
        if (i > 0) {
          this.m.fallbackReads.inc();
          void this.repair(node, owners.slice(0, i), key, v);
        }
        return v;
      }
    }
    const w = await this.warmupRead(key, owners[0], route.previousOwner(key, owners[0]));
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
  set(key: string, value: V, ttlMs: number): Promise<void> {
    const owners = this.router.owners(key);
    if (owners.length === 0) return Promise.reject(new DcacheError('NO_NODES'));
    this.journalize(this.router, key, owners);
    const primary = this.setOn(owners[0] as string, key, value, ttlMs);
    for (let i = 1; i < owners.length; i++) {
      const node = owners[i] as string;
      this.setOn(node, key, value, ttlMs).catch((e: DcacheError) =>
        this.replicaFailed(node, key, e),
      );
    }
    this.invalidatePrevious(key, owners);
    return primary.then(ignore);
  }

  private setOn(node: string, key: string, value: V, ttlMs: number): Promise<unknown> {
    return this.exec.run(node, 'set', (c) =>
      ttlMs > 0 ? c.set(key, value, 'PX', ttlMs) : c.set(key, value),
    );
  }

  /** Delete `key` everywhere it may live; resolves true when some copy existed. */
  async del(key: string): Promise<boolean> {
    const owners = this.router.owners(key);
    if (owners.length === 0) throw new DcacheError('NO_NODES');
    this.journalize(this.router, key, owners);
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

  /**
   * MGET per node, all nodes in parallel, on one routing view; fallbacks (replicas, previous
   * owner) in further rounds. The outcome carries the status and the per-key failures.
   */
  async batchGet(
    keys: readonly string[],
    limits: BatchGetLimits = UNBOUNDED,
  ): Promise<BatchGetResult<V>> {
    const route = this.router.route();
    const unique = dedupe(keys);
    const n = unique.length;
    const budget = new AnswerBudget(limits.maxBytes);
    const values = new Array<V | null>(n).fill(null);
    const codes = new Array<ErrorCode | undefined>(n);
    if (route.replicas === 1 && route.previous === undefined)
      await this.getPrimaries(route, unique, values, codes, limits.chunkKeys, budget);
    else await this.getRounds(route, unique, values, codes, limits.chunkKeys, budget);
    const missing: string[] = [];
    let hits = 0;
    for (let i = 0; i < n; i++) {
      if (values[i] !== null) hits++;
      else if (codes[i] === undefined) missing.push(unique[i] as string);
    }
    this.m.hits.inc({ op: 'batch_get' }, hits);
    this.m.misses.inc({ op: 'batch_get' }, missing.length);
    const res = outcome(unique, codes) as BatchGetResult<V>;
    res.keys = unique;
    res.values = values;
    res.missing = missing;
    return res;
  }

  /** One owner per key and no warm-up window: one round, no candidate lists. */
  private async getPrimaries(
    route: Routing,
    unique: readonly string[],
    values: (V | null)[],
    codes: (ErrorCode | undefined)[],
    chunkKeys: number,
    budget: AnswerBudget,
  ): Promise<void> {
    const plan = split(unique.length, (i) => route.primary(unique[i] as string));
    const none = takeUnrouted(plan);
    if (none) fail(codes, none, 'NO_NODES');
    const raw = new Array<Fetched>(unique.length);
    const errs = new Array<unknown>(unique.length);
    await fanOut(
      plan,
      (node, idx) => this.mgetChunked(node, pick(unique, idx), chunkKeys, budget),
      raw,
      errs,
    );
    if (plan.size > 0) this.m.batchFanout.observe({ op: 'batch_get' }, plan.size);
    for (const idx of plan.values())
      for (const i of idx) {
        if (errs[i] !== undefined) codes[i] = codeOf(errs[i]);
        else if (raw[i] === OVER_BUDGET) codes[i] = 'RESPONSE_TOO_LARGE';
        else values[i] = live(raw[i] as V | null);
      }
  }

  /**
   * Replicated or warm-up reads: round r asks each pending key's r-th candidate (its owners, then
   * its previous owner). A tombstone or an over-budget value is a definite answer; a nil or a
   * failed node sends the key to its next candidate. Hits past the first candidate are copied back.
   */
  private async getRounds(
    route: Routing,
    unique: readonly string[],
    values: (V | null)[],
    codes: (ErrorCode | undefined)[],
    chunkKeys: number,
    budget: AnswerBudget,
  ): Promise<void> {
    const n = unique.length;
    const cands = new Array<string[]>(n);
    const prevOf = new Array<string | undefined>(n);
    for (let i = 0; i < n; i++) {
      const k = unique[i] as string;
      const owners = route.owners(k);
      const prev = route.previousOwner(k, owners[0]);
      if (prev && !owners.includes(prev)) {
        prevOf[i] = prev;
        owners.push(prev);
      }
      cands[i] = owners;
    }
    const missed = new Uint8Array(n);
    let pending: number | number[] = n;
    for (let round = 0; ; round++) {
      const plan = split(pending, (i) => (cands[i] as string[])[round]);
      // No candidate left at this round: the key keeps what earlier rounds said.
      takeUnrouted(plan);
      if (plan.size === 0) break;
      const raw = new Array<Fetched>(n);
      const errs = new Array<unknown>(n);
      await fanOut(
        plan,
        (node, idx) => this.mgetChunked(node, pick(unique, idx), chunkKeys, budget),
        raw,
        errs,
      );
      if (round === 0) this.m.batchFanout.observe({ op: 'batch_get' }, plan.size);
      const next: number[] = [];
      for (const [node, idx] of plan) {
        let copies: number[] | undefined;
        for (const i of idx) {
          if (errs[i] !== undefined) {
            if (!missed[i]) codes[i] = codeOf(errs[i]);
            next.push(i);
            continue;
          }
          const v = raw[i];
          if (v === OVER_BUDGET) {
            // A definite answer for this key: asking the next candidate would not fit either.
            codes[i] = 'RESPONSE_TOO_LARGE';
            missed[i] = 0;
          } else if (isTombstone(v)) {
            // Deleted: a definite miss, not a reason to ask the next candidate.
            missed[i] = 1;
          } else if (v !== null && v !== undefined) {
            values[i] = v as V;
            codes[i] = undefined;
            if (round > 0) {
              if (copies) copies.push(i);
              else copies = [i];
              if (prevOf[i] === node) this.m.warmupReads.inc({ result: 'hit' });
              else this.m.fallbackReads.inc();
            }
          } else {
            if (prevOf[i] === node) this.m.warmupReads.inc({ result: 'miss' });
            missed[i] = 1;
            next.push(i);
          }
        }
        if (copies) void this.repairMany(node, copies, unique, values, cands, prevOf);
      }
      if (next.length === 0) break;
      pending = next;
    }
    for (let i = 0; i < n; i++) {
      if (values[i] !== null) continue;
      if (missed[i]) codes[i] = undefined;
      else if (codes[i] === undefined) codes[i] = 'NO_NODES';
    }
  }

  /**
   * MGET `ks` on `node` in chunks of at most `chunkKeys`, one after the other: no command carries
   * more than a chunk, so none runs past the deadline because of the batch's own size, and a
   * timeout of one is not charged to the node's health (a probe or a single-key call would be).
   * Each stored value is charged to the budget as its chunk arrives; one that does not fit, and
   * every key of a chunk not sent once the budget is spent, is OVER_BUDGET.
   */
  private async mgetChunked(
    node: string,
    ks: string[],
    chunkKeys: number,
    budget: AnswerBudget,
  ): Promise<Fetched[]> {
    if (ks.length <= chunkKeys)
      return charge(await this.exec.run(node, 'mget', (c) => c.mget(ks), BULK), budget);
    const out: Fetched[] = [];
    for (let i = 0; i < ks.length; i += chunkKeys) {
      if (budget.spent) {
        for (let j = i; j < ks.length; j++) out.push(OVER_BUDGET);
        break;
      }
      const part = ks.slice(i, i + chunkKeys);
      const vals = charge(await this.exec.run(node, 'mget', (c) => c.mget(part), BULK), budget);
      for (const v of vals) out.push(v);
    }
    return out;
  }

  /** SET many keys: one pipeline per node, all nodes in parallel; a key fails when its primary did. */
  batchSet(items: readonly { key: string; value: V; ttlMs: number }[]): Promise<BatchWriteResult> {
    return this.batchWrite(
      items.map((it) => ({ key: it.key, del: false, value: it.value, ttlMs: it.ttlMs })),
      'batch_set',
    );
  }

  /** DEL many keys: one pipeline per node, all nodes in parallel. */
  batchDel(keys: readonly string[]): Promise<BatchWriteResult> {
    return this.batchWrite(
      dedupe(keys).map((key) => ({ key, del: true })),
      'batch_del',
    );
  }

  /**
   * Writes of distinct keys on one routing view. Each key has W slots (its R owners, then its
   * previous owner during a warm-up window); slot e = key * W + rank is split by its node like a
   * get's key, so a node's pipeline holds its slots in key order, and a node that fails fails
   * exactly its slots: the key when it was the primary's, a replica failure otherwise.
   */
  private async batchWrite(
    ops: WriteOp[],
    op: 'batch_set' | 'batch_del',
  ): Promise<BatchWriteResult> {
    const route = this.router.route();
    const n = ops.length;
    const R = route.replicas;
    const W = route.previous === undefined ? R : R + 1;
    const tomb = R > 1 ? Math.max(10_000, route.warmupRemaining) : route.warmupRemaining;
    const codes = new Array<ErrorCode | undefined>(n);
    const nodeOf = new Array<string | undefined>(n * W);
    const journal = route.away.size > 0;
    for (let i = 0; i < n; i++) {
      const key = (ops[i] as WriteOp).key;
      if (R === 1 && W === 1 && !journal) {
        const p = route.primary(key);
        if (p === undefined) codes[i] = 'NO_NODES';
        else nodeOf[i] = p;
        continue;
      }
      const owners = route.owners(key);
      if (owners.length === 0) {
        codes[i] = 'NO_NODES';
        continue;
      }
      if (journal) this.journalize(route, key, owners);
      for (let j = 0; j < owners.length; j++) nodeOf[i * W + j] = owners[j];
      if (W > R) {
        const prev = route.previousOwner(key, owners[0]);
        if (prev && !owners.includes(prev)) nodeOf[i * W + R] = prev;
      }
    }
    const plan = split(n * W, (e) => nodeOf[e]);
    takeUnrouted(plan);
    if (plan.size > 0) this.m.batchFanout.observe({ op }, plan.size);
    const res = new Array<PipelineResult>(n * W);
    const errs = new Array<unknown>(n * W);
    await fanOut(
      plan,
      (node, slots) =>
        this.exec.run(
          node,
          'pipeline',
          (c) => {
            const pl = c.pipeline();
            for (const e of slots) {
              const o = ops[(e / W) | 0] as WriteOp;
              const rank = e % W;
              // Owners keep a tombstone while copies may race; the previous owner just loses it.
              if (o.del && tomb > 0 && rank < R) pl.set(o.key, TOMBSTONE, 'PX', tomb, 'GET');
              else if (o.del || rank >= R) pl.del(o.key);
              else if (o.ttlMs > 0) pl.set(o.key, o.value, 'PX', o.ttlMs);
              else pl.set(o.key, o.value);
            }
            return execPipeline(pl);
          },
          BULK,
        ),
      res,
      errs,
    );
    const ok = new Uint8Array(n);
    for (const [node, slots] of plan)
      for (const e of slots) {
        const i = (e / W) | 0;
        const o = ops[i] as WriteOp;
        const primary = e % W === 0;
        const failedNode = errs[e];
        if (failedNode !== undefined) {
          if (primary) codes[i] = codeOf(failedNode);
          else this.replicaFailed(node, o.key, failedNode);
          continue;
        }
        const [err, val] = res[e] ?? NO_REPLY;
        if (err) {
          if (primary) codes[i] = classifyRedisError(err);
          else this.replicaFailed(node, o.key, err);
        } else if (primary || o.del) {
          // A delete counts when any copy existed (DEL's count, or the value a tombstone
          // replaced); a set when its primary acknowledged.
          if (!o.del || (typeof val === 'number' ? val > 0 : live(val as Value | null) !== null))
            ok[i] = 1;
        }
      }
    let count = 0;
    for (let i = 0; i < n; i++) if (ok[i] && codes[i] === undefined) count++;
    const out = outcome(
      ops.map((o) => o.key),
      codes,
    ) as BatchWriteResult;
    out.count = count;
    return out;
  }

  /**
   * Before a write of `key` on `owners` that does not go through this service (RESP commands
   * forwarded as they are): journal it for away nodes and drop the previous owner's copy during
   * a warm-up window, as `set` does.
   */
  noteWrite(route: Routing, key: string, owners: readonly string[]): void {
    this.journalize(route, key, owners);
    this.invalidatePrevious(key, owners);
  }

  /** A replica missed a write of `key` made outside this service: purge it before it is read. */
  writeFailed(node: string, key: string, err: unknown): void {
    this.replicaFailed(node, key, err);
  }

  /**
   * Record `key` for every away node that the ring walk from the key passes before reaching the
   * nodes written now: each would serve the key were it back (a returning home, or an interim
   * owner that went away too), so each must not serve its old value later.
   */
  private journalize(at: Placement, key: string, owners: readonly string[]): void {
    const away = at.away;
    // A fenced write fails before it reaches any node: nothing to remember.
    if (away.size === 0 || owners[0] === FENCED) return;
    let served = 0;
    for (const n of at.homeWalk(key, away.size + owners.length)) {
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

  /** On a miss at the new owner during the warm-up window, read the previous owner `prev` and copy back. */
  private async warmupRead(
    key: string,
    current: string | undefined,
    prev: string | undefined,
  ): Promise<V | null> {
    if (prev === undefined) return null;
    let v: V | null;
    try {
      v = live(await this.exec.run(prev, 'get', (c) => c.get(key) as Promise<V | null>));
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
    value: V,
  ): Promise<void> {
    for (const t of targets) await this.copy(source, t, key, value, false);
  }

  /**
   * Copy the values `values[i]` read from `source` (positions `hits`) back to each candidate asked
   * before it, with their remaining TTLs, never over a newer value (NX). Best effort.
   */
  private async repairMany(
    source: string,
    hits: readonly number[],
    keys: readonly string[],
    values: readonly (V | null)[],
    cands: readonly string[][],
    prevOf: readonly (string | undefined)[],
  ): Promise<void> {
    let pttls: number[];
    try {
      pttls = await this.exec.run(source, 'pttl', async (c) => {
        const pl = c.pipeline();
        for (const i of hits) pl.pttl(keys[i] as string);
        const res = await execPipeline(pl);
        return res.map(([err, v]) => (err ? -2 : (v as number)));
      });
    } catch {
      return;
    }
    const pttlOf = new Map<number, number>();
    const byTarget = new Map<string, number[]>();
    hits.forEach((i, j) => {
      const pttl = pttls[j] ?? -2;
      if (pttl === -2) return;
      pttlOf.set(i, pttl);
      const c = cands[i] as string[];
      for (let r = 0; r < c.length && c[r] !== source; r++) {
        const t = c[r] as string;
        const list = byTarget.get(t);
        if (list) list.push(i);
        else byTarget.set(t, [i]);
      }
    });
    // Journalled on the newest view, not the request's: the copy is written now, and a node that
    // went away since the request began must still learn of it.
    for (const [t, list] of byTarget)
      for (const i of list) this.journalize(this.router, keys[i] as string, [t]);
    await Promise.all(
      [...byTarget].map(([t, list]) =>
        this.exec
          .run(t, 'pipeline', (c) => {
            const pl = c.pipeline();
            for (const i of list) {
              const key = keys[i] as string;
              const value = values[i] as V;
              const pttl = pttlOf.get(i) as number;
              if (pttl > 0) pl.set(key, value, 'PX', pttl, 'NX');
              else pl.set(key, value, 'NX');
            }
            return execPipeline(pl);
          })
          .then(() => {
            let warm = 0;
            for (const i of list) if (prevOf[i] === source) warm++;
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
    value: V,
    warmup: boolean,
  ): Promise<void> {
    try {
      const pttl = await this.exec.run(source, 'pttl', (c) => c.pttl(key));
      if (pttl === -2) return;
      // A copy is a write to a node that is not the key's home while the home is away.
      this.journalize(this.router, key, [target]);
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
