import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const tracked = new Map<ChildProcess, string | undefined>();
const cleanups = new Set<() => Promise<void>>();
let hooked = false;

function hook(): void {
  if (hooked) return;
  hooked = true;
  // Ordering: 'exit' handlers must be synchronous, so the last resort is SIGKILL by pid.
  process.once('exit', killTrackedSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killTrackedSync();
      process.exit(130);
    });
  }
}

/** Remember a child process so it is killed (and its dir removed) when this process exits. */
export function trackPid(child: ChildProcess, dir?: string): void {
  hook();
  tracked.set(child, dir);
  child.once('exit', () => {
    if (tracked.get(child) === undefined) tracked.delete(child);
  });
}

/** Register an async cleanup run by `cleanupAll()`. */
export function registerCleanup(fn: () => Promise<void>): void {
  hook();
  cleanups.add(fn);
}

/** Run every registered cleanup (use in afterAll); safe to call twice. */
export async function cleanupAll(): Promise<void> {
  const fns = [...cleanups];
  cleanups.clear();
  await Promise.allSettled(fns.map((f) => f()));
  killTrackedSync();
}

function killTrackedSync(): void {
  for (const [child, dir] of tracked) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  tracked.clear();
}
