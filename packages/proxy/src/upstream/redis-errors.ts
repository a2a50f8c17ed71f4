import { DcacheError, type ErrorCode } from '../errors.js';

/** Map an ioredis failure to a stable code: timeout, unavailable (no connection) or node error. */
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

/** A pipeline's results: `[error, value]` per command, as ioredis gives them. */
export type PipelineResults = [Error | null, unknown][];

/**
 * `exec()` a pipeline, but reject when every command failed for lack of a connection: ioredis
 * resolves a pipeline on an unwritable connection with one error per command, which would
 * otherwise read as Redis error replies (and as a success for passive health).
 */
export async function execPipeline(pl: {
  exec(): Promise<PipelineResults | null>;
}): Promise<PipelineResults> {
  const res = (await pl.exec()) ?? [];
  const first = res[0]?.[0];
  if (first && res.every(([e]) => e !== null && classifyRedisError(e) !== 'NODE_ERROR'))
    throw first;
  return res;
}
