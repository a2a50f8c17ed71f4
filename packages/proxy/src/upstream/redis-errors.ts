import { DcacheError, type ErrorCode } from '../errors.js';
import type { PipelineResults } from './resp/resp-connection.js';

/** Map a Redis call's failure to a stable code: timeout, unavailable (no connection) or node error. */
export function classifyRedisError(err: unknown): ErrorCode {
  if (err instanceof DcacheError) return err.code;
  const e = err as { name?: string; message?: string; code?: string };
  const msg = e?.message ?? '';
  if (msg.includes('timed out') || e?.code === 'ETIMEDOUT') return 'NODE_TIMEOUT';
  if (e?.name === 'ReplyError') {
    // NOAUTH/LOADING/MASTERDOWN mean the node cannot serve at all; others are command errors.
    return /^(NOAUTH|LOADING|MASTERDOWN|BUSY)/.test(msg) ? 'NODE_UNAVAILABLE' : 'NODE_ERROR';
  }
  return 'NODE_UNAVAILABLE';
}

/**
 * True for an error reply that says the node cannot serve (not loaded, no auth, demoted, out of
 * memory, failing saves, busy script): a failure of the node, not an answer to pass on.
 */
export function isUnhealthyReply(err: Error): boolean {
  return /^(NOAUTH|LOADING|MASTERDOWN|BUSY|READONLY|MISCONF|OOM)\b/.test(err.message);
}

/** A DcacheError for a failed Redis call on `node`. */
export function redisError(node: string, err: unknown): DcacheError {
  const code = classifyRedisError(err);
  if (err instanceof DcacheError) return err;
  const reason = (err as Error)?.message ?? String(err);
  // The node answers but cannot take writes: demoted to a replica, out of memory, or refusing
  // writes after a failed save. Still a 502 for the request, and a failure of the node.
  const unhealthy = code === 'NODE_ERROR' && /^(READONLY|MISCONF|OOM)\b/.test(reason);
  return new DcacheError(
    code,
    `node ${node}: ${reason}`,
    unhealthy ? { node, unhealthy } : { node },
  );
}

/**
 * `exec()` a pipeline. A pipeline that could not be sent, or whose connection closed before every
 * reply came, rejects as a whole (never a list of per-command connection errors that would read
 * as Redis error replies and as a success for passive health).
 */
export function execPipeline(pl: { exec(): Promise<PipelineResults> }): Promise<PipelineResults> {
  return pl.exec();
}
