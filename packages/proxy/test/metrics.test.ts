import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BREAKER_STATES,
  createMetrics,
  HTTP_DURATION_BUCKETS,
  type Metrics,
  REDIS_DURATION_BUCKETS,
  statusClass,
} from '../src/metrics.js';

const PROMTOOL = process.env['PROMTOOL_BIN'] ?? '/usr/bin/promtool';
const hasPromtool = existsSync(PROMTOOL);

/** Every field of Metrics that is a metric, with the name the dashboards rely on. */
const EXPECTED: Record<string, string> = {
  redisDuration: 'dcache_redis_command_duration_seconds',
  redisErrors: 'dcache_redis_command_errors_total',
  hits: 'dcache_cache_hits_total',
  misses: 'dcache_cache_misses_total',
  nodeUp: 'dcache_node_up',
  nodeBreakerState: 'dcache_node_breaker_state',
  ejections: 'dcache_node_ejections_total',
  readds: 'dcache_node_readds_total',
  ringVersion: 'dcache_ring_version',
  ringInfo: 'dcache_ring_info',
  ringNodes: 'dcache_ring_nodes',
  keyShare: 'dcache_ring_key_share',
  batchFanout: 'dcache_batch_fanout_nodes',
  batchKeys: 'dcache_batch_keys',
  replicaWriteFailures: 'dcache_replica_write_failures_total',
  fallbackReads: 'dcache_fallback_reads_total',
  readRepairs: 'dcache_read_repairs_total',
  warmupReads: 'dcache_warmup_reads_total',
  warmupCopies: 'dcache_warmup_copies_total',
  stalePurges: 'dcache_stale_keys_purged_total',
  staleFlushes: 'dcache_stale_journal_flushes_total',
  routingConfirm: 'dcache_routing_confirm_seconds',
  routingFenced: 'dcache_routing_fenced',
  interimCleanups: 'dcache_interim_cleanups_total',
  peerLastSuccess: 'dcache_peer_sync_last_success_timestamp_seconds',
  peerSyncs: 'dcache_peer_sync_total',
  peerFailures: 'dcache_peer_sync_failures_total',
  convergence: 'dcache_membership_convergence_seconds',
  peers: 'dcache_peers',
  peerDnsResolutions: 'dcache_peer_dns_resolutions_total',
  peerDnsPeers: 'dcache_peer_dns_peers',
  membershipChanges: 'dcache_membership_changes_total',
  rateLimited: 'dcache_rate_limited_total',
  authFailures: 'dcache_auth_failures_total',
  connectionsDropped: 'dcache_http_connections_dropped_total',
  fastPath: 'dcache_http_fast_path_requests_total',
  inflight: 'dcache_http_inflight_requests',
};

/** The RESP front end's series (the `resp` group). */
const RESP_METRICS = [
  'dcache_resp_commands_total',
  'dcache_resp_command_duration_seconds',
  'dcache_resp_connections',
  'dcache_resp_connections_dropped_total',
  'dcache_resp_backpressure_total',
];

/** Touches every metric so that labelled series appear in the exposition text. */
function exercise(m: Metrics): void {
  m.observeHttp('/api/v1/cache/:key', 'GET', 200, 0.002);
  m.observeHttp('/api/v1/cache/:key', 'PUT', 503, 0.2);
  m.inflight.inc();
  m.initNode('127.0.0.1:6379');
  m.initNode('127.0.0.1:6380');
  m.redisDuration.observe({ node: '127.0.0.1:6379', op: 'get' }, 0.0003);
  m.redisErrors.inc({ node: '127.0.0.1:6380', op: 'mget', code: 'TIMEOUT' });
  m.hits.inc({ op: 'get' });
  m.misses.inc({ op: 'batch_get' }, 3);
  m.nodeUp.set({ node: '127.0.0.1:6380' }, 0);
  m.setBreakerState('127.0.0.1:6380', 'open');
  m.ejections.inc({ node: '127.0.0.1:6380', reason: 'probe' });
  m.readds.inc({ node: '127.0.0.1:6380' });
  m.ringVersion.set(7);
  m.setRingInfo('abc123');
  m.ringNodes.set({ state: 'active' }, 2);
  m.keyShare.set({ node: '127.0.0.1:6379' }, 0.5);
  m.batchFanout.observe({ op: 'batch_get' }, 2);
  m.batchKeys.observe({ op: 'batch_get' }, 40);
  m.replicaWriteFailures.inc({ node: '127.0.0.1:6380' });
  m.fallbackReads.inc();
  m.readRepairs.inc();
  m.warmupReads.inc({ result: 'hit' });
  m.warmupCopies.inc();
  m.stalePurges.inc({ node: '127.0.0.1:6380' }, 4);
  m.staleFlushes.inc({ node: '127.0.0.1:6380' });
  m.peerSyncOk('http://127.0.0.1:8082', 'push', 1_700_000_000_000);
  m.peerSyncError('http://127.0.0.1:8082', 'pull');
  m.convergence.observe(0.12);
  m.peers.set(1);
  m.membershipChanges.inc({ source: 'admin' });
  m.rateLimited.inc();
  m.resp.commands.inc({ command: 'get', result: 'ok' });
  m.resp.duration.observe({ command: 'get' }, 0.0004);
  m.resp.connections.inc();
  m.resp.connectionsDropped.inc();
  m.resp.backpressure.inc();
}

