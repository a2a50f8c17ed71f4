/**
 * Case 7 (issue 18): dcache's RESP front end beside nutcracker (twemproxy) over the same 3
 * redis-servers, driven by redis-benchmark (SET, GET, MGET of 10 keys) at pipeline depths 1 and
 * 16. Runs are interleaved (dcache, nutcracker, dcache, …) so drift in the machine's load hits
 * both alike; each run is sized from a short calibration run to last about `seconds`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  type RedisCluster,
  respCommand,
  startProcess,
  startRedisCluster,
  type TestProcess,
  waitFor,
} from '@dcache/test-utils';
import { CORES, cpuTicks, pinRedis, startProxy } from '../lib/procs.js';
import { median, ratio } from '../lib/stats.js';
import { type BenchContext, type CaseResult, type Check, check, type Row } from '../lib/types.js';

const CLK_TCK = 100;
const CLIENTS = 50;
const DEPTHS = [1, 16] as const;
/** dcache ÷ nutcracker requests/s wanted at each depth (issue 18). */
const TARGETS: Record<number, number> = { 1: 0.6, 16: 0.4 };
/** Keys the MGET test draws from (`-r`), all stored before the runs. */
const MGET_KEYSPACE = 1_000;
const MGET_KEYS = 10;
const VALUE = 'x'.repeat(100);

/** A test of redis-benchmark: its arguments (after -n/-P) and its name in the CSV output. */
interface Test {
  id: 'SET' | 'GET' | 'MGET';
  args: string[];
}

const TESTS: Test[] = [
  { id: 'SET', args: ['-t', 'set', '-d', '100'] },
  { id: 'GET', args: ['-t', 'get', '-d', '100'] },
  // redis-benchmark 7 has no MGET test (`-t mget` is silently ignored): the command is given.
  {
    id: 'MGET',
    args: [
      '-r',
      String(MGET_KEYSPACE),
      'MGET',
      ...Array.from({ length: MGET_KEYS }, () => 'key:__rand_int__'),
    ],
  },
];

/** Requests of a calibration run: long enough to measure, short even for the slowest variant. */
function calibrationSize(test: Test, depth: number): number {
  if (test.id === 'MGET') return depth === 1 ? 10_000 : 20_000;
  return depth === 1 ? 20_000 : 100_000;
}

/** One redis-benchmark invocation's CSV line and the CPU of the servers around it. */
interface Measure {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  n: number;
  seconds: number;
  cpu: { server: number; redis: number };
}

