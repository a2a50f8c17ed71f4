/**
 * Load generator process (autocannon), started once by lib/load.ts pinned to its own core. Reads
 * one LoadSpec per stdin line; for each runs the warm-up and then the measured window, and prints
 * WorkerMessage lines on stdout (runs are sequential). Exits when stdin ends. Latencies come from autocannon's per-response event (float ms),
 * so sub-millisecond percentiles keep their precision.
 */
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec, RequestSpec, WorkerMessage } from './load-spec.js';
import { percentileSorted } from './stats.js';

function send(m: WorkerMessage): void {
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

/** Most distinct requests a load cycles through (each is built once, then reused as a buffer). */
const MAX_REQUESTS = 256;

/**
 * The templates expanded into a static request list: entry j is template j mod T with its
 * (j div T)-th path and body. autocannon builds each request once and then only writes buffers;
 * a `setupRequest` callback would rebuild (and deep-clone a context) on every request, which
 * made the generator, not the server, the bottleneck.
 */
function expand(templates: readonly RequestSpec[]): autocannon.Request[] {
  const t = templates.length;
  const longest = Math.max(
    ...templates.map((r) => Math.max(r.paths.length, r.bodies?.length ?? 1)),
  );
  const n = Math.min(MAX_REQUESTS, t * longest);
  const out: autocannon.Request[] = [];
  for (let j = 0; j < n; j++) {
    const r = templates[j % t]!;
    const k = Math.floor(j / t);
    const req: autocannon.Request = { method: r.method, path: r.paths[k % r.paths.length]! };
    if (r.bodies) {
      req.body = r.bodies[k % r.bodies.length]!;
      req.headers = { 'content-type': r.contentType ?? 'application/json' };
    }
    out.push(req);
  }
  return out;
}

/**
 * One autocannon instance for the warm-up and the measured run together (connections stay open
 * across both): only requests sent after the warm-up count. autocannon starts each connection's
 * first request clock before it has built every connection's request buffers, so the set-up
 * time never reaches the figures either.
 */
async function one(spec: LoadSpec): Promise<void> {
  let finish: (r: autocannon.Result) => void = () => {};
  let fail: (e: Error) => void = () => {};
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const inst = autocannon(
    {
      url: spec.url,
      connections: spec.connections,
      duration: spec.warmupS + spec.durationS,
      requests: expand(spec.requests),
    },
    (err, r) => (err ? fail(err as Error) : finish(r)),
  );
  const from = performance.now() + spec.warmupS * 1_000;
  const lat: number[] = [];
  const rows: number[] = [];
  const status: Record<string, number> = {};
  inst.on('response', (_client, code, _bytes, ms) => {
    if (performance.now() - ms < from) return;
    status[code] = (status[code] ?? 0) + 1;
    lat.push(ms);
    if (spec.samplesFile) rows.push(Date.now(), ms, code);
  });
  let startedAt = Date.now();
  const startTimer = setTimeout(
    () => {
      startedAt = Date.now();
      send({ event: 'start', at: startedAt });
    },
    Math.max(0, from - performance.now()),
  );
  const res = await done;
  clearTimeout(startTimer);
  const endPerf = performance.now();
  const endedAt = Date.now();
  send({ event: 'end', at: endedAt });
  const sorted = Float64Array.from(lat).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  const durationS = (endPerf - from) / 1_000;
  const total = Object.values(status).reduce((a, n) => a + n, 0);
  const result: LoadResult = {
    startedAt,
    endedAt,
    durationS,
    requests: total,
    rps: total / durationS,
    status,
    errors: res.errors,
    timeouts: res.timeouts,
    latency: {
      p50: percentileSorted(sorted, 50),
      p90: percentileSorted(sorted, 90),
      p99: percentileSorted(sorted, 99),
      p999: percentileSorted(sorted, 99.9),
      max: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
      mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
    },
  };
  if (spec.samplesFile) {
    writeFileSync(spec.samplesFile, Buffer.from(Float64Array.from(rows).buffer));
  }
  send({ event: 'result', result });
}

async function main(): Promise<void> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) {
    if (!line.trim()) continue;
    try {
      await one(JSON.parse(line) as LoadSpec);
    } catch (e) {
      send({ event: 'error', message: (e as Error).stack ?? String(e) });
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    send({ event: 'error', message: (e as Error).stack ?? String(e) });
    process.exit(1);
  },
);
