/** Case 6: GET latency during a run in which one of 3 nodes is SIGSTOPped (hung with its sockets open). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisCluster, waitFor } from '@dcache/test-utils';
import { type Measured, readSamples, runLoad } from '../lib/load.js';
import { pinRedis, seed, startProxy } from '../lib/procs.js';
import { median, percentileSorted } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, type Row } from '../lib/types.js';
import { getSpec, keys, VALUE } from './data.js';

const TIMEOUT_MS = 200;

/** One run's figures in the window from SIGSTOP to SIGCONT + 200 ms. */
interface Window {
  requests: number;
  p50: number;
  p99: number;
  max: number;
  failed: number;
  stopMs: number;
}

/** Run case 6. */
export async function fault(ctx: BenchContext): Promise<CaseResult> {
  const redis = await startRedisCluster(3);
  pinRedis(redis.nodes);
  const proxy = await startProxy(redis.addressList, {
    env: { DC_CACHE_COMMAND_TIMEOUT: `${TIMEOUT_MS}ms` },
  });
  const dir = mkdtempSync(join(tmpdir(), 'dcache-bench-fault-'));
  const durationS = ctx.quick ? 4 : 15;
  const stopAfterMs = ctx.quick ? 500 : 3_000;
  const holdMs = ctx.quick ? 2_000 : 5_000;
  const victim = redis.nodes[2]!;
  try {
    const ks = keys('fault', 3_000);
    await seed(proxy.url, ks, VALUE);
    const runs: Measured[] = [];
    const windows: Window[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      ctx.log(`case 6 SIGSTOP run ${run + 1}/${ctx.runs}`);
      const file = join(dir, `samples-${run}.bin`);
      let stopAt = 0;
      let contAt = 0;
      const timers: NodeJS.Timeout[] = [];
      try {
        const m = await runLoad(
          {
            url: proxy.url,
            connections: ctx.connections,
            durationS,
            warmupS: ctx.warmupS,
            requests: [getSpec(ks)],
            samplesFile: file,
          },
          {
            watch: { server: [proxy.pid], redis: redis.nodes.map((n) => n.pid!) },
            onStart: () => {
              timers.push(
                setTimeout(() => {
                  stopAt = Date.now();
                  victim.stop();
                  timers.push(
                    setTimeout(() => {
                      victim.cont();
                      contAt = Date.now();
                    }, holdMs),
                  );
                }, stopAfterMs),
              );
            },
          },
        );
        runs.push(m);
      } finally {
        for (const t of timers) clearTimeout(t);
        victim.cont();
      }
      if (!stopAt || !contAt)
        throw new Error('the node was not stopped and continued within the run');
      const inWindow = readSamples(file).filter((s) => s.at >= stopAt && s.at <= contAt + 200);
      const lat = Float64Array.from(inWindow.map((s) => s.ms)).sort();
      windows.push({
        requests: lat.length,
        p50: percentileSorted(lat, 50),
        p99: percentileSorted(lat, 99),
        max: lat.length ? lat[lat.length - 1]! : Number.NaN,
        failed: inWindow.filter((s) => s.status >= 500).length,
        stopMs: contAt - stopAt,
      });
      // Next run only once the node is back in routing.
      await waitFor(
        async () => {
          const h = (await (await fetch(`${proxy.url}/health`)).json()) as { status: string };
          return h.status === 'ok';
        },
        { timeout: 30_000, interval: 100, message: 'the stopped node to be re-added' },
      );
    }
    const p99 = median(windows.map((w) => w.p99));
    const row: Row = {
      label: `dcache GET, 1 of 3 nodes stopped ${holdMs / 1_000} s`,
      unit: 'req/s',
      value: median(runs.map((m) => (m.status['200'] ?? 0) / m.durationS)),
      runs: runs.map((m) => (m.status['200'] ?? 0) / m.durationS),
      p50: median(runs.map((m) => m.latency.p50)),
      p99: median(runs.map((m) => m.latency.p99)),
      max: Math.max(...runs.map((m) => m.latency.max)),
      cpu: {
        server: median(runs.map((m) => m.cpu.server ?? Number.NaN)),
        redis: median(runs.map((m) => m.cpu.redis ?? Number.NaN)),
        load: median(runs.map((m) => m.cpu.load ?? Number.NaN)),
        'server core busy': median(runs.map((m) => m.coreBusy.server)),
        'load core busy': median(runs.map((m) => m.coreBusy.load)),
      },
      cpuUs: median(runs.map((m) => ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps)),
      non2xx: runs.reduce((a, m) => a + m.requests - (m.status['200'] ?? 0), 0),
      errors: runs.reduce((a, m) => a + m.errors + m.timeouts, 0),
      note: 'whole run (200 OK per second; the non-2xx are 503/504 of keys on the hung node before its ejection and 404 misses while it is out)',
    };
    const win: Row = {
      label: 'same, only the stop window (SIGSTOP → SIGCONT + 200 ms)',
      unit: 'responses',
      value: median(windows.map((w) => w.requests)),
      runs: windows.map((w) => w.requests),
      p50: median(windows.map((w) => w.p50)),
      p99,
      max: Math.max(...windows.map((w) => w.max)),
      non2xx: windows.reduce((a, w) => a + w.failed, 0),
      note: 'non-2xx here counts 5xx only',
    };
    const maxAll = Math.max(...windows.map((w) => w.max));
    return {
      id: 'fault',
      title: '6. Fault: one node SIGSTOPped under GET load',
      setup: `3 redis-servers, one dcache with DC_CACHE_COMMAND_TIMEOUT=${TIMEOUT_MS}ms (other health settings default: 3 failures eject); ${ks.length.toLocaleString('en')} keys in turn; ${ctx.connections} connections; node 3 gets SIGSTOP ${stopAfterMs / 1_000} s into a ${durationS} s run and SIGCONT ${holdMs / 1_000} s later`,
      rows: [row, win],
      checks: [
        check('p99 in the stop window', p99, '<=', TIMEOUT_MS + 50, 'ms'),
        check('slowest response in the stop window', maxAll, '<=', TIMEOUT_MS + 50, 'ms'),
      ],
      notes: [
        'the second check is stricter than the target (it is the guarantee test/faults/stop-node.test.ts asserts with CI slack)',
      ],
      chart: {
        throughput: { unit: 'req/s', bars: [{ label: 'dcache, node stopped', value: row.value }] },
        p99: {
          unit: 'ms',
          bars: [
            { label: 'dcache p99 in window', value: p99 },
            { label: 'dcache max in window', value: maxAll },
            { label: 'command timeout + 50', value: TIMEOUT_MS + 50 },
          ],
        },
      },
      raw: { windows },
    };
  } finally {
    victim.cont();
    await proxy.stop().catch(() => {});
    await redis.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}
