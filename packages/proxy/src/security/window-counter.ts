/** The count of one key in its current window and the milliseconds until the window ends. */
export interface WindowCount {
  current: number;
  ttl: number;
}

/**
 * Fixed-window counters per key (client address), bounded in memory: past `capacity` keys, the
 * oldest window is dropped first. Shared by the rate limit of both HTTP paths and by the
 * failed-authentication throttle.
 */
export class WindowCounter {
  private readonly windowMs: number;
  private readonly capacity: number;
  private readonly now: () => number;
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(windowMs: number, capacity = 100_000, now: () => number = Date.now) {
    this.windowMs = windowMs;
    this.capacity = capacity;
    this.now = now;
  }

  /** Count one event of `key`; returns the count including it. */
  hit(key: string): WindowCount {
    const t = this.now();
    let w = this.windows.get(key);
    if (w === undefined || t - w.start >= this.windowMs) {
      if (w !== undefined) this.windows.delete(key);
      else if (this.windows.size >= this.capacity) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
      w = { start: t, count: 0 };
      // Re-inserted so that Map order stays the order in which windows started.
      this.windows.set(key, w);
    }
    w.count++;
    return { current: w.count, ttl: this.windowMs - (t - w.start) };
  }

  /** The count of `key` in its current window, without counting. */
  peek(key: string): WindowCount {
    const t = this.now();
    const w = this.windows.get(key);
    if (w === undefined || t - w.start >= this.windowMs) return { current: 0, ttl: 0 };
    return { current: w.count, ttl: this.windowMs - (t - w.start) };
  }

  /** Keys with a window (live or expired but not yet dropped). */
  get size(): number {
    return this.windows.size;
  }
}
