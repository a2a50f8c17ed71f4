/**
 * Keys written or deleted while their home node was ejected. Before that node serves again, these
 * keys are deleted on it, so it never answers with a value that changed meanwhile. Bounded: past
 * `limit` keys the journal only remembers that it overflowed, and the node is flushed instead.
 */
export class StaleJournal {
  private readonly limit: number;
  private readonly keys = new Map<string, Set<string>>();
  private readonly overflowed = new Set<string>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Remember that `key` changed while `node` was ejected. */
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

  /** What to do before `node` rejoins: delete these keys, or flush it; clears the entry. */
  take(node: string): { flush: true } | { flush: false; keys: string[] } {
    if (this.overflowed.delete(node)) {
      this.keys.delete(node);
      return { flush: true };
    }
    const set = this.keys.get(node);
    this.keys.delete(node);
    return { flush: false, keys: set ? [...set] : [] };
  }

  /** Put keys back after a failed purge (they are still stale on the node). */
  restore(node: string, taken: { flush: true } | { flush: false; keys: string[] }): void {
    if (taken.flush) this.overflowed.add(node);
    else for (const k of taken.keys) this.record(node, k);
  }

  /** Number of keys remembered for `node` (Infinity once overflowed). */
  size(node: string): number {
    return this.overflowed.has(node) ? Number.POSITIVE_INFINITY : (this.keys.get(node)?.size ?? 0);
  }
}
