import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessProxy, startInProcessProxy } from '../helpers/in-process-proxy.js';
import { FAST_HEALTH } from './fault-env.js';

type HealthBody = { status: string; nodes: { id: string; state: string; healthy: boolean }[] };
type StatsBody = { nodes: { id: string; state: string; healthy: boolean }[] };

describe('breaker transitions are visible in /health, stats, metrics and logs, once each', () => {
  let redis: RedisCluster;
  let proxy: InProcessProxy;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    proxy = await startInProcessProxy({ DC_CACHE_ADDRESSES: redis.addressList, ...FAST_HEALTH });
  });
  afterAll(async () => {
    await proxy?.close();
    await cleanupAll();
  });

  it('closed → open → half_open → closed', async () => {
    const x = redis.nodes[1]!;
    const health = async () => (await (await fetch(`${proxy.url}/health`)).json()) as HealthBody;
    const stats = async () =>
      (await (await fetch(`${proxy.url}/api/v1/cache/stats`)).json()) as StatsBody;
    expect((await health()).status).toBe('ok');

    await x.kill();
    await waitFor(
      async () => (await health()).nodes.find((n) => n.id === x.address)?.state === 'open',
      { timeout: 10_000, message: '/health shows open' },
    );
    expect((await health()).status).toBe('degraded');
    const st = (await stats()).nodes.find((n) => n.id === x.address)!;
    expect(st).toMatchObject({ state: 'open', healthy: false });
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(metrics).toContain(`dcache_node_up{node="${x.address}"} 0`);
    expect(metrics).toContain(`dcache_node_breaker_state{node="${x.address}",state="open"} 1`);

    await x.restart();
    await waitFor(
      async () => (await health()).nodes.find((n) => n.id === x.address)?.state === 'closed',
      { timeout: 15_000, message: '/health shows closed' },
    );
    expect((await health()).status).toBe('ok');
    expect((await stats()).nodes.find((n) => n.id === x.address)).toMatchObject({
      state: 'closed',
      healthy: true,
    });
    // Let five more probe rounds of x pass (counted, not slept): no duplicate transitions may appear.
    const pings = async () => {
      const text = await (await fetch(`${proxy.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) =>
          l.startsWith(
            `dcache_redis_command_duration_seconds_count{node="${x.address}",op="ping"}`,
          ),
        );
      return Number(line?.split(' ').pop() ?? 0);
    };
    const pingsBefore = await pings();
    await waitFor(async () => (await pings()) >= pingsBefore + 5, {
      timeout: 15_000,
      message: 'five more probe rounds of the node',
    });

    const mine = proxy.logs.filter((l) => l.node === x.address && typeof l.to === 'string');
    expect(mine.map((l) => `${l.from}->${l.to}`)).toEqual([
      'closed->open',
      'open->half_open',
      'half_open->closed',
    ]);
    expect(mine.every((l) => typeof l.reason === 'string' && l.reason.length > 0)).toBe(true);
    const ej = await proxy.rt.metrics.ejections.get();
    expect(
      ej.values.filter((v) => v.labels.node === x.address).reduce((a, v) => a + v.value, 0),
    ).toBe(1);
    const re = await proxy.rt.metrics.readds.get();
    expect(re.values.find((v) => v.labels.node === x.address)?.value).toBe(1);
  });
});
