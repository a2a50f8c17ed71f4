/**
 * @dcache/client — typed client of the dcache REST and admin API (undici keep-alive pool,
 * per-call timeout and AbortSignal, typed errors).
 */
export {
  DcacheClient,
  type DcacheClientOptions,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_URL,
} from './client.js';
export {
  DcacheAbortError,
  DcacheClientError,
  DcacheNetworkError,
  DcacheTimeoutError,
  type ErrorCode,
  type FailedMap,
  isDcacheClientError,
  KNOWN_ERROR_CODES,
  type KnownErrorCode,
  type NetworkErrorCode,
} from './errors.js';
export type {
  AddNodeOptions,
  BatchDeleteResult,
  BatchGetResult,
  BatchItem,
  BatchOptions,
  BatchSetResult,
  BreakerState,
  CallOptions,
  DeleteResult,
  FlushResult,
  Health,
  HealthNode,
  JsonValue,
  KeysOptions,
  KeysPage,
  MemberState,
  NodeStats,
  OwnerInfo,
  RingNodeView,
  RingView,
  SetResult,
  Stats,
  Ttl,
  UpdateNodeChange,
} from './types.js';
