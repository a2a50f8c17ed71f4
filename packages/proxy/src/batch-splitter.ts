import { groupByOwner, NO_OWNER } from '@dcache/ring';
import type { DcacheError, ErrorCode } from './errors.js';

/**
 * The one split/merge of batch calls (get, set, delete), as Envoy's MGET splitter: positions are
 * split by node, each node's answers are merged back by original position, and a node that fails
 * fails exactly its positions. Everything here but `fanOut` is pure; `fanOut` does its I/O only
 * through the call it is given.
 */

/** Per-key failure codes of a batch call (null prototype: `__proto__` is an ordinary key). */
export type FailedMap = Record<string, ErrorCode>;

/** Positions split by node: node id → the positions it serves, in order. */
export type Split = Map<string, number[]>;

/** What a batch call answers, whatever its operation: the HTTP status and the per-key failures. */
export interface BatchOutcome {
  /** 200 nothing failed, 207 some keys failed, 503 ALL_FAILED, 413 when every key failed for size. */
  status: 200 | 207 | 413 | 503;
  /** Distinct keys of the request. */
  unique: number;
  /** Keys in `failed`. */
  failedCount: number;
  /** Failed keys and why. */
  failed: FailedMap;
}

/** Split positions (a count or a list) by the node `ownerOf` gives; none goes under NO_OWNER. */
export function split(
  positions: number | readonly number[],
  ownerOf: (i: number) => string | undefined,
): Split {
  return groupByOwner(positions, ownerOf);
}

/** Remove and return the positions that no node serves (undefined when every one has a node). */
export function takeUnrouted(plan: Split): number[] | undefined {
  const none = plan.get(NO_OWNER);
  if (none) plan.delete(NO_OWNER);
  return none;
}

/** The items at `idx`, in that order: a node's share of a list. */
export function pick<T>(items: readonly T[], idx: readonly number[]): T[] {
  const out = new Array<T>(idx.length);
  for (let j = 0; j < idx.length; j++) out[j] = items[idx[j] as number] as T;
  return out;
}

/** Merge one node's answers back by original position: `out[idx[j]] = vals[j]`. */
export function place<T>(out: T[], idx: readonly number[], vals: readonly T[]): void {
  for (let j = 0; j < idx.length; j++) out[idx[j] as number] = vals[j] as T;
}

/** Fail every position of `idx` with `code`. */
export function fail(
  codes: (ErrorCode | undefined)[],
  idx: readonly number[],
  code: ErrorCode,
): void {
  for (let j = 0; j < idx.length; j++) codes[idx[j] as number] = code;
}

/** The catalogue code of a failed node call (NODE_ERROR for anything that carries none). */
export function codeOf(e: unknown): ErrorCode {
  return (e as DcacheError | undefined)?.code ?? 'NODE_ERROR';
}

/**
 * One call per node of `plan`, all in parallel; each answer (one value per position, in the
 * order of its positions) is merged into `out`, and a call that fails sets its positions in
 * `errors` (to its error, or null when it threw nothing) and no other. Never rejects.
 */
export async function fanOut<T>(
  plan: Split,
  call: (node: string, idx: readonly number[]) => Promise<readonly T[]>,
  out: T[],
  errors: unknown[],
): Promise<void> {
  const calls: Promise<void>[] = [];
  const failed = (idx: readonly number[], e: unknown) => {
    for (let j = 0; j < idx.length; j++) errors[idx[j] as number] = e ?? null;
  };
  for (const [node, idx] of plan) {
    let p: Promise<readonly T[]>;
    try {
      p = call(node, idx);
    } catch (e) {
      failed(idx, e);
      continue;
    }
    calls.push(
      p.then(
        (vals) => place(out, idx, vals),
        (e: unknown) => failed(idx, e),
      ),
    );
  }
  await Promise.all(calls);
}

/** The distinct keys of `keys`, in the order of their first occurrence. */
export function dedupe(keys: readonly string[]): string[] {
  if (keys.length < 2) return keys.slice();
  const seen = new Set<string>();
  const out: string[] = [];
  for (const k of keys) {
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(k);
  }
  return out;
}

/**
 * The outcome of a batch over distinct `keys` with `codes[i]` set for each failed key: 200 when
 * none failed, 207 when some did, 503 ALL_FAILED when all did (413 RESPONSE_TOO_LARGE when all
 * did because the answer was full: the client must ask for less, not retry).
 */
export function outcome(
  keys: readonly string[],
  codes: readonly (ErrorCode | undefined)[],
): BatchOutcome {
  const failed: FailedMap = Object.create(null);
  let count = 0;
  let tooLarge = 0;
  for (let i = 0; i < keys.length; i++) {
    const c = codes[i];
    if (c === undefined) continue;
    failed[keys[i] as string] = c;
    count++;
    if (c === 'RESPONSE_TOO_LARGE') tooLarge++;
  }
  const status = count === 0 ? 200 : count < keys.length ? 207 : tooLarge === count ? 413 : 503;
  return { status, unique: keys.length, failedCount: count, failed };
}
