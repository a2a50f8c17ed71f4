/** What one proxy knows of the keys changed while a node was out: a list, or "too many / unknown". */
export type JournalTake = { flush: true } | { flush: false; keys: string[] };

/**
 * Keys written or deleted while their home node was out of routing (ejected or draining). Before
 * that node serves again, the keys of every proxy's journal are deleted on it, so it never answers
 * with a value that changed meanwhile. Bounded: past `limit` keys the journal only remembers that
 * it overflowed, and the node is flushed instead. A proxy that did not see a node leave (it started
 * while the node was out) cannot vouch for the writes before its start: `incomplete` says so.
 */
export class StaleJournal {
  private readonly limit: number;
  private readonly keys = new Map<string, Set<string>>();
  private readonly overflowed = new Set<string>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Remember that `key` changed while `node` was out. */
  record(node: string, key: string): void {
    if (this.overflowed.has(node)) return;
    let set = this.keys.get(node);
    if (!set) {
      set = new Set();
      this.keys.set(node, set);
    }
    set.add(key);
    if (set.size > this.limit) {
      this.keys.delete(node);
      this.overflowed.add(node);
    }
  }

  /** This proxy cannot list what changed while `node` was out (flush it before it serves). */
  incomplete(node: string): void {
    this.keys.delete(node);
    this.overflowed.add(node);
  }

  /** What to delete on `node` before it rejoins, without clearing it. */
  peek(node: string): JournalTake {
    if (this.overflowed.has(node)) return { flush: true };
    return { flush: false, keys: [...(this.keys.get(node) ?? [])] };
  }

  /** What to do before `node` rejoins: delete these keys, or flush it; clears the entry. */
  take(node: string): JournalTake {
    const t = this.peek(node);
    this.discard(node);
    return t;
  }

  /** Forget `node` (it serves again, or left the ring). */
  discard(node: string): void {
    this.overflowed.delete(node);
    this.keys.delete(node);
  }

  /** Put keys back after a failed purge (they are still stale on the node). */
  restore(node: string, taken: JournalTake): void {
    if (taken.flush) this.overflowed.add(node);
    else for (const k of taken.keys) this.record(node, k);
  }

  /** Number of keys remembered for `node` (Infinity once overflowed). */
  size(node: string): number {
    return this.overflowed.has(node) ? Number.POSITIVE_INFINITY : (this.keys.get(node)?.size ?? 0);
  }
}
