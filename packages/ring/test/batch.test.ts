import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { groupByOwner, NO_OWNER, planBatch, Ring } from '../src/index.js';

/** An owner per position: one of a few node ids, or none. */
const owners = fc.array(fc.option(fc.constantFrom('n1', 'n2', 'n3', 'n4'), { nil: undefined }), {
  maxLength: 200,
});

describe('groupByOwner', () => {
  it('every position lands in exactly one group, under its owner, in the order given', () => {
    fc.assert(
      fc.property(owners, (own) => {
        const plan = groupByOwner(own.length, (i) => own[i]);
        const seen: number[] = [];
        for (const [node, idx] of plan) {
          expect(idx.length).toBeGreaterThan(0);
          for (const i of idx) expect(own[i] ?? NO_OWNER).toBe(node);
          expect([...idx].sort((a, b) => a - b)).toEqual(idx);
          seen.push(...idx);
        }
        expect(seen.sort((a, b) => a - b)).toEqual(own.map((_, i) => i));
      }),
    );
  });

  it('an explicit position list is split the same way, keeping its order within a group', () => {
    fc.assert(
      fc.property(owners, fc.integer({ min: 0, max: 1 << 30 }), (own, seed) => {
        const positions = own.map((_, i) => i).filter((i) => (i * 7 + seed) % 3 !== 0);
        const plan = groupByOwner(positions, (i) => own[i]);
        const seen: number[] = [];
        for (const [node, idx] of plan) {
          for (const i of idx) expect(own[i] ?? NO_OWNER).toBe(node);
          expect(idx).toEqual(positions.filter((p) => (own[p] ?? NO_OWNER) === node));
          seen.push(...idx);
        }
        expect(seen.sort((a, b) => a - b)).toEqual(positions);
      }),
    );
  });

  it('planBatch is groupByOwner over the ring (with exclusions)', () => {
    const ring = new Ring(Array.from({ length: 6 }, (_, i) => ({ id: `10.0.0.${i + 1}:6379` })));
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 100 }),
        fc.subarray(ring.nodes.map((n) => n.id)),
        (ks, out) => {
          const ex = new Set(out);
          const plan = planBatch(ks, ring, ex);
          const ref = groupByOwner(ks.length, (i) => ring.ownerExcluding(ks[i] as string, ex));
          expect(plan).toEqual(ref);
          for (const id of ex) expect(plan.has(id)).toBe(false);
        },
      ),
    );
  });
});
