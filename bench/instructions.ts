/**
 * Instructions per response under valgrind's callgrind, for the proxy and the minimal node:http +
 * ioredis server: each takes a warm-up load, gets its counters zeroed (`callgrind_control -z`),
 * serves a fixed number of GETs or PUTs and dumps them. The count (user space, every thread)
 * moves far less with the machine's load than req/s does, so it shows what a code change does
 * (one build against another). It is not the throughput ratio: under valgrind a server runs
 * ~50× slower, each event-loop turn sees fewer requests, V8 compiles at other moments, and
 * kernel time and memory stalls are not counted. Writes bench/results/instructions.md.
 *   npm run build && npx tsx bench/instructions.ts [requests=20000] [warmup=8000]
 * Experiments: `--ops=GET` (or PUT), `--main=<another build's main.js>`,
 * `--servers=dcache` (a partial run prints its table and writes nothing).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, startRedis } from '@dcache/test-utils';
import autocannon from 'autocannon';
import { keys, putSpec, VALUE } from './cases/data.js';
import { type Server, seed, startMinimal, startProxy } from './lib/procs.js';
import { fmt } from './lib/stats.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const CONNECTIONS = 16;
// Under callgrind on a busy machine the proxy runs 50-100x slower: its own deadlines would fail
// requests (504) and probes would eject the node (503). Same timers armed, later deadlines.
const SLOW = {
  DC_CACHE_COMMAND_TIMEOUT: '120s',
  DC_HEALTH_TIMEOUT: '60s',
  DC_HEALTH_INTERVAL: '60s',
  DC_HEALTH_FAILURE_THRESHOLD: '1000',
  // A 30 s stall (JIT of a new path under callgrind on a loaded host) closed sockets mid-PUT.
  DC_SERVER_READ_TIMEOUT: '600s',
  DC_SERVER_WRITE_TIMEOUT: '600s',
};

/** Send exactly `amount` requests over CONNECTIONS connections; throws on any non-2xx. */
async function load(url: string, reqs: autocannon.Request[], amount: number): Promise<void> {
  // A server under callgrind on a busy machine can take seconds per answer: wait for them.
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    amount,
    requests: reqs,
    timeout: 300,
  });
  const bad = r.non2xx + r.errors + r.timeouts;
  if (bad > 0)
    throw new Error(
      `${url}: ${bad} failed responses of ${amount} (non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts})`,
    );
}

/** Callgrind's instruction total in the dump files of `pid` in `dir`. */
function totalOf(dir: string, pid: number): number {
  let total = 0;
  for (const f of readdirSync(dir).filter((n) => n.startsWith(`cg.${pid}.`))) {
    const m = /^summary: (\d+)$/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (!m) throw new Error(`no summary line in ${f}`);
    total += Number(m[1]);
  }
  return total;
}

async function measure(
  start: (wrap: string[]) => Promise<Server>,
  reqs: autocannon.Request[],
  warmup: number,
  n: number,
): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'dcache-cg-'));
  const wrap = [
    'valgrind',
    '--tool=callgrind',
    // V8 writes and patches machine code on its heap: callgrind must see that code change.
    '--smc-check=all-non-file',
    `--callgrind-out-file=${join(dir, 'cg.%p')}`,
  ];
  const s = await start(wrap);
  try {
    await load(s.url, reqs, warmup);
    execFileSync('callgrind_control', ['-z', String(s.pid)], { stdio: 'ignore' });
    await load(s.url, reqs, n);
    execFileSync('callgrind_control', ['-d', String(s.pid)], { stdio: 'ignore' });
    return totalOf(dir, s.pid) / n;
  } finally {
    await s.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
  const [nArg, wArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const flag = (name: string) =>
    flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
  const n = Number(nArg ?? 20_000);
  const warmup = Number(wArg ?? 8_000);
  const ops = (flag('ops') ?? 'GET,PUT').split(',');
  const build = flag('main');
  const servers = (flag('servers') ?? 'dcache,minimal').split(',');
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('valgrind is not installed (Debian package valgrind)');
  }
  const redis = await startRedis();
  const rows: string[] = [];
  const per: Record<string, Record<string, number>> = {};
  try {
    const ks = keys('cg', 256);
    const tmp = await startProxy(redis.address, build ? { main: build } : {});
    await seed(tmp.url, ks, VALUE);
    await tmp.stop();
    const get: autocannon.Request[] = ks.map((k) => ({
      method: 'GET',
      path: `/api/v1/cache/${encodeURIComponent(k)}`,
    }));
    const ps = putSpec(keys('cgp', 256));
    const put: autocannon.Request[] = ps.paths.map((path) => ({
      method: 'PUT',
      path,
      body: ps.bodies?.[0] as string,
      headers: { 'content-type': 'application/json' },
    }));
    for (const [op, reqs] of [
      ['GET', get],
      ['PUT', put],
    ] as const) {
      if (!ops.includes(op)) continue;
      per[op] = {};
      for (const [name, start] of [
        [
          'dcache',
          (w: string[]) =>
            startProxy(redis.address, { wrap: w, env: SLOW, ...(build ? { main: build } : {}) }),
        ],
        ['minimal', (w: string[]) => startMinimal(redis.address, w)],
      ] as const) {
        if (!servers.includes(name)) continue;
        process.stderr.write(`${op} ${name}: ${warmup} warm-up + ${n} counted requests…\n`);
        const v = await measure(start, reqs, warmup, n);
        per[op]![name] = v;
        process.stderr.write(`${op} ${name}: ${fmt(v)} instructions per response\n`);
      }
      const d = per[op]!.dcache ?? Number.NaN;
      const m = per[op]!.minimal ?? Number.NaN;
      rows.push(`| ${op} | ${fmt(d)} | ${fmt(m)} | ${(m / d).toFixed(3)}× |`);
    }
  } finally {
    await redis.close();
    await cleanupAll();
  }
  const md = [
    '# Instructions per response (callgrind)',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus()[0]?.model.trim()} (${cpus().length} cores), Node ${process.version}. ` +
      `Each server under \`valgrind --tool=callgrind\` over one Redis, ${warmup} warm-up requests, counters zeroed, then ${n} counted requests ` +
      `over ${CONNECTIONS} connections (256 keys in turn, 100-byte values). Command: \`npx tsx bench/instructions.ts ${n} ${warmup}\`.`,
    '',
    'User-space instructions of the whole server process (all threads: JIT, GC, the libuv pool) per response. ' +
      'The count moves far less with the machine’s load than req/s, so it compares builds of one server (a code change); ' +
      'it is not the throughput ratio of two servers: under valgrind each runs ~50× slower, an event-loop turn sees fewer requests, ' +
      'V8 compiles at other moments, and kernel time and memory stalls are left out (see analysis.md).',
    '',
    '| op | dcache | minimal node:http + ioredis | minimal ÷ dcache |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (build === undefined && ops.length === 2 && servers.length === 2) {
    writeFileSync(join(RESULTS, 'instructions.md'), md);
    process.stdout.write(`written to ${join(RESULTS, 'instructions.md')}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
