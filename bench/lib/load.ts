/**
 * Parent side of the load runs: one long-lived lib/load-worker.ts process pinned to the load
 * core (no start-up cost per run), fed one spec per line; measures CPU while each run lasts.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisServer } from '@dcache/test-utils';
import type { LoadResult, LoadSpec, WorkerMessage } from './load-spec.js';
import { CORES, type CoreTicks, coreTicks, cpuTicks } from './procs.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLK_TCK = 100;

/** A load result plus the CPU the watched processes and the two cores used during the measured run. */
export interface Measured extends LoadResult {
  /** Percent of one core per watched process name, over the measured run. */
  cpu: Record<string, number>;
  /** Busy percent of the server core and of the load core (every process on them, ours or not). */
  coreBusy: { server: number; load: number };
  /** Redis commands per read event over the run (the pipelining depth the servers achieved). */
  redisCmdsPerRead?: number;
}

/** Options of {@link runLoad}. */
export interface RunOptions {
  /** Names → pids whose CPU use is reported. */
  watch?: Record<string, readonly number[]>;
  /** Redis nodes whose INFO stats give the pipelining depth. */
  redis?: readonly RedisServer[];
  /** Called when the measured run starts (after the warm-up) and when it ends. */
  onStart?: (at: number) => void;
  onEnd?: (at: number) => void;
}

interface Worker {
  child: ChildProcessWithoutNullStreams;
  stderr: string;
  listener: ((m: WorkerMessage) => void) | undefined;
  exited: Promise<number | null>;
}

let worker: Worker | undefined;

function startWorker(): Worker {
  const child = spawn(
    'taskset',
    ['-c', String(CORES.load), process.execPath, '--import', 'tsx', join(here, 'load-worker.ts')],
    { cwd: join(here, '..'), stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const w: Worker = {
    child,
    stderr: '',
    listener: undefined,
    exited: new Promise((resolve) => child.once('exit', resolve)),
  };
  child.stderr.on('data', (d: Buffer) => {
    w.stderr = (w.stderr + d.toString()).slice(-8_000);
  });
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('{')) w.listener?.(JSON.parse(line) as WorkerMessage);
    }
  });
  void w.exited.then(() => {
    if (worker === w) worker = undefined;
  });
  return w;
}

/** Stop the load worker (run.ts calls it at the end). */
export async function stopLoadWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (!w) return;
  w.child.stdin.end();
  const t = setTimeout(() => w.child.kill('SIGKILL'), 5_000);
  await w.exited;
  clearTimeout(t);
}

/** Run `spec` on the load worker; resolves with its result and the CPU used meanwhile. */
export async function runLoad(spec: LoadSpec, opts: RunOptions = {}): Promise<Measured> {
  worker ??= startWorker();
  const w = worker;
  const watch: Record<string, readonly number[]> = { ...opts.watch };
  if (w.child.pid !== undefined) watch.load = [w.child.pid];
  const snap = () => ({
    ticks: Object.fromEntries(
      Object.entries(watch).map(([k, pids]) => [k, pids.reduce((s, p) => s + cpuTicks(p), 0)]),
    ),
    cores: coreTicks(),
  });
  const stats = async (): Promise<{ cmds: number; reads: number }> => {
    let cmds = 0;
    let reads = 0;
    for (const n of opts.redis ?? []) {
      const info = String(await n.command('INFO', 'stats'));
      cmds += Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0);
      reads += Number(/total_reads_processed:(\d+)/.exec(info)?.[1] ?? 0);
    }
    return { cmds, reads };
  };
  let statsBefore: Promise<{ cmds: number; reads: number }> | undefined;
  let statsAfter: Promise<{ cmds: number; reads: number }> | undefined;
  let before: { ticks: Record<string, number>; cores: CoreTicks[] } | undefined;
  let after: { ticks: Record<string, number>; cores: CoreTicks[] } | undefined;
  const limitMs = (spec.warmupS + spec.durationS) * 1_000 + 60_000;
  let killer: NodeJS.Timeout | undefined;
  const result = await new Promise<LoadResult>((resolve, reject) => {
    killer = setTimeout(() => {
      w.child.kill('SIGKILL');
      reject(new Error(`load worker exceeded ${limitMs} ms`));
    }, limitMs);
    void w.exited.then((code) =>
      reject(
        new Error(`load worker exited (${code}): ${w.stderr.split('\n').slice(-20).join('\n')}`),
      ),
    );
    w.listener = (m) => {
      if (m.event === 'start') {
        before = snap();
        if (opts.redis) statsBefore = stats();
        opts.onStart?.(m.at);
      } else if (m.event === 'end') {
        after = snap();
        if (opts.redis) statsAfter = stats();
        opts.onEnd?.(m.at);
      } else if (m.event === 'result') resolve(m.result);
      else reject(new Error(`load worker: ${m.message}`));
    };
    w.child.stdin.write(`${JSON.stringify(spec)}\n`);
  }).finally(() => {
    clearTimeout(killer);
    w.listener = undefined;
  });
  if (!before || !after) throw new Error('load worker sent no start/end events');
  const secs = result.durationS;
  const cpu: Record<string, number> = {};
  for (const k of Object.keys(watch))
    cpu[k] = (100 * ((after.ticks[k] ?? 0) - (before.ticks[k] ?? 0))) / CLK_TCK / secs;
  const busy = (i: number) => {
    const a = before?.cores[i];
    const b = after?.cores[i];
    if (!a || !b || b.total === a.total) return Number.NaN;
    return (100 * (b.busy - a.busy)) / (b.total - a.total);
  };
  const out: Measured = {
    ...result,
    cpu,
    coreBusy: { server: busy(CORES.server), load: busy(CORES.load) },
  };
  if (statsBefore && statsAfter) {
    const [a, b] = await Promise.all([statsBefore, statsAfter]);
    // Each INFO call is itself one command and one read: leave them out.
    const n = opts.redis?.length ?? 0;
    out.redisCmdsPerRead = (b.cmds - a.cmds - n) / Math.max(1, b.reads - a.reads - n);
  }
  return out;
}

/** Read a worker's samples file: [epoch ms, latency ms, status] per response. */
export function readSamples(file: string): { at: number; ms: number; status: number }[] {
  const b = readFileSync(file);
  const f = new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
  const out: { at: number; ms: number; status: number }[] = [];
  for (let i = 0; i + 2 < f.length; i += 3)
    out.push({ at: f[i]!, ms: f[i + 1]!, status: f[i + 2]! });
  return out;
}
