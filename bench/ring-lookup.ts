/**
 * Micro-benchmark of @dcache/ring lookups beside npm hashring, plus balance and
 * key-movement figures. Run: `npm run build -w @dcache/ring && npx tsx bench/ring-lookup.ts`.
 * Writes bench/results/ring-latest.md. Informational, not a pass/fail test.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type HashName, Ring } from '@dcache/ring';
import HashRing from 'hashring';

const POOL = 50_000; // distinct keys per size: more than hashring's 5,000-entry LRU
const PER_ROUND = 200_000;
const WARMUP = 3;
const ROUNDS = 9;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `n` deterministic keys of `len` characters (`user:<i>:` then random [a-z0-9]). */
export function makeKeys(len: number, n: number, seed: number): string[] {
  const r = rng(seed);
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from({ length: n }, (_, i) => {
    let s = `user:${i}:`;
    while (s.length < len) s += abc[Math.floor(r() * abc.length)];
    return s.slice(0, len);
  });
}

/** `n` node ids shaped like real addresses. */
export const nodeIds = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${(i & 255) + 1}:6379`);

let sink = 0;

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Rounds of {@link measure}. */
export interface MeasureOptions {
  perRound?: number;
  warmup?: number;
  rounds?: number;
}

/** ns per call of `fn` over the key pool, median of `rounds` (default 9) after `warmup` (3). */
export function measure(
  keys: readonly string[],
  fn: (k: string) => string | undefined,
  perRound = PER_ROUND,
  { warmup = WARMUP, rounds = ROUNDS }: Omit<MeasureOptions, 'perRound'> = {},
): number {
  const times: number[] = [];
  const pool = keys.length;
  for (let round = 0; round < warmup + rounds; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) sink += fn(keys[i % pool]!)?.length ?? 0;
    const dt = Number(process.hrtime.bigint() - t0) / perRound;
    if (round >= warmup) times.push(dt);
  }
  return median(times);
}

/** The full micro-benchmark: prints the tables, writes results/ring-latest.md, updates the ring README. */
export function main(): void {
  const lines: string[] = [];
  const out = (s = '') => {
    lines.push(s);
    console.log(s);
  };

  out('# @dcache/ring micro-benchmark');
  out();
  out(
    `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ` +
      `${new Date().toISOString().slice(0, 10)}. Median of ${ROUNDS} rounds of ${PER_ROUND.toLocaleString('en')} ` +
      `lookups (a quarter of that for the md5 columns) after ${WARMUP} warm-up rounds, over ${POOL.toLocaleString('en')} distinct keys ` +
      '(hashring with its default 5,000-entry LRU cache). ' +
      `Load average at start: ${loadavg()[0]?.toFixed(2)} — figures from a shared, busy machine are noisy.`,
  );
  out();
  out('## Lookup cost (ns/op, lower is better)');
  out();
  out(
    '| nodes | key bytes | ring murmur (default) | ring md5 | hashring.get (md5) | speed-up vs hashring |',
  );
  out('|---:|---:|---:|---:|---:|---:|');
  for (const n of [3, 32, 256]) {
    const ids = nodeIds(n);
    const rings: Record<HashName, Ring> = {
      murmur: new Ring(ids.map((id) => ({ id }))),
      md5: new Ring(
        ids.map((id) => ({ id })),
        { hash: 'md5' },
      ),
      fnv1a_64: new Ring(
        ids.map((id) => ({ id })),
        { hash: 'fnv1a_64' },
      ),
    };
    const hr = new HashRing(ids, 'md5');
    for (const len of [16, 64]) {
      const keys = makeKeys(len, POOL, n * 100 + len);
      const mur = measure(keys, (k) => rings.murmur.owner(k));
      const md5 = measure(keys, (k) => rings.md5.owner(k), PER_ROUND / 4);
      const h = measure(keys, (k) => hr.get(k), PER_ROUND / 4);
      out(
        `| ${n} | ${len} | ${mur.toFixed(0)} | ${md5.toFixed(0)} | ${h.toFixed(0)} | ${(h / mur).toFixed(1)}x |`,
      );
    }
  }
  out();

  out('## Balance (100,000 keys `k:0`…`k:99999`, equal weights)');
  out();
  out('| nodes | hash | max / mean keys per node | min / mean | max share() / ideal |');
  out('|---:|---|---:|---:|---:|');
  const balanceKeys = Array.from({ length: 100_000 }, (_, i) => `k:${i}`);
  for (const n of [8, 32]) {
    for (const hash of ['murmur', 'fnv1a_64', 'md5'] as const) {
      const ring = new Ring(
        nodeIds(n).map((id) => ({ id })),
        { hash },
      );
      const c = new Map<string, number>(ring.nodes.map((x) => [x.id, 0]));
      for (const k of balanceKeys) {
        const o = ring.owner(k);
        c.set(o, c.get(o)! + 1);
      }
      const mean = balanceKeys.length / n;
      const vals = [...c.values()];
      const maxShare = Math.max(...ring.share().values()) * n;
      out(
        `| ${n} | ${hash} | ${(Math.max(...vals) / mean).toFixed(3)} | ${(Math.min(...vals) / mean).toFixed(3)} | ${maxShare.toFixed(3)} |`,
      );
    }
  }
  out();

  out('## Keys moved on membership change (100,000 keys, murmur, equal weights)');
  out();
  out('| change | moved | ideal | moved only to/from that node |');
  out('|---|---:|---:|---|');
  for (const n of [8, 32]) {
    const ids = nodeIds(n);
    const base = new Ring(ids.map((id) => ({ id })));
    const added = new Ring([...ids, '10.9.9.9:6379'].map((id) => ({ id })));
    const gone = ids[3]!;
    const removed = new Ring(ids.filter((id) => id !== gone).map((id) => ({ id })));
    const eject = new Set([gone]);
    let mAdd = 0;
    let mRem = 0;
    let mEj = 0;
    let onlyAdd = true;
    let onlyRem = true;
    let onlyEj = true;
    for (const k of balanceKeys) {
      const o = base.owner(k);
      const a = added.owner(k);
      if (a !== o) {
        mAdd++;
        if (a !== '10.9.9.9:6379') onlyAdd = false;
      }
      if (removed.owner(k) !== o) {
        mRem++;
        if (o !== gone) onlyRem = false;
      }
      if (base.ownerExcluding(k, eject) !== o) {
        mEj++;
        if (o !== gone) onlyEj = false;
      }
    }
    const pct = (x: number) => `${((100 * x) / balanceKeys.length).toFixed(2)}%`;
    const ideal = (x: number) => `${(100 * x).toFixed(2)}%`;
    const share = base.share().get(gone)!;
    out(
      `| add 1 to ${n} (rebuild) | ${pct(mAdd)} | ${ideal(1 / (n + 1))} | ${onlyAdd ? 'yes' : 'no'} |`,
    );
    out(
      `| remove 1 of ${n} (rebuild) | ${pct(mRem)} | ${ideal(1 / n)} | ${onlyRem ? 'yes' : 'no'} |`,
    );
    out(
      `| eject 1 of ${n} (skip-walk) | ${pct(mEj)} | ${ideal(share)} (its share) | ${onlyEj ? 'yes' : 'no'} |`,
    );
  }
  out();
  if (sink === 42) console.log('');

  const here = dirname(fileURLToPath(import.meta.url));
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'ring-latest.md'), `${lines.join('\n')}\n`);
  console.log(`\nwritten to ${join(here, 'results', 'ring-latest.md')}`);

  // Keep the table in packages/ring/README.md current (between the bench markers).
  const readme = join(here, '..', 'packages', 'ring', 'README.md');
  if (existsSync(readme)) {
    const text = readFileSync(readme, 'utf8');
    const start = '<!-- bench:start -->';
    const end = '<!-- bench:end -->';
    const a = text.indexOf(start);
    const b = text.indexOf(end);
    if (a >= 0 && b > a) {
      const body = lines.slice(2).join('\n').replace(/^## /gm, '### ');
      writeFileSync(readme, `${text.slice(0, a + start.length)}\n\n${body}\n${text.slice(b)}`);
      console.log(`updated ${readme}`);
    }
  }
}

/** Defeats dead-code elimination of measured calls (read by callers that print it). */
export const sinkValue = (): number => sink;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
