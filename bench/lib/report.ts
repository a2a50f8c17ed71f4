/**
 * Writes a benchmark run: results/<date>.json, latest.md and chart.svg. Quick runs write
 * quick-*, partial runs (some cases, servers or settings only) partial-*: both git-ignored, so a
 * smoke or experiment run never replaces the full suite's report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartSvg } from './chart.js';
import { fmt, median } from './stats.js';
import type { BenchContext, CaseResult, Row } from './types.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Facts about the run itself. */
export interface RunInfo {
  quick: boolean;
  /** Some cases, servers or non-default settings only. */
  partial: boolean;
  ctx: BenchContext;
  /** 1-minute load averages sampled every 5 s during the run. */
  loads: number[];
  startedAt: Date;
  seconds: number;
  command: string;
}

/** The machine the figures come from. */
export function machine() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

function cell(x: number | undefined, digits = 3): string {
  return x === undefined ? '' : fmt(x, digits);
}

/** Busy % of a core not explained by our processes on it (never below 0). */
function other(busy: number | undefined, ours: number): string {
  return busy === undefined || !Number.isFinite(busy) ? '' : fmt(Math.max(0, busy - ours), 2);
}

function rowLine(r: Row): string {
  const cpu = r.cpu ?? {};
  return `| ${r.label} | ${cell(r.value)} ${r.unit} | ${r.runs.map((x) => fmt(x)).join(' / ')} | ${cell(r.capacity)} | ${cell(r.p50)} | ${cell(r.p99)} | ${cell(r.max)} | ${cell(cpu.server, 2)} | ${cell(r.cpuUs)} | ${cell(cpu.redis, 2)} | ${cell(r.cmdsPerRead)} | ${cell(cpu.load, 2)} | ${other(cpu['server core busy'], (cpu.server ?? 0) + (cpu.redis ?? 0))} / ${other(cpu['load core busy'], cpu.load ?? 0)} | ${r.non2xx ?? ''} | ${r.errors ?? ''} |`;
}

/** The markdown report. */
export function markdown(results: readonly CaseResult[], info: RunInfo, chartFile: string): string {
  const m = machine();
  const l = info.loads;
  const out: string[] = [];
  out.push(
    `# dcache benchmark${info.quick ? ' (quick smoke run — not for comparison)' : info.partial ? ' (partial run)' : ''}`,
  );
  out.push('');
  out.push(
    `${info.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${m.cpu} · ${m.cores} cores · ${m.memGiB} GiB · Node ${m.node} · ${m.platform}`,
  );
  out.push('');
  out.push(`Command: \`${info.command}\` (${Math.round(info.seconds)} s)`);
  out.push('');
  out.push(
    `Load average (1 min) before the run ${fmt(l[0] ?? Number.NaN)}; during it median ${fmt(median(l))}, max ${fmt(Math.max(...l))}. ` +
      'The benchmark itself keeps about two processes busy (server core and generator core), so only the excess over ~2 is other work; the tables show, per variant, the part of each core that our processes do not explain. ' +
      `${(l[0] ?? 0) > 1.5 || Math.max(...l) > 3.5 ? '**Other work shared the machine during this run**: absolute figures are noisy; ratios come from interleaved runs of the same moment. ' : ''}` +
      `Pinning: servers under test and their redis-servers on core 0, the autocannon process on core 1 (\`taskset\`). ` +
      `${info.ctx.runs} measured run${info.ctx.runs > 1 ? 's' : ''} of ${info.ctx.durationS} s per variant after ${info.ctx.warmupS} s of warm-up; the median is reported.`,
  );
  out.push('');
  out.push('## Targets');
  out.push('');
  out.push('| case | check | measured | target | met | |');
  out.push('|---|---|---:|---:|:---:|---|');
  for (const c of results)
    for (const k of c.checks)
      out.push(
        `| ${c.title.split(' ')[0]} | ${k.name} | ${fmt(k.value)}${k.unit === 'x' ? '×' : ` ${k.unit}`} | ${k.op} ${fmt(k.target)}${k.unit === 'x' ? '×' : ` ${k.unit}`} | ${k.met ? 'yes' : '**no**'} | ${k.note ?? ''} |`,
      );
  out.push('');
  out.push(`![throughput and p99 per case](${chartFile})`);
  out.push('');
  for (const c of results) {
    out.push(`## ${c.title}`);
    out.push('');
    out.push(c.setup);
    out.push('');
    out.push(
      '| variant | median | each run | CPU capacity req/s | p50 ms | p99 ms | max ms | server CPU % | server CPU µs/resp | redis CPU % | Redis cmds/read | generator CPU % | other work on core 0 / 1, % | non-2xx | socket errors |',
    );
    out.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of c.rows) out.push(rowLine(r));
    const withNotes = c.rows.filter((r) => r.note);
    if (withNotes.length > 0 || c.notes.length > 0) out.push('');
    for (const r of withNotes) out.push(`- ${r.label}: ${r.note}`);
    for (const n of c.notes) out.push(`- ${n}`);
    out.push('');
  }
  out.push(
    'CPU % is percent of one core over the measured run (the server process with all its threads; Redis summed over its nodes); ' +
      "CPU µs/resp is the server's CPU time per response, the figure least disturbed by other work on a shared machine. " +
      '"Other work" is a core\'s busy % minus our processes on it (server and Redis on core 0, the generator on core 1). ' +
      'This machine is a VM that reports no steal time: contention from outside it does not show there, only as slower runs, which is why every run is listed.',
  );
  out.push('');
  return `${out.join('\n')}\n`;
}

/** Write the JSON, markdown and SVG of a run; returns the paths written. */
export function writeReport(results: readonly CaseResult[], info: RunInfo): string[] {
  mkdirSync(RESULTS, { recursive: true });
  const prefix = info.quick ? 'quick-' : info.partial ? 'partial-' : '';
  const date = info.startedAt.toISOString().slice(0, 10);
  const json = join(RESULTS, prefix ? `${prefix}latest.json` : `${date}.json`);
  const md = join(RESULTS, `${prefix}latest.md`);
  const svgName = `${prefix}chart.svg`;
  const svg = join(RESULTS, svgName);
  writeFileSync(
    json,
    `${JSON.stringify(
      {
        date: info.startedAt.toISOString(),
        command: info.command,
        seconds: info.seconds,
        machine: machine(),
        loadAverage: { samples: info.loads, end: loadavg() },
        settings: {
          quick: info.quick,
          runs: info.ctx.runs,
          durationS: info.ctx.durationS,
          warmupS: info.ctx.warmupS,
          connections: info.ctx.connections,
        },
        results,
      },
      (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
      2,
    )}\n`,
  );
  writeFileSync(md, markdown(results, info, svgName));
  writeFileSync(
    svg,
    chartSvg(results, prefix ? `${prefix.slice(0, -1)} run` : `${date}, ${machine().cores} cores`),
  );
  return [json, md, svg];
}
