import { connect } from 'node:net';
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyProcess, pct, report, startProxy } from './harness.js';
import { LoadClient, type Outcome, runLoad } from './http-load.js';

const SHUTDOWN_TIMEOUT_MS = 5_000;
const SLACK_MS = 3_000;

/** Try a fresh TCP connection; how it ended and how long it took. */
function tryConnect(port: number, timeoutMs = 3_000): Promise<{ result: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const finish = (result: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ result, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish('HANG'), timeoutMs);
    s.once('connect', () => finish('CONNECTED'));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

describe('graceful shutdown under load (SIGTERM)', () => {
  let redis: RedisCluster;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    proxy = await startProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_SERVER_SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
      DC_LOGGER_LEVEL: 'info',
    });
  });

  afterAll(async () => {
    await proxy?.proc.stop();
    await cleanupAll();
  });

  it('every request sent before SIGTERM gets a complete answer; new connections are refused; exit 0 in time', async () => {
    const client = new LoadClient('127.0.0.1', proxy.port, 64);
    const outcomes: Outcome[] = [];
    let sigAt = Number.POSITIVE_INFINITY;
    let refusedSeen = false;
    const load = runLoad(
      { workers: 48, maxMs: 60_000, maxRequests: 2_000_000, stop: () => refusedSeen },
      async (i) => {
        const key = `sd:${i % 500}`;
        const o =
          i % 3 === 0
            ? await client.send('PUT', `/api/v1/cache/${key}`, { value: { i }, ttl: '5m' })
            : i % 3 === 1
              ? await client.send('GET', `/api/v1/cache/${key}`)
              : await client.send('POST', '/api/v1/cache/batch/get', {
                  keys: [key, `sd:${(i + 1) % 500}`, `sd:${(i + 2) % 500}`],
                });
        outcomes.push(o);
        if (o.error === 'ECONNREFUSED') refusedSeen = true;
        // After the listener closed, back off a little instead of spinning on refusals.
        if (o.status === 0) await new Promise((r) => setTimeout(r, 5));
      },
    );
    // Full load for a while, then SIGTERM.
    const warmUntil = performance.now() + 3_000;
    while (performance.now() < warmUntil) await new Promise((r) => setTimeout(r, 50));
    const before = outcomes.length;
    sigAt = performance.now();
    proxy.proc.signal('SIGTERM');

    // New connections after the listener closes: refused at once, never a hang. The probes go on
    // whether or not the process has exited yet (a quick drain may exit before the first probe
    // after the close): what is asserted is the listener's behaviour, not the exit's timing.
    const probes: { result: string; ms: number; exited: boolean }[] = [];
    const probeUntil = performance.now() + SHUTDOWN_TIMEOUT_MS + SLACK_MS;
    let refusals = 0;
    while (performance.now() < probeUntil && refusals < 5) {
      const p = await tryConnect(proxy.port);
      probes.push({ ...p, exited: !proxy.proc.running });
      if (p.result === 'ECONNREFUSED') refusals++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const code = await Promise.race([
      proxy.proc.exited,
      new Promise<string>((r) =>
        setTimeout(() => r('still running'), SHUTDOWN_TIMEOUT_MS + SLACK_MS),
      ),
    ]);
    const exitMs = performance.now() - sigAt;
    refusedSeen = true;
    await load;
    client.close();

    const sentBefore = outcomes.filter((o) => o.sentAt < sigAt);
    const openAtSignal = sentBefore.filter((o) => o.doneAt >= sigAt);
    const failedBefore = sentBefore.filter((o) => o.status === 0 || o.status >= 500);
    const sentAfter = outcomes.filter((o) => o.sentAt >= sigAt);
    const afterKinds: Record<string, number> = {};
    for (const o of sentAfter) {
      const k = o.status ? String(o.status) : (o.error ?? 'error');
      afterKinds[k] = (afterKinds[k] ?? 0) + 1;
    }
    const probeKinds: Record<string, number> = {};
    for (const p of probes) probeKinds[p.result] = (probeKinds[p.result] ?? 0) + 1;
    const okBefore = sentBefore.filter((o) => o.status > 0 && o.status < 500);
    report('shutdown', {
      requests_before_sigterm: sentBefore.length,
      in_flight_at_sigterm: openAtSignal.length,
      failed_before_sigterm: failedBefore.length,
      p99_ms_before: +pct(
        okBefore.map((o) => o.doneAt - o.sentAt),
        99,
      ).toFixed(1),
      sent_after_sigterm: afterKinds,
      new_connection_probes: probeKinds,
      refused_while_running: probes.filter((p) => p.result === 'ECONNREFUSED' && !p.exited).length,
      slowest_probe_ms: Math.round(Math.max(0, ...probes.map((p) => p.ms))),
      exit_code: code,
      exit_after_ms: Math.round(exitMs),
      shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
      answered_before_sigterm: before,
    });
    if (failedBefore.length > 0) console.log(JSON.stringify(failedBefore.slice(0, 10)));
    expect(sentBefore.length).toBeGreaterThan(200);
    expect(openAtSignal.length).toBeGreaterThan(0);
    expect(failedBefore).toEqual([]);
    expect(code).toBe(0);
    expect(exitMs).toBeLessThanOrEqual(SHUTDOWN_TIMEOUT_MS + SLACK_MS);
    // Once the listener is closed, a new connection is refused (ECONNREFUSED), never left hanging.
    const firstRefused = probes.findIndex((p) => p.result === 'ECONNREFUSED');
    expect(firstRefused).toBeGreaterThanOrEqual(0);
    expect(probes.slice(firstRefused).every((p) => p.result === 'ECONNREFUSED')).toBe(true);
    expect(probes.filter((p) => p.result === 'HANG')).toEqual([]);
    for (const k of Object.keys(afterKinds)) {
      expect(['200', '404', '503', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']).toContain(k);
    }
    expect(proxy.proc.output()).toContain('shutting down');
  });
});
