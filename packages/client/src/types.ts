import type { ErrorCode, FailedMap } from './errors.js';

/** A JSON value, as stored and returned by the cache. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A TTL: a duration string (`"500ms"`, `"30s"`, `"1h30m"`) or a number of seconds; 0 = no expiry. */
export type Ttl = string | number;

/** Options every call accepts. */
export interface CallOptions {
  /** Cancels the call; it then rejects with `DcacheAbortError`. */
  signal?: AbortSignal;
  /** Timeout of this call in milliseconds (overrides the client's); 0 = none. */
  timeout?: number;
}

/** Options of batch calls. */
export interface BatchOptions extends CallOptions {
  /**
   * Keys per request (default 1000, the server's default `limits.max_batch_keys`). Larger
   * batches are split into several requests and their results merged.
   */
  chunkSize?: number;
  /** Requests in flight at once for a split batch (default 4). */
  concurrency?: number;
}

/** `PUT /api/v1/cache/{key}` answer. */
export interface SetResult {
  key: string;
  /** TTL applied, in milliseconds (0 = no expiry). */
  ttl_ms: number;
}

/** `DELETE /api/v1/cache/{key}` answer. */
export interface DeleteResult {
  key: string;
  deleted: true;
}

/** One item of a batch write. */
export interface BatchItem {
  value: unknown;
  ttl?: Ttl;
}

/** `POST /api/v1/cache/batch` answer (also for 207 and 503 `ALL_FAILED`). */
export interface BatchSetResult {
  stored: number;
  failed: FailedMap;
}

/** `POST /api/v1/cache/batch/get` answer (also for 207 and 503 `ALL_FAILED`). */
export interface BatchGetResult<T = JsonValue> {
  items: Record<string, T>;
  missing: string[];
  failed: FailedMap;
}

/** `DELETE /api/v1/cache/batch` answer (also for 207 and 503 `ALL_FAILED`). */
export interface BatchDeleteResult {
  deleted: number;
  failed: FailedMap;
}

/** One page of `GET /api/v1/cache/keys`. */
export interface KeysPage {
  keys: string[];
  /** Opaque cursor of the next page; null when the listing is complete. */
  cursor: string | null;
  /** Nodes that could not be listed for this page (ejected or failing). */
  skipped_nodes: string[];
}

/** Options of a key listing. */
export interface KeysOptions extends CallOptions {
  /** Redis glob pattern (default `*`). */
  pattern?: string;
  /** Keys per page, 1-10000 (server default 1000). */
  limit?: number;
  /** Cursor from the previous page. */
  cursor?: string;
}

/** Admin state of a ring member. */
export type MemberState = 'active' | 'draining';

/** Circuit-breaker state of a node as the proxy sees it. */
export type BreakerState = 'closed' | 'open' | 'half_open' | (string & Record<never, never>);

/** A member of the ring as `GET /api/v1/ring` shows it. */
export interface RingNodeView {
  id: string;
  address: string;
  weight: number;
  state: MemberState | (string & Record<never, never>);
  healthy: boolean;
  breaker: BreakerState;
  /** Fraction of the hash space the node owns (0 for nodes outside the ring, e.g. draining). */
  share: number;
  /** Version of the node's membership entry. */
  version: number;
}

/** A peer proxy as `GET /api/v1/ring` lists it (fields beyond `url` depend on the server). */
export interface RingPeer {
  url: string;
  /** The peer's node id, once learned. */
  id?: string | null;
  /** Configured as a seed (else learned from another peer). */
  seed?: boolean;
  /** ISO time of the last successful exchange. */
  last_success?: string | null;
  last_success_age_ms?: number | null;
  version?: number | null;
  checksum?: string | null;
  /** Its membership checksum equals ours. */
  in_sync?: boolean;
  /** Consecutive failed exchanges. */
  failures?: number;
  failures_total?: number;
  last_error?: string | null;
}

/** `GET /api/v1/ring` (and the answer of every ring change). */
export interface RingView {
  version: number;
  checksum: string;
  hash: 'murmur' | 'fnv1a_64' | 'md5' | (string & Record<never, never>);
  /** Hash tag (two characters such as `{}`) when the server reports one. */
  hash_tag?: string;
  replication_factor: number;
  nodes: RingNodeView[];
  /** Peer proxies this one exchanges membership with. */
  peers: RingPeer[];
  /** This proxy's own id in membership changes. */
  node_id?: string;
  /** Whether the membership came from the seed list (no state file, no peer). */
  seeded?: boolean;
  /** `on` when a cluster token is configured. */
  peer_sync?: 'on' | 'off';
}

/** `GET /api/v1/ring/owner/{key}`. */
export interface OwnerInfo {
  key: string;
  /** Node that serves the key now (first healthy owner), null when none can. */
  node: string | null;
  /** Owner on the ring ignoring health. */
  home: string;
  /** Further replicas (replication factor > 1). */
  replicas: string[];
  /** The key's 32-bit ring hash. */
  hash: number;
  ring_version: number;
}

/** Body of `POST /api/v1/ring/nodes`. */
export interface AddNodeOptions extends CallOptions {
  /** Weight of the node (integer ≥ 1, default 1). */
  weight?: number;
  /** A name as the node id instead of `host:port` (placement hashes the id). */
  id?: string;
}

/** Body of `PATCH /api/v1/ring/nodes/{id}`. */
export interface UpdateNodeChange {
  weight?: number;
  state?: MemberState;
}

/** Figures a node reports, as `GET /api/v1/cache/stats` lists them. */
export interface NodeStats {
  id: string;
  address: string;
  weight: number;
  membership: string;
  state: BreakerState;
  healthy: boolean;
  keys?: number;
  expires?: number;
  used_memory?: number;
  hits?: number;
  misses?: number;
  ops?: number;
  ops_per_sec?: number;
  connected_clients?: number;
  /** Present when the node could not be asked. */
  error?: { code: ErrorCode; message: string };
}

/** `GET /api/v1/cache/stats`. */
export interface Stats {
  nodes: NodeStats[];
  total: {
    keys: number;
    expires: number;
    used_memory: number;
    hits: number;
    misses: number;
    ops: number;
    ops_per_sec: number;
    connected_clients: number;
    nodes: number;
    healthy_nodes: number;
  };
  proxy: {
    requests: number;
    hits: number;
    misses: number;
    hit_ratio: number | null;
    uptime_seconds: number;
    ring_version: number;
    ring_checksum: string;
    replication_factor: number;
  };
}

/** A node in `GET /health`. */
export interface HealthNode {
  id: string;
  address: string;
  membership: string;
  state: BreakerState;
  healthy: boolean;
  connected: boolean;
  /** ISO time of the last health change. */
  since: string;
  /** Why it cannot serve, as a class (refused, timeout, auth, tls, not_allowed, dns, unavailable). */
  error_class?: string;
  /** The message behind it: only for callers who may make admin calls. */
  last_error?: string;
  /** The connection's own error (TLS, AUTH), with the same visibility as `last_error`. */
  connection_error?: string;
}

/** `GET /health` (returned for 200 and for 503 `down` alike). */
export interface Health {
  status: 'ok' | 'degraded' | 'down';
  nodes: HealthNode[];
  ring: {
    version: number;
    checksum: string;
    nodes: number;
    serving: number;
    replication_factor: number;
  };
}

/** `DELETE /api/v1/cache/`. */
export interface FlushResult {
  flushed_nodes: number;
  /** Node id → error code for nodes that could not be flushed. */
  failed: FailedMap;
}