describe('statusClass', () => {
  it('maps codes to their class', () => {
    expect(statusClass(200)).toBe('2xx');
    expect(statusClass(207)).toBe('2xx');
    expect(statusClass(304)).toBe('3xx');
    expect(statusClass(404)).toBe('4xx');
    expect(statusClass(429)).toBe('4xx');
    expect(statusClass(500)).toBe('5xx');
    expect(statusClass(503)).toBe('5xx');
  });
});

describe('createMetrics', () => {
  it('registers every metric with the dcache_ prefix and help text', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const json = await m.register.getMetricsAsJSON();
    const byName = new Map(json.map((x) => [x.name, x]));
    // + the http counter and histogram, and the five series of the RESP front end's group
    expect(json.length).toBe(Object.keys(EXPECTED).length + 2 + RESP_METRICS.length);
    for (const x of json) {
      expect(x.name.startsWith('dcache_'), x.name).toBe(true);
      expect(x.help.length, `${x.name} help`).toBeGreaterThan(10);
    }
    for (const [field, name] of Object.entries(EXPECTED)) {
      const metric = (m as unknown as Record<string, { name?: string }>)[field];
      expect(metric, field).toBeDefined();
      expect(byName.has(name), name).toBe(true);
    }
    expect(byName.has('dcache_http_requests_total')).toBe(true);
    expect(byName.has('dcache_http_request_duration_seconds')).toBe(true);
    for (const name of RESP_METRICS) expect(byName.has(name), name).toBe(true);
  });

  it('exposes series that dashboards need before the first event', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const text = await m.register.metrics();
    for (const line of [
      'dcache_cache_hits_total{op="get"} 0',
      'dcache_cache_misses_total{op="head"} 0',
      'dcache_ring_version 0',
      'dcache_rate_limited_total 0',
      'dcache_http_fast_path_requests_total 0',
      'dcache_peers 0',
      'dcache_membership_changes_total{source="peer"} 0',
      'dcache_batch_fanout_nodes_count{op="batch_get"} 0',
      'dcache_membership_convergence_seconds_count 0',
    ]) {
      expect(text).toContain(line);
    }
  });

  it('two instances in one process do not collide', async () => {
    const a = createMetrics();
    const b = createMetrics();
    expect(a.register).not.toBe(b.register);
    a.hits.inc({ op: 'get' }, 5);
    const textA = await a.register.metrics();
    const textB = await b.register.metrics();
    expect(textA).toContain('dcache_cache_hits_total{op="get"} 5');
    expect(textB).toContain('dcache_cache_hits_total{op="get"} 0');
    expect(textA).toContain('process_resident_memory_bytes');
    expect(textA).toContain('nodejs_eventloop_lag_p99_seconds');
  });

  it('keeps exactly one breaker state at 1 and one ring_info series', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.initNode('n1');
    m.setBreakerState('n1', 'half_open');
    const breaker = (await m.nodeBreakerState.get()).values;
    expect(breaker).toHaveLength(BREAKER_STATES.length);
    expect(breaker.filter((v) => v.value === 1).map((v) => v.labels['state'])).toEqual([
      'half_open',
    ]);

    m.setRingInfo('aaa');
    m.setRingInfo('bbb');
    const info = (await m.ringInfo.get()).values;
    expect(info).toEqual([{ value: 1, labels: { checksum: 'bbb' } }]);
  });

  it('initPeer creates peer series at 0 and removePeer drops them', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.initPeer('http://p2:8080', 5_000);
    let text = await m.register.metrics();
    expect(text).toContain(
      'dcache_peer_sync_total{peer="http://p2:8080",kind="pull",result="error"} 0',
    );
    expect(text).toContain('dcache_peer_sync_failures_total{peer="http://p2:8080"} 0');
    expect(text).toContain(
      'dcache_peer_sync_last_success_timestamp_seconds{peer="http://p2:8080"} 5',
    );
    m.peerSyncOk('http://p2:8080', 'pull', 9_000);
    m.initPeer('http://p2:8080', 20_000); // a known peer keeps its last success
    expect((await m.peerLastSuccess.get()).values[0]?.value).toBe(9);
    m.removePeer('http://p2:8080');
    text = await m.register.metrics();
    expect(text).not.toContain('p2:8080');
  });

  it('hot-path children add up to what prom-client children record, at every scrape', async () => {
    // Sums are added in another order, so they may differ in the last bits of a double.
    const scrape = async (m: Metrics) =>
      (await m.register.metrics()).replace(
        /(_sum\{[^}]*\}) (\S+)/g,
        (_, s, v) => `${s} ${Number(v).toPrecision(12)}`,
      );
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    const labels = { route: '/api/v1/cache/:key', method: 'GET', status_class: '2xx' };
    const node = { node: '127.0.0.1:6379', op: 'get' };
    const la = a.localHistogram(a.http.duration, labels, HTTP_DURATION_BUCKETS);
    const ra = a.localHistogram(a.redisDuration, node, REDIS_DURATION_BUCKETS);
    const ca = a.localCounter(a.http.requests, labels);
    const ha = a.localCounter(a.hits, { op: 'get' });
    const lb = b.http.duration.labels(labels);
    const rb = b.redisDuration.labels(node);
    // Values on, between, below and above the bucket bounds; a scrape in the middle.
    const values = [0, 0.0001, 0.001, 0.0025, 0.003, 0.01, 0.2, 0.5, 1, 2.5, 7, 10, 99, 1e6];
    for (let round = 0; round < 2; round++) {
      for (const v of values) {
        la.observe(v);
        lb.observe(v);
        ra.observe(v / 100);
        rb.observe(v / 100);
        ca.inc();
        b.http.requests.inc(labels);
        ha.inc(2);
        b.hits.inc({ op: 'get' }, 2);
      }
      a.inflight.inc();
      b.inflight.inc();
      expect(await scrape(a)).toBe(await scrape(b));
    }
    a.inflight.dec();
    expect(await a.register.metrics()).toContain('dcache_http_inflight_requests 1');
    // A node that leaves takes its hot-path series along; a new child starts from zero.
    a.removeNode('127.0.0.1:6379');
    b.removeNode('127.0.0.1:6379');
    expect(await a.register.metrics()).not.toContain('6379');
    a.localHistogram(a.redisDuration, node, REDIS_DURATION_BUCKETS).observe(0.001);
    b.redisDuration.labels(node).observe(0.001);
    a.inflight.inc();
    const text = await scrape(a);
    expect(text).toContain(
      'dcache_redis_command_duration_seconds_count{node="127.0.0.1:6379",op="get"} 1',
    );
    expect(text).toBe(await scrape(b));
  });

  it('removeNode forgets every per-node series', async () => {
    const m = createMetrics({ defaultMetrics: false });
    exercise(m);
    m.removeNode('127.0.0.1:6380');
    const text = await m.register.metrics();
    expect(text).not.toContain('127.0.0.1:6380');
    expect(text).toContain('node="127.0.0.1:6379"');
  });

  it.skipIf(!hasPromtool)(
    `promtool check metrics reports nothing${hasPromtool ? '' : ` (SKIPPED: ${PROMTOOL} not installed)`}`,
    async () => {
      const m = createMetrics();
      exercise(m);
      const text = await m.register.metrics();
      const res = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(res.error).toBeUndefined();
      expect(`${res.stdout}${res.stderr}`.trim()).toBe('');
      expect(res.status).toBe(0);
    },
  );
});
