/**
 * Differential test against npm `hashring` (libketama port) in md5 mode.
 * hashring builds floor(weight/total * 40 * N) hashes per server in double
 * precision, md5("<server>-<i>") with 4 little-endian points per digest, and
 * hashes keys with the first 4 md5 bytes little-endian - the same as our Ring with
 * `hash: 'md5'` and equal weights, except where float32 (twemproxy, us) and
 * double (hashring) round 40*N/N differently: N = 7, 14, 28 (and 25 the other way).
 */
import HashRing from 'hashring';
import { describe, expect, it } from 'vitest';
import { ketamaPointsFor, Ring } from '../src/index.js';

const servers = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:6379`);
const KEYS = Array.from({ length: 100_000 }, (_, i) => `key:${i}:${(i * 2654435761) >>> 0}`);

/** hashring keeps its continuum in an untyped `ring` array. */
const continuumSize = (h: HashRing): number => (h as unknown as { ring: unknown[] }).ring.length;

function diff(ring: Ring, oracle: HashRing): number {
  let d = 0;
  for (const k of KEYS) if (ring.owner(k) !== oracle.get(k)) d++;
  return d;
}

describe('differential vs npm hashring (md5)', () => {
  for (const n of [1, 2, 3, 5, 8, 16, 32]) {
    it(`identical owners for 100k keys, N=${n}`, () => {
      const s = servers(n);
      const oracle = new HashRing(s, 'md5', { 'max cache size': 1 });
      const ring = new Ring(
        s.map((id) => ({ id })),
        { hash: 'md5' },
      );
      expect(ring.pointCount).toBe(continuumSize(oracle));
      expect(diff(ring, oracle)).toBe(0);
      // replica walk agrees too
      for (const k of KEYS.slice(0, 2000)) {
        expect(ring.owners(k, Math.min(3, n))).toEqual(oracle.range(k, Math.min(3, n)));
      }
    });
  }

  it('N=7 diverges: hashring gives 156 points per server (double), twemproxy/us 160 (float32)', () => {
    const s = servers(7);
    const oracle = new HashRing(s, 'md5', { 'max cache size': 1 });
    const ring = new Ring(
      s.map((id) => ({ id })),
      { hash: 'md5' },
    );
    expect(Math.floor((1 / 7) * 40 * 7) * 4).toBe(156);
    expect(ketamaPointsFor(1, 7, 7)).toBe(160);
    expect(continuumSize(oracle)).toBe(7 * 156);
    expect(ring.pointCount).toBe(7 * 160);
    const d = diff(ring, oracle);
    // Deterministic: 2,466 of these 100,000 keys (2.5%) land on another node.
    expect(d).toBe(2466);
    // pointsPerServer: 156 reproduces hashring exactly when hashring compatibility matters.
    const compat = new Ring(
      s.map((id) => ({ id })),
      { hash: 'md5', pointsPerServer: 156 },
    );
    expect(diff(compat, oracle)).toBe(0);
  });
});
