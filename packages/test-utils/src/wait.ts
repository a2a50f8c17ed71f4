/** Options for `waitFor`. */
export interface WaitOptions {
  timeout?: number;
  interval?: number;
  /** What is awaited, for the timeout error. */
  message?: string;
}

/** Poll `cond` until it returns true; rejects after `timeout` ms (a thrown error fails at once). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  { timeout = 10_000, interval = 50, message = 'condition' }: WaitOptions = {},
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeout)
      throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await sleep(interval);
  }
}

/** Promise-based delay (for pacing loops, never as a wait for a condition). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
