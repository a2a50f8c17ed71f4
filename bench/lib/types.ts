/** Shared shapes of the benchmark harness: run settings, case results, checks. */
import type { Measured } from './load.js';

/** Settings every case receives from run.ts. */
export interface BenchContext {
  quick: boolean;
  /** Measured runs per variant (median reported). */
  runs: number;
  durationS: number;
  warmupS: number;
  /** Concurrent HTTP connections of the load generator. */
  connections: number;
  /** Case 1 only: the servers to compare (default all: dcache, minimal, webdis). */
  servers?: readonly string[];
  log(msg: string): void;
}

/** One measured variant of a case, e.g. "dcache GET". */
export interface Row {
  label: string;
  /** Unit of `value`: req/s, keys/s, ns/op, MiB, %. */
  unit: string;
  /** Median over the runs. */
  value: number;
  /** Each run's value. */
  runs: number[];
  /** Latency per call (median over runs of each run's percentile), ms. */
  p50?: number;
  p99?: number;
  max?: number;
  /** Median percent of one core used by the server process and by Redis during the runs. */
  cpu?: Record<string, number>;
  /**
   * Median of rps × 100 / (server CPU % + Redis CPU %): the rate the server and its Redis would
   * reach with all of core 0 to themselves. Unlike `value` it does not depend on whether the load
   * generator could saturate them.
   */
  capacity?: number;
  /** Median Redis commands per read event (pipelining depth). */
  cmdsPerRead?: number;
  /** Median server CPU time per response, µs (robust to other load on the machine). */
  cpuUs?: number;
  /** Non-2xx responses and socket errors over all runs. */
  non2xx?: number;
  errors?: number;
  note?: string;
}

/** A target: `value op target`. */
export interface Check {
  name: string;
  value: number;
  op: '>=' | '<=';
  target: number;
  unit: string;
  met: boolean;
  /** Shown beside the check (e.g. that it is informational, not the target). */
  note?: string;
}

/** A bar of the SVG chart. */
export interface Bar {
  label: string;
  value: number;
}

/** What a case reports. */
export interface CaseResult {
  id: string;
  title: string;
  /** How it was run (servers, nodes, connections, data). */
  setup: string;
  rows: Row[];
  checks: Check[];
  notes: string[];
  /** Chart panels: throughput-like and latency-like bars. */
  chart: { throughput?: { unit: string; bars: Bar[] }; p99?: { unit: string; bars: Bar[] } };
  /** Case-specific raw data kept in the JSON file. */
  raw?: unknown;
}

/** Build a check. */
export function check(
  name: string,
  value: number,
  op: '>=' | '<=',
  target: number,
  unit = 'x',
  note?: string,
): Check {
  const met = Number.isFinite(value) && (op === '>=' ? value >= target : value <= target);
  return { name, value, op, target, unit, met, ...(note ? { note } : {}) };
}

/** Summarise runs of one variant into a row (throughput = responses with status 2xx per second). */
export function rowOf(
  label: string,
  runs: readonly Measured[],
  opts: { unit?: string; perCall?: number; cpuKeys?: readonly string[] } = {},
  median: (xs: number[]) => number,
): Row {
  const per = opts.perCall ?? 1;
  const ok = (m: Measured) =>
    Object.entries(m.status)
      .filter(([s]) => s.startsWith('2'))
      .reduce((a, [, n]) => a + n, 0);
  const vals = runs.map((m) => (ok(m) * per) / m.durationS);
  const cpu: Record<string, number> = {};
  for (const k of opts.cpuKeys ?? Object.keys(runs[0]?.cpu ?? {}))
    cpu[k] = median(runs.map((m) => m.cpu[k] ?? Number.NaN));
  cpu['server core busy'] = median(runs.map((m) => m.coreBusy.server));
  cpu['load core busy'] = median(runs.map((m) => m.coreBusy.load));
  return {
    label,
    unit: opts.unit ?? 'req/s',
    value: median(vals),
    runs: vals,
    p50: median(runs.map((m) => m.latency.p50)),
    p99: median(runs.map((m) => m.latency.p99)),
    max: Math.max(...runs.map((m) => m.latency.max)),
    cpu,
    capacity: median(
      runs.map((m) => (m.rps * per * 100) / ((m.cpu.server ?? Number.NaN) + (m.cpu.redis ?? 0))),
    ),
    cmdsPerRead: median(runs.map((m) => m.redisCmdsPerRead ?? Number.NaN)),
    cpuUs: median(runs.map((m) => ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps)),
    non2xx: runs.reduce((a, m) => a + m.requests - ok(m), 0),
    errors: runs.reduce((a, m) => a + m.errors + m.timeouts, 0),
  };
}
