import { spawnSync } from 'node:child_process';
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findBinary,
  mixedLoad,
  type Outcome,
  type ProxyProcess,
  parseMetrics,
  proxyPair,
  scrape,
  seedHotKeys,
  summarize,
} from './stack.js';

const PROMTOOL = findBinary('PROMTOOL_BIN', ['/usr/bin/promtool', '/usr/local/bin/promtool']);

describe.skipIf(!PROMTOOL)(
  `promtool check metrics on a real proxy's /metrics${PROMTOOL ? '' : ' (SKIPPED: promtool not installed; .ci/run installs it)'}`,
  () => {
    let redis: RedisCluster;
    let proxy: ProxyProcess;

    beforeAll(async () => {
      redis = await startRedisCluster(3);
      // One proxy of a peered pair is enough here; its peer stays down (peer sync failing).
      [proxy] = await proxyPair(redis.addressList);
      await proxy.start();
    });
    afterAll(async () => {
      await proxy?.stop();
      await cleanupAll();
    });

    it('reports nothing after PUT/GET/HEAD/DELETE/batch/keys/404 traffic', async () => {
      const prefix = `promtool-${Date.now()}`;
      await seedHotKeys(proxy.url, prefix);
      const outcomes: Outcome[] = [];
      await mixedLoad(
        {
          targets: [proxy.url],
          concurrency: 4,
          ratePerSec: 300,
          maxMs: 10_000,
          maxRequests: 200,
          keyPrefix: prefix,
        },
        outcomes,
      );
      // Error paths count too: a bad key route, an unknown route, a bad JSON body.
      await fetch(`${proxy.url}/api/v1/cache/`, { method: 'PUT' }).then((r) => r.arrayBuffer());
      await fetch(`${proxy.url}/no/such/route`).then((r) => r.arrayBuffer());
      await fetch(`${proxy.url}/api/v1/cache/x`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{bad',
      }).then((r) => r.arrayBuffer());

      const bad = outcomes.filter((o) => !o.ok);
      expect(bad, JSON.stringify(bad.slice(0, 5))).toEqual([]);
      expect(outcomes).toHaveLength(200);

      const text = await scrape(proxy.url);
      const samples = parseMetrics(text);
      const names = [...new Set(samples.map((s) => s.name))];
      // The traffic above shows up: the check ran on a populated exposition, not an empty one.
      for (const n of [
        'dcache_http_requests_total',
        'dcache_http_request_duration_seconds_bucket',
        'dcache_redis_command_duration_seconds_bucket',
        'dcache_cache_hits_total',
        'dcache_batch_fanout_nodes_bucket',
        'dcache_node_up',
        'dcache_ring_key_share',
        'process_resident_memory_bytes',
      ]) {
        expect(names, n).toContain(n);
      }
      // The readiness probe of the start-up is left out: a peered proxy answers it 503 until it
      // met its peers (here the peer is down: until the first call to it failed).
      const classes = new Set(
        samples
          .filter(
            (s) =>
              s.name === 'dcache_http_requests_total' &&
              s.value > 0 &&
              s.labels.route !== '/health/ready',
          )
          .map((s) => s.labels.status_class),
      );
      expect([...classes].sort()).toEqual(['2xx', '4xx']);

      const res = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
      console.log(
        `[promtool] ${samples.length} samples in ${families} families after ${outcomes.length} requests (${summarize(outcomes)}); ` +
          `promtool exit=${res.status} output=${JSON.stringify((res.stdout + res.stderr).trim())}`,
      );
      expect(res.error).toBeUndefined();
      expect(`${res.stdout}${res.stderr}`).toBe('');
      expect(res.status).toBe(0);
    });
  },
);
