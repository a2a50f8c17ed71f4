/**
 * Ring lookup measurements for case 4, run as its own process pinned to the server core.
 * Prints one JSON line: ns/op of Ring.owner (murmur, the default) and hashring.get per size.
 * argv[2] = 'quick' for fewer rounds.
 */
import { Ring } from '@dcache/ring';
import HashRing from 'hashring';
import { makeKeys, measure, nodeIds, sinkValue } from '../ring-lookup.js';

/** One measured configuration. */
export interface RingRow {
  nodes: number;
  keyBytes: number;
  ringNs: number;
  hashringNs: number;
}

const quick = process.argv[2] === 'quick';
const POOL = quick ? 20_000 : 50_000;
const PER = quick ? 50_000 : 200_000;
const opts = quick ? { warmup: 1, rounds: 3 } : { warmup: 3, rounds: 9 };
const rows: RingRow[] = [];
for (const n of [3, 32, 256]) {
  const ids = nodeIds(n);
  const ring = new Ring(ids.map((id) => ({ id })));
  const hr = new HashRing(ids, 'md5');
  for (const len of [16, 64]) {
    const keys = makeKeys(len, POOL, n * 100 + len);
    rows.push({
      nodes: n,
      keyBytes: len,
      ringNs: measure(keys, (k) => ring.owner(k), PER, opts),
      hashringNs: measure(keys, (k) => hr.get(k), PER / 4, opts),
    });
  }
}
process.stdout.write(`${JSON.stringify({ rows, sink: sinkValue() % 10 })}\n`);
