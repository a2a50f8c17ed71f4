/**
 * Every Prometheus metric of the proxy, declared in one place.
 *
 * Rules kept here (and checked by test/metrics.test.ts with `promtool check metrics`):
 * - names carry the `dcache_` prefix, base units (`_seconds`, `_bytes`) and `_total` on counters;
 * - every label has a bounded set of values: a route template, a node id, an op name, a
 *   state — never a cache key, a raw URL or an error message;
 * - each call to {@link createMetrics} owns a fresh Registry, so tests can build several
 *   apps in one process without "metric already registered" errors.
 *
 * docs/monitoring.md describes each metric; docker/grafana/dashboards/ read them.
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type LabelValues,
  Registry,
} from 'prom-client';

/** HTTP status class used as the `status_class` label. */
export type StatusClass = '2xx' | '3xx' | '4xx' | '5xx';

/** Redis commands timed per node (`op` label of the dcache_redis_command_* metrics). */
export const REDIS_OPS = [
  'get',
  'set',
  'del',
  'mget',
  'pipeline',
  'scan',
  'info',
  'ping',
  'flushdb',
  'pttl',
  'exists',
  'resp_read',
  'resp_write',
  'command',
  'dbsize',
] as const;
/** One of {@link REDIS_OPS}. */
export type RedisOp = (typeof REDIS_OPS)[number];

/** Read operations that count cache hits and misses (`op` label of hits/misses). */
export const CACHE_READ_OPS = ['get', 'batch_get', 'head'] as const;
/** One of {@link CACHE_READ_OPS}. */
export type CacheReadOp = (typeof CACHE_READ_OPS)[number];

/** Batch operations (`op` label of dcache_batch_fanout_nodes and dcache_batch_keys). */
export const BATCH_OPS = ['batch_get', 'batch_set', 'batch_del'] as const;
/** One of {@link BATCH_OPS}. */
export type BatchOp = (typeof BATCH_OPS)[number];

/** Circuit-breaker states (`state` label of dcache_node_breaker_state). */
export const BREAKER_STATES = ['closed', 'open', 'half_open'] as const;
/** One of {@link BREAKER_STATES}. */
export type BreakerState = (typeof BREAKER_STATES)[number];

/** Node states counted by dcache_ring_nodes: admin states plus `ejected` (health). */
export const RING_NODE_STATES = ['active', 'ejected', 'draining', 'removed'] as const;
/** One of {@link RING_NODE_STATES}. */
export type RingNodeState = (typeof RING_NODE_STATES)[number];

/** Where a membership change came from (`source` label of dcache_membership_changes_total). */
export const MEMBERSHIP_SOURCES = ['admin', 'peer', 'file', 'health'] as const;
/** One of {@link MEMBERSHIP_SOURCES}. */
export type MembershipSource = (typeof MEMBERSHIP_SOURCES)[number];

/** Default prom-client gauges whose `_total` suffix breaks Prometheus naming rules. */
const MISNAMED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Latency buckets for HTTP requests, 0.5 ms to 5 s. */
export const HTTP_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** Latency buckets for single Redis commands, 0.1 ms to 5 s. */
export const REDIS_DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** Buckets for the number of nodes one batch touches. */
export const FANOUT_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 32, 64];
/** Buckets for the number of keys in one batch (the default limit is 1,000). */
export const BATCH_KEYS_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];
/** Buckets for membership convergence delay, 10 ms to 5 min. */
export const CONVERGENCE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Maps an HTTP status code to its class label; anything below 300 is 2xx, 500+ is 5xx. */
export function statusClass(code: number): StatusClass {
  if (code >= 500) return '5xx';
  if (code >= 400) return '4xx';
  if (code >= 300) return '3xx';
  return '2xx';
}

/** A counter series on the hot path: counts in a plain number (see {@link createMetrics}). */
export interface LocalCounter {
  inc(n?: number): void;
}

