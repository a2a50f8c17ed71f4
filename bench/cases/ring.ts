/** Case 4: ring lookup cost (bench/ring-lookup.ts functions) beside npm hashring. */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CORES } from '../lib/procs.js';
import { type BenchContext, type CaseResult, check, type Row } from '../lib/types.js';
import type { RingRow } from './ring-child.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Run case 4. */
export async function ringLookup(ctx: BenchContext): Promise<CaseResult> {
  ctx.log('case 4 ring lookup');
  const { stdout } = await promisify(execFile)(
    'taskset',
    [
      '-c',
      String(CORES.server),
      process.execPath,
      '--import',
      'tsx',
      join(here, 'ring-child.ts'),
      ctx.quick ? 'quick' : 'full',
    ],
    { cwd: join(here, '..'), timeout: 300_000 },
  );
  const { rows } = JSON.parse(stdout.trim().split('\n').pop()!) as { rows: RingRow[] };
  const out: Row[] = rows.map((r) => ({
    label: `${r.nodes} nodes, ${r.keyBytes}-byte keys`,
    unit: 'ns/op',
    value: r.ringNs,
    runs: [r.ringNs],
    note: `hashring.get ${Math.round(r.hashringNs)} ns/op: ${(r.hashringNs / r.ringNs).toFixed(1)}× faster`,
  }));
  const worst = Math.max(...rows.map((r) => r.ringNs));
  const minSpeedup = Math.min(...rows.map((r) => r.hashringNs / r.ringNs));
  return {
    id: 'ring',
    title: '4. Ring lookup (Ring.owner, murmur) beside hashring.get',
    setup: `one process pinned to core 0; median of ${ctx.quick ? 3 : 9} rounds over ${ctx.quick ? '20,000' : '50,000'} distinct keys per size (hashring keeps its default 5,000-entry LRU cache); functions of bench/ring-lookup.ts`,
    rows: out,
    checks: [
      check('slowest Ring.owner (any size)', worst, '<=', 300, 'ns'),
      check('smallest speed-up over hashring', minSpeedup, '>=', 10),
    ],
    notes: [],
    chart: {
      throughput: {
        unit: 'ns/op, lower is better',
        bars: rows.flatMap((r) => [
          { label: `dcache ring ${r.nodes}n/${r.keyBytes}B`, value: r.ringNs },
          { label: `hashring ${r.nodes}n/${r.keyBytes}B`, value: r.hashringNs },
        ]),
      },
      p99: {
        unit: '× faster than hashring',
        bars: rows.map((r) => ({
          label: `dcache ring ${r.nodes}n/${r.keyBytes}B`,
          value: r.hashringNs / r.ringNs,
        })),
      },
    },
    raw: rows,
  };
}