/** A RESP endpoint under test. */
interface Target {
  name: 'dcache' | 'nutcracker';
  port: number;
  pid: number;
  proc: TestProcess;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The first data line of redis-benchmark's --csv output. */
function parseCsv(out: string): Omit<Measure, 'n' | 'seconds' | 'cpu'> {
  const lines = out.trim().split('\n');
  const head = lines[0]?.split(',').map((s) => s.replace(/"/g, '')) ?? [];
  const data = lines[1]?.split('","').map((s) => s.replace(/"/g, ''));
  if (!data || head[1] !== 'rps') throw new Error(`unexpected redis-benchmark output:\n${out}`);
  const col = (name: string) => Number(data[head.indexOf(name)]);
  return {
    rps: col('rps'),
    p50: col('p50_latency_ms'),
    p99: col('p99_latency_ms'),
    max: col('max_latency_ms'),
  };
}

/** redis-benchmark pinned to the load core; the servers' CPU read from /proc around it. */
async function bench(
  t: Target,
  test: Test,
  depth: number,
  n: number,
  redisPids: readonly number[],
): Promise<Measure> {
  const args = ['-p', String(t.port), '-c', String(CLIENTS), '-n', String(n), '-P', String(depth)];
  const before = { s: cpuTicks(t.pid), r: redisPids.reduce((a, p) => a + cpuTicks(p), 0) };
  const t0 = process.hrtime.bigint();
  const out = await run(
    'taskset',
    ['-c', String(CORES.load), 'redis-benchmark', ...args, '--csv', ...test.args],
    120_000,
  ).catch((e: unknown) => {
    // What the server said (or whether it is gone) is what explains a dropped connection.
    const state = t.proc.running ? 'still running' : 'exited';
    throw new Error(
      `${String(e)}\n${t.name} (${state}) output, last 4,000 characters:\n${t.proc.output().slice(-4_000)}`,
    );
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = { s: cpuTicks(t.pid), r: redisPids.reduce((a, p) => a + cpuTicks(p), 0) };
  const pct = (ticks: number) => (100 * ticks) / CLK_TCK / seconds;
  return {
    ...parseCsv(out),
    n,
    seconds,
    cpu: { server: pct(after.s - before.s), redis: pct(after.r - before.r) },
  };
}

/** The exact redis-benchmark command line of a test (PORT for the server's port). */
function benchCommand(test: Test, depth: number | string, n: number | string): string {
  return `taskset -c ${CORES.load} redis-benchmark -p PORT -c ${CLIENTS} -n ${n} -P ${depth} --csv ${test.args.join(' ')}`;
}

async function startNutcracker(
  redis: RedisCluster,
  dir: string,
): Promise<{ proc: TestProcess; port: number }> {
  const [port, stats] = [await freePort(), await freePort()];
  const conf = [
    'pool:',
    `  listen: 127.0.0.1:${port}`,
    '  hash: murmur',
    '  distribution: ketama',
    '  redis: true',
    '  auto_eject_hosts: false',
    '  timeout: 5000',
    '  servers:',
    ...redis.addresses.map((a) => `    - ${a}:1`),
    '',
  ].join('\n');
  const file = join(dir, 'nutcracker.yml');
  writeFileSync(file, conf);
  const proc = await startProcess('taskset', [
    '-c',
    String(CORES.server),
    NUTCRACKER,
    '-c',
    file,
    '-s',
    String(stats),
    '-a',
    '127.0.0.1',
  ]);
  await waitPong(port, proc, 'nutcracker');
  return { proc, port };
}

async function waitPong(port: number, proc: TestProcess, name: string): Promise<void> {
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`${name} exited: ${proc.output()}`);
      return (
        (await respCommand('127.0.0.1', port, undefined, ['PING'], 1_000).catch(() => '')) ===
        'PONG'
      );
    },
    { timeout: 30_000, interval: 50, message: `${name} to answer PING on ${port}` },
  );
}

const NUTCRACKER = process.env.DC_NUTCRACKER ?? '/usr/sbin/nutcracker';

function which(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, bin)));
}

/** Run case 7. */
export async function respCase(ctx: BenchContext): Promise<CaseResult> {
  const title = '7. RESP front end vs nutcracker (redis-benchmark)';
  const missing = [
    existsSync(NUTCRACKER) ? '' : `nutcracker (${NUTCRACKER}; DC_NUTCRACKER overrides)`,
    which('redis-benchmark') ? '' : 'redis-benchmark',
  ].filter(Boolean);
  if (missing.length > 0)
    return {
      id: 'resp',
      title,
      setup: 'not run',
      rows: [],
      checks: [],
      notes: [`skipped: ${missing.join(' and ')} not installed`],
      chart: {},
    };
  const seconds = Math.min(ctx.durationS, 4);
  const redis = await startRedisCluster(3);
  pinRedis(redis.nodes);
  const redisPids = redis.nodes.map((n) => n.pid!);
  const dir = mkdtempSync(join(tmpdir(), 'dcache-bench-resp-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const respPort = await freePort();
    const proxy = await startProxy(redis.addressList, { env: { DC_RESP_PORT: String(respPort) } });
    stops.push(() => proxy.stop());
    await waitPong(respPort, proxy.proc, 'dcache RESP');
    const nc = await startNutcracker(redis, dir);
    stops.push(() => nc.proc.stop(2_000));
    const targets: Target[] = [
      { name: 'dcache', port: respPort, pid: proxy.pid, proc: proxy.proc },
      { name: 'nutcracker', port: nc.port, pid: nc.proc.pid!, proc: nc.proc },
    ];

    // MGET's keys are stored through dcache and read back through nutcracker: both place them alike.
    const mgetKeys = Array.from(
      { length: MGET_KEYSPACE },
      (_, i) => `key:${String(i).padStart(12, '0')}`,
    );
    const set = await respCommand('127.0.0.1', respPort, undefined, [
      'MSET',
      ...mgetKeys.flatMap((k) => [k, VALUE]),
    ]);
    if (set !== 'OK') throw new Error(`MSET through dcache: ${String(set)}`);
    const sample = mgetKeys.filter((_, i) => i % 97 === 0);
    for (const t of targets) {
      const got = await respCommand('127.0.0.1', t.port, undefined, ['MGET', ...sample]);
      if (!Array.isArray(got) || got.some((v) => v !== VALUE))
        throw new Error(`MGET through ${t.name} does not return the stored values: ${String(got)}`);
    }

    // Calibration (also the warm-up): a short run of each test sizes the measured runs.
    const sizes = new Map<string, number>();
    const key = (t: Target, test: Test, depth: number) => `${t.name} ${test.id} ${depth}`;
    for (const depth of DEPTHS)
      for (const test of TESTS)
        for (const t of targets) {
          const m = await bench(t, test, depth, calibrationSize(test, depth), redisPids);
          sizes.set(key(t, test, depth), Math.max(10_000, Math.round(m.rps * seconds)));
          ctx.log(`case 7 calibrate ${key(t, test, depth)}: ${Math.round(m.rps)}/s`);
        }

    const results = new Map<string, Measure[]>();
    for (let r = 0; r < ctx.runs; r++)
      for (const depth of DEPTHS)
        for (const test of TESTS)
          for (const t of targets) {
            const k = key(t, test, depth);
            const m = await bench(t, test, depth, sizes.get(k)!, redisPids);
            ctx.log(
              `case 7 ${k} run ${r + 1}/${ctx.runs}: ${Math.round(m.rps)}/s p99 ${m.p99} ms (${m.seconds.toFixed(1)} s)`,
            );
            results.set(k, [...(results.get(k) ?? []), m]);
          }

    const rows: Row[] = [];
    const checks: Check[] = [];
    const summary: string[] = [];
    for (const depth of DEPTHS)
      for (const test of TESTS) {
        const row = (t: Target): Row => {
          const ms = results.get(key(t, test, depth))!;
          const med = (f: (m: Measure) => number) => median(ms.map(f));
          return {
            label: `${t.name} ${test.id} -P ${depth}`,
            unit: 'req/s',
            value: med((m) => m.rps),
            runs: ms.map((m) => m.rps),
            p50: med((m) => m.p50),
            p99: med((m) => m.p99),
            max: Math.max(...ms.map((m) => m.max)),
            cpu: { server: med((m) => m.cpu.server), redis: med((m) => m.cpu.redis) },
            capacity: med((m) => (m.rps * 100) / (m.cpu.server + m.cpu.redis)),
            cpuUs: med((m) => (m.cpu.server * 10_000) / m.rps),
          };
        };
        const [d, n] = [row(targets[0]!), row(targets[1]!)];
        rows.push(d, n);
        const q = ratio(d.value, n.value);
        checks.push(check(`${test.id} -P ${depth} dcache / nutcracker`, q, '>=', TARGETS[depth]!));
        summary.push(
          `${test.id} -P ${depth}: dcache ${Math.round(d.value)}/s (p99 ${d.p99} ms), nutcracker ${Math.round(n.value)}/s (p99 ${n.p99} ms), ratio ${q.toFixed(2)} (target ≥ ${TARGETS[depth]}: ${q >= TARGETS[depth]! ? 'met' : 'NOT met'})`,
        );
      }
    for (const s of summary) ctx.log(`case 7 ${s}`);
    return {
      id: 'resp',
      title,
      setup:
        `3 redis-servers; dcache (RESP front end, DC_RESP_PORT, defaults otherwise) and nutcracker (murmur, ketama, weight 1, auto_eject_hosts false) over the same nodes, both and the nodes pinned to core 0; ` +
        `redis-benchmark on core 1, ${CLIENTS} clients, 100-byte values; SET and GET hit one key (redis-benchmark without -r), MGET reads ${MGET_KEYS} keys drawn from ${MGET_KEYSPACE.toLocaleString('en')} stored ones (-r); ` +
        `each run sized from a calibration run to last about ${seconds} s; runs interleaved dcache, nutcracker. p50/p99/max are redis-benchmark's; CPU from /proc. ` +
        `Commands: ${TESTS.map((t) => `\`${benchCommand(t, 'P', 'N')}\``).join(', ')} with P = ${DEPTHS.join(', ')}`,
      rows,
      checks,
      notes: [
        'redis-benchmark 7 has no MGET test (`-t mget` is ignored without a word), so MGET is given as a command line',
      ],
      chart: {
        throughput: { unit: 'req/s', bars: rows.map((r) => ({ label: r.label, value: r.value })) },
        p99: {
          unit: 'ms',
          bars: rows.map((r) => ({ label: r.label, value: r.p99 ?? Number.NaN })),
        },
      },
      raw: { sizes: Object.fromEntries(sizes), runs: Object.fromEntries(results) },
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await redis.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}