/** A histogram series on the hot path: buckets in plain arrays (see {@link createMetrics}). */
export interface LocalHistogram {
  observe(value: number): void;
}

type HistogramEntry = { sum: number; count: number; bucketValues: Record<string, number> };
type Internal = { hashMap: Record<string, HistogramEntry & { labels: Record<string, unknown> }> };

/** The prom-client key of the series with exactly `labels` (after it was created). */
function seriesKey(metric: AnyMetric, labels: Record<string, string>): string {
  const map = (metric as unknown as Internal).hashMap;
  const n = Object.keys(labels).length;
  for (const [k, e] of Object.entries(map)) {
    const l = e.labels ?? {};
    if (Object.keys(l).length === n && Object.entries(labels).every(([a, b]) => l[a] === b))
      return k;
  }
  throw new Error(`no series ${JSON.stringify(labels)}`);
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Register Node.js process metrics (CPU, RSS, event-loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

/** Builds a fresh Registry holding every dcache metric; see docs/monitoring.md. */
export function createMetrics(opts: MetricsOptions = {}) {
  const register = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register });
    // prom-client names three gauges `*_total`, which `promtool check metrics` rejects
    // (only counters may end in _total); the per-type `nodejs_active_*{type}` gauges remain.
    for (const name of MISNAMED_DEFAULT_METRICS) register.removeSingleMetric(name);
  }
  const registers = [register];

  // Hot-path series (HTTP requests and durations, Redis command durations, hits and misses, the
  // fast-path count, requests in flight) count in plain numbers and hand their sums to prom-client
  // when the registry is read, through `collect`: a prom-client child hashes and validates its
  // labels on every call, which cost about 1.5 µs per request. Scrapes see the same totals.
  type Local = { labels: Record<string, string>; flush(): void; child: unknown };
  const local = new Map<string, Local>();
  const flushLocal = () => {
    for (const s of local.values()) s.flush();
  };
  const localId = (metric: AnyMetric, labels: Record<string, string>) =>
    `${(metric as unknown as { name: string }).name}\u0000${JSON.stringify(labels)}`;

  /** The hot-path child of a counter series (one per label set, created at 0). */
  function localCounter<T extends string>(
    metric: Counter<T>,
    labels: LabelValues<T> & Record<string, string>,
  ): LocalCounter {
    const id = localId(metric as AnyMetric, labels);
    let s = local.get(id);
    if (!s) {
      let n = 0;
      metric.inc(labels, 0);
      s = {
        labels,
        child: {
          inc: (k = 1) => {
            n += k;
          },
        } satisfies LocalCounter,
        flush: () => {
          if (n === 0) return;
          metric.inc(labels, n);
          n = 0;
        },
      };
      local.set(id, s);
    }
    return s.child as LocalCounter;
  }

  /** The hot-path child of a histogram series (one per label set, created empty). */
  function localHistogram<T extends string>(
    metric: Histogram<T>,
    labels: LabelValues<T> & Record<string, string>,
    bounds: readonly number[],
  ): LocalHistogram {
    const id = localId(metric as AnyMetric, labels);
    let s = local.get(id);
    if (!s) {
      const counts = new Float64Array(bounds.length);
      let sum = 0;
      let count = 0;
      metric.zero(labels);
      const key = seriesKey(metric as AnyMetric, labels);
      const map = () => (metric as unknown as Internal).hashMap;
      s = {
        labels,
        child: {
          observe: (v: number) => {
            let i = 0;
            while (i < bounds.length && v > (bounds[i] as number)) i++;
            if (i < bounds.length) counts[i] = (counts[i] as number) + 1;
            sum += v;
            count++;
          },
        } satisfies LocalHistogram,
        flush: () => {
          if (count === 0) return;
          // Written into prom-client's own series (version pinned; test/metrics.test.ts
          // compares the exposition with a histogram fed through observe()).
          let e: HistogramEntry | undefined = map()[key];
          if (!e) {
            metric.zero(labels);
            e = map()[key] as HistogramEntry;
          }
          e.sum += sum;
          e.count += count;
          for (let i = 0; i < bounds.length; i++) {
            const c = counts[i] as number;
            if (c === 0) continue;
            const b = String(bounds[i]);
            e.bucketValues[b] = (e.bucketValues[b] ?? 0) + c;
            counts[i] = 0;
          }
          sum = 0;
          count = 0;
        },
      };
      local.set(id, s);
    }
    return s.child as LocalHistogram;
  }

  /** Forgets the hot-path children whose labels include all of `match` (a node that left). */
  function dropLocal(match: Record<string, string>): void {
    for (const [id, s] of local)
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) local.delete(id);
  }

  const httpLabels = ['route', 'method', 'status_class'] as const;
  const http = {
    requests: new Counter({
      name: 'dcache_http_requests_total',
      help: 'HTTP requests answered, by route template, method and status class.',
      labelNames: httpLabels,
      registers,
      collect: flushLocal,
    }),
    duration: new Histogram({
      name: 'dcache_http_request_duration_seconds',
      help: 'HTTP request duration in seconds from arrival to response sent.',
      labelNames: httpLabels,
      buckets: HTTP_DURATION_BUCKETS,
      registers,
      collect: flushLocal,
    }),
  };

  const redisDuration = new Histogram<'node' | 'op'>({
    name: 'dcache_redis_command_duration_seconds',
    help: 'Duration in seconds of Redis commands (or pipelines) sent to each node, by op.',
    labelNames: ['node', 'op'],
    buckets: REDIS_DURATION_BUCKETS,
    registers,
    collect: flushLocal,
  });
  const redisErrors = new Counter<'node' | 'op' | 'code'>({
    name: 'dcache_redis_command_errors_total',
    help: 'Redis commands that failed, by node, op and stable error code (e.g. TIMEOUT).',
    labelNames: ['node', 'op', 'code'],
    registers,
  });

  const hits = new Counter<'op'>({
    name: 'dcache_cache_hits_total',
    help: 'Keys read that were found, by read op (get, batch_get, head).',
    labelNames: ['op'],
    registers,
    collect: flushLocal,
  });
  const misses = new Counter<'op'>({
    name: 'dcache_cache_misses_total',
    help: 'Keys read that were absent, by read op (get, batch_get, head).',
    labelNames: ['op'],
    registers,
    collect: flushLocal,
  });

  const nodeUp = new Gauge<'node'>({
    name: 'dcache_node_up',
    help: 'Whether this proxy routes to the Redis node (1) or has ejected it (0).',
    labelNames: ['node'],
    registers,
  });
  const nodeBreakerState = new Gauge<'node' | 'state'>({
    name: 'dcache_node_breaker_state',
    help: 'Circuit-breaker state of each node: 1 for the current state, 0 for the others.',
    labelNames: ['node', 'state'],
    registers,
  });
  const ejections = new Counter<'node' | 'reason'>({
    name: 'dcache_node_ejections_total',
    help: 'Times this proxy took a node out of routing (for the whole cluster), by reason (probe, request).',
    labelNames: ['node', 'reason'],
    registers,
  });
  const readds = new Counter<'node'>({
    name: 'dcache_node_readds_total',
    help: 'Times this proxy put an ejected node back into routing (for the whole cluster) after enough successful probes and the purge.',
    labelNames: ['node'],
    registers,
  });

  const ringVersion = new Gauge({
    name: 'dcache_ring_version',
    help: 'Version of the membership document this proxy currently routes with.',
    registers,
  });
  const ringInfo = new Gauge<'checksum'>({
    name: 'dcache_ring_info',
    help: 'Always 1; the checksum label identifies the node list this proxy routes with.',
    labelNames: ['checksum'],
    registers,
  });
  const ringNodes = new Gauge<'state'>({
    name: 'dcache_ring_nodes',
    help: 'Nodes in the membership document by state (active, ejected, draining, removed).',
    labelNames: ['state'],
    registers,
  });
  const keyShare = new Gauge<'node'>({
    name: 'dcache_ring_key_share',
    help: 'Fraction (0..1) of the hash space each node owns in the current ring.',
    labelNames: ['node'],
    registers,
  });

  const batchFanout = new Histogram<'op'>({
    name: 'dcache_batch_fanout_nodes',
    help: 'Number of Redis nodes one batch request was split across.',
    labelNames: ['op'],
    buckets: FANOUT_BUCKETS,
    registers,
  });
  const batchKeys = new Histogram<'op'>({
    name: 'dcache_batch_keys',
    help: 'Number of keys in one batch request.',
    labelNames: ['op'],
    buckets: BATCH_KEYS_BUCKETS,
    registers,
  });

  const replicaWriteFailures = new Counter<'node'>({
    name: 'dcache_replica_write_failures_total',
    help: 'Writes that reached the primary owner but failed on a replica node.',
    labelNames: ['node'],
    registers,
  });
  const fallbackReads = new Counter({
    name: 'dcache_fallback_reads_total',
    help: 'Reads served by a later owner because the first owner failed or lacked the key.',
    registers,
  });
  const readRepairs = new Counter({
    name: 'dcache_read_repairs_total',
    help: 'Values copied back to their owner after a fallback read found them elsewhere.',
    registers,
  });
  const warmupReads = new Counter<'result'>({
    name: 'dcache_warmup_reads_total',
    help: 'Reads on a newly added node that consulted the previous owner, by result.',
    labelNames: ['result'],
    registers,
  });
  const warmupCopies = new Counter({
    name: 'dcache_warmup_copies_total',
    help: 'Values copied from a previous owner to a newly added node during warm-up.',
    registers,
  });
  const stalePurges = new Counter<'node'>({
    name: 'dcache_stale_keys_purged_total',
    help: 'Stale keys deleted from a node that came back after being ejected.',
    labelNames: ['node'],
    registers,
  });
  const staleFlushes = new Counter<'node'>({
    name: 'dcache_stale_journal_flushes_total',
    help: 'Times the stale-key journal of a returning node overflowed and the node was flushed.',
    labelNames: ['node'],
    registers,
  });
  const routingConfirm = new Histogram({
    name: 'dcache_routing_confirm_seconds',
    help: 'Time from applying a routing change to every reachable peer holding it (keys it moves are fenced meanwhile).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const routingFenced = new Gauge({
    name: 'dcache_routing_fenced',
    help: 'Whether some keys are fenced now (1): a routing change awaits peers, a node rejoins, or the lease on the cluster view lapsed.',
    registers,
  });
  const interimCleanups = new Counter<'result'>({
    name: 'dcache_interim_cleanups_total',
    help: 'Copies on interim owners deleted after their node rejoined, by result (deleted, swept, failed).',
    labelNames: ['result'],
    registers,
  });

  const peerLastSuccess = new Gauge<'peer'>({
    name: 'dcache_peer_sync_last_success_timestamp_seconds',
    help: 'Unix time in seconds of the last successful membership exchange with each peer (until the first one: when the peer became known).',
    labelNames: ['peer'],
    registers,
  });
  const peerSyncs = new Counter<'peer' | 'kind' | 'result'>({
    name: 'dcache_peer_sync_total',
    help: 'Membership exchanges with peers, by peer, kind (push, pull) and result (ok, error).',
    labelNames: ['peer', 'kind', 'result'],
    registers,
  });
  const peerFailures = new Counter<'peer'>({
    name: 'dcache_peer_sync_failures_total',
    help: 'Membership exchanges with a peer that failed (network error, timeout, bad reply).',
    labelNames: ['peer'],
    registers,
  });
  const convergence = new Histogram({
    name: 'dcache_membership_convergence_seconds',
    help: 'Seconds from a membership change (its updatedAt) to it being applied on this proxy.',
    buckets: CONVERGENCE_BUCKETS,
    registers,
  });
  const peers = new Gauge({
    name: 'dcache_peers',
    help: 'Number of peer proxies this proxy knows (configured seeds plus learned peers).',
    registers,
  });
  const peerDnsResolutions = new Counter<'result'>({
    name: 'dcache_peer_dns_resolutions_total',
    help: 'Resolutions of cluster.peers_dns, by result (ok, error: the last good set of peers is kept).',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['ok', 'error']) peerDnsResolutions.inc({ result }, 0);
  const peerDnsPeers = new Gauge({
    name: 'dcache_peer_dns_peers',
    help: 'Peer proxies the last good resolution of cluster.peers_dns listed (this proxy left out).',
    registers,
  });
  const membershipChanges = new Counter<'source'>({
    name: 'dcache_membership_changes_total',
    help: 'Membership documents applied that changed the ring, by source (admin, peer, file).',
    labelNames: ['source'],
    registers,
  });

  const rateLimited = new Counter({
    name: 'dcache_rate_limited_total',
    help: 'Requests refused with 429 by the rate limiter.',
    registers,
  });
  const authFailures = new Counter({
    name: 'dcache_auth_failures_total',
    help: 'Requests refused for authentication, by outcome: unauthorized (401), forbidden (403), throttled (429 AUTH_THROTTLED).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const connectionsDropped = new Counter({
    name: 'dcache_http_connections_dropped_total',
    help: 'Client connections closed at once because server.max_connections were open.',
    registers,
  });
  const fastPath = new Counter({
    name: 'dcache_http_fast_path_requests_total',
    help: 'Single-key requests answered by the node:http fast path ahead of Fastify.',
    registers,
    collect: flushLocal,
  });
  const resp = {
    commands: new Counter<'command' | 'result'>({
      name: 'dcache_resp_commands_total',
      help: 'Commands answered by the RESP front end, by command (lower case; other: not in the table) and result (ok, error).',
      labelNames: ['command', 'result'],
      registers,
      collect: flushLocal,
    }),
    duration: new Histogram<'command'>({
      name: 'dcache_resp_command_duration_seconds',
      help: 'Seconds from a RESP command being read to its reply being ready, by command.',
      labelNames: ['command'],
      buckets: HTTP_DURATION_BUCKETS,
      registers,
      collect: flushLocal,
    }),
    connections: new Gauge({
      name: 'dcache_resp_connections',
      help: 'RESP client connections open now.',
      registers,
    }),
    connectionsDropped: new Counter({
      name: 'dcache_resp_connections_dropped_total',
      help: 'RESP client connections refused because resp.max_clients were open.',
      registers,
    }),
    backpressure: new Counter({
      name: 'dcache_resp_backpressure_total',
      help: 'Times the RESP front end stopped reading a client (resp.max_inflight commands pending or its socket buffer full).',
      registers,
    }),
  };
  let inflightNow = 0;
  new Gauge({
    name: 'dcache_http_inflight_requests',
    help: 'HTTP requests currently being processed.',
    registers,
    collect() {
      this.set(inflightNow);
    },
  });
  /** dcache_http_inflight_requests, counted in a plain number and read at scrape time. */
  const inflight = {
    inc: () => {
      inflightNow++;
    },
    dec: () => {
      inflightNow--;
    },
  };

  // Series with a known, bounded label set start at 0 so that dashboards and rate() see
  // them before the first event (an absent series is not the same as zero).
  for (const op of CACHE_READ_OPS) {
    hits.inc({ op }, 0);
    misses.inc({ op }, 0);
  }
  for (const op of BATCH_OPS) {
    batchFanout.zero({ op });
    batchKeys.zero({ op });
  }
  for (const result of ['hit', 'miss'] as const) warmupReads.inc({ result }, 0);
  for (const source of MEMBERSHIP_SOURCES) membershipChanges.inc({ source }, 0);
  for (const state of RING_NODE_STATES) ringNodes.set({ state }, 0);

  let currentChecksum: string | undefined;
  const peerSeen = new Set<string>();

  return {
    /** The registry to serve on GET /metrics (`await register.metrics()`). */
    register,
    /** HTTP request counter and duration histogram, labels {route, method, status_class}. */
    http,
    /** dcache_redis_command_duration_seconds {node, op}. */
    redisDuration,
    /** dcache_redis_command_errors_total {node, op, code}. */
    redisErrors,
    /** dcache_cache_hits_total {op}. */
    hits,
    /** dcache_cache_misses_total {op}. */
    misses,
    /** dcache_node_up {node}: 1 routed, 0 ejected. */
    nodeUp,
    /** dcache_node_breaker_state {node, state}; prefer {@link setBreakerState}. */
    nodeBreakerState,
    /** dcache_node_ejections_total {node, reason}. */
    ejections,
    /** dcache_node_readds_total {node}. */
    readds,
    /** dcache_ring_version. */
    ringVersion,
    /** dcache_ring_info {checksum} = 1; prefer {@link setRingInfo}. */
    ringInfo,
    /** dcache_ring_nodes {state}. */
    ringNodes,
    /** dcache_ring_key_share {node} in 0..1. */
    keyShare,
    /** dcache_batch_fanout_nodes {op}. */
    batchFanout,
    /** dcache_batch_keys {op}. */
    batchKeys,
    /** dcache_replica_write_failures_total {node}. */
    replicaWriteFailures,
    /** dcache_fallback_reads_total. */
    fallbackReads,
    /** dcache_read_repairs_total. */
    readRepairs,
    /** dcache_warmup_reads_total {result: hit|miss}. */
    warmupReads,
    /** dcache_warmup_copies_total. */
    warmupCopies,
    /** dcache_stale_keys_purged_total {node}. */
    stalePurges,
    /** dcache_stale_journal_flushes_total {node}. */
    staleFlushes,
    /** dcache_routing_confirm_seconds. */
    routingConfirm,
    /** dcache_routing_fenced. */
    routingFenced,
    /** dcache_interim_cleanups_total {result}. */
    interimCleanups,
    /** dcache_peer_sync_last_success_timestamp_seconds {peer}. */
    peerLastSuccess,
    /** dcache_peer_sync_total {peer, kind, result}. */
    peerSyncs,
    /** dcache_peer_sync_failures_total {peer}. */
    peerFailures,
    /** dcache_membership_convergence_seconds. */
    convergence,
    /** dcache_peers. */
    peers,
    /** dcache_peer_dns_resolutions_total {result: ok|error}. */
    peerDnsResolutions,
    /** dcache_peer_dns_peers. */
    peerDnsPeers,
    /** dcache_membership_changes_total {source}. */
    membershipChanges,
    /** dcache_rate_limited_total. */
    rateLimited,
    /** dcache_auth_failures_total {outcome}. */
    authFailures,
    /** dcache_http_connections_dropped_total. */
    connectionsDropped,
    /** dcache_http_fast_path_requests_total. */
    fastPath,
    /** The RESP front end: commands {command, result}, duration {command}, connections. */
    resp,
    /** dcache_http_inflight_requests. */
    inflight,
    localCounter,
    localHistogram,

    /** Records one answered HTTP request (counter and histogram) with bounded labels. */
    observeHttp(route: string, method: string, status: number, seconds: number): void {
      const labels: LabelValues<(typeof httpLabels)[number]> = {
        route,
        method,
        status_class: statusClass(status),
      };
      http.requests.inc(labels);
      http.duration.observe(labels, seconds);
    },

    /** Sets the breaker gauge of a node: 1 for `state`, 0 for the other states. */
    setBreakerState(node: string, state: BreakerState): void {
      for (const s of BREAKER_STATES) nodeBreakerState.set({ node, state: s }, s === state ? 1 : 0);
    },

    /** Creates a node's per-node series at their resting values (up, breaker closed, 0s). */
    initNode(node: string): void {
      nodeUp.set({ node }, 1);
      for (const s of BREAKER_STATES)
        nodeBreakerState.set({ node, state: s }, s === 'closed' ? 1 : 0);
      readds.inc({ node }, 0);
      replicaWriteFailures.inc({ node }, 0);
      stalePurges.inc({ node }, 0);
      staleFlushes.inc({ node }, 0);
    },

    /** Drops every per-node series of a node that left the ring, so dashboards forget it. */
    removeNode(node: string): void {
      for (const m of [nodeUp, keyShare, readds, replicaWriteFailures, stalePurges, staleFlushes]) {
        m.remove({ node });
      }
      for (const s of BREAKER_STATES) nodeBreakerState.remove({ node, state: s });
      removeMatching(ejections, { node });
      dropLocal({ node });
      removeMatching(redisDuration, { node });
      removeMatching(redisErrors, { node });
    },

    /** Sets dcache_ring_info to 1 for `checksum`, removing the series of the previous one. */
    setRingInfo(checksum: string): void {
      if (currentChecksum !== undefined && currentChecksum !== checksum) {
        ringInfo.remove({ checksum: currentChecksum });
      }
      currentChecksum = checksum;
      ringInfo.set({ checksum }, 1);
    },

    /**
     * Creates a newly known peer's series: sync counters at 0 and the last-success time set
     * to `nowMs`, so "time() - last success" measures how long the peer has gone without a
     * successful exchange since it became known (not 50 years before the first success).
     */
    initPeer(peer: string, nowMs: number = Date.now()): void {
      for (const kind of ['push', 'pull'] as const) {
        for (const result of ['ok', 'error'] as const) peerSyncs.inc({ peer, kind, result }, 0);
      }
      peerFailures.inc({ peer }, 0);
      if (!peerSeen.has(peer)) peerLastSuccess.set({ peer }, nowMs / 1000);
      peerSeen.add(peer);
    },

    /** Drops the series of a peer this proxy no longer knows. */
    removePeer(peer: string): void {
      peerLastSuccess.remove({ peer });
      peerFailures.remove({ peer });
      removeMatching(peerSyncs, { peer });
      peerSeen.delete(peer);
    },

    /** Records one successful peer exchange: counter, and last-success time = now. */
    peerSyncOk(peer: string, kind: 'push' | 'pull', nowMs: number = Date.now()): void {
      peerSeen.add(peer);
      peerSyncs.inc({ peer, kind, result: 'ok' });
      peerLastSuccess.set({ peer }, nowMs / 1000);
    },

    /** Records one failed peer exchange in both dcache_peer_sync_total and _failures_total. */
    peerSyncError(peer: string, kind: 'push' | 'pull'): void {
      peerSyncs.inc({ peer, kind, result: 'error' });
      peerFailures.inc({ peer });
    },
  };
}

/** Everything {@link createMetrics} returns. */
export type Metrics = ReturnType<typeof createMetrics>;

type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;

/** Removes every series of `metric` whose labels include all of `match`. */
function removeMatching(metric: AnyMetric, match: Record<string, string>): void {
  // prom-client has no partial-label removal; read the live series and remove exact sets.
  const internal = metric as unknown as {
    hashMap?: Record<string, { labels?: Record<string, string | number> }>;
  };
  for (const entry of Object.values(internal.hashMap ?? {})) {
    const labels = entry.labels ?? {};
    if (!Object.entries(match).every(([k, v]) => labels[k] === v)) continue;
    metric.remove(labels);
  }
}
