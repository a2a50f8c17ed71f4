import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dedupe, fanOut, outcome, pick, split, takeUnrouted } from '../src/batch-splitter.js';
import { DcacheError, type ErrorCode } from '../src/errors.js';

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

/** Keys (duplicates and `__proto__` included) with an owner each, or none. */
const routed = fc
  .array(
    fc.record({
      key: fc.oneof(fc.string({ maxLength: 6 }), fc.constant('__proto__')),
      owner: fc.option(fc.constantFrom(...NODES), { nil: undefined }),
    }),
    { maxLength: 120 },
  )
  .map((rows) => ({ keys: rows.map((r) => r.key), owners: rows.map((r) => r.owner) }));

/** A promise that settles after `ticks` macrotask turns: nodes answer in any order. */
const later = <T>(ticks: number, f: () => T): Promise<T> =>
  new Promise((resolve, reject) => {
    const step = (n: number) => {
      if (n > 0) {
        setImmediate(() => step(n - 1));
        return;
      }
      try {
        resolve(f());
      } catch (e) {
        reject(e);
      }
    };
    step(ticks);
  });

describe('batch splitter', () => {
  it('split: every position appears exactly once, under its node; unrouted ones apart', () => {
    fc.assert(
      fc.property(routed, ({ keys, owners }) => {
        const plan = split(keys.length, (i) => owners[i]);
        const none = takeUnrouted(plan) ?? [];
        expect(none).toEqual(owners.flatMap((o, i) => (o === undefined ? [i] : [])));
        const seen = [...none];
        for (const [node, idx] of plan) {
          expect(NODES).toContain(node);
          for (const i of idx) expect(owners[i]).toBe(node);
          expect(pick(keys, idx)).toEqual(idx.map((i) => keys[i]));
          seen.push(...idx);
        }
        expect(seen.sort((a, b) => a - b)).toEqual(keys.map((_, i) => i));
      }),
    );
  });

  it('merge restores the original order whatever order the nodes answer in', async () => {
    await fc.assert(
      fc.asyncProperty(
        routed,
        fc.array(fc.nat(3), { minLength: NODES.length, maxLength: NODES.length }),
        async ({ keys, owners }, delays) => {
          const plan = split(keys.length, (i) => owners[i]);
          takeUnrouted(plan);
          const out = new Array<string | undefined>(keys.length);
          const errors = new Array<unknown>(keys.length);
          await fanOut(
            plan,
            (node, idx) =>
              later(delays[NODES.indexOf(node)] ?? 0, () =>
                pick(keys, idx).map((k) => `${node}:${k}`),
              ),
            out,
            errors,
          );
          expect(out).toEqual(keys.map((k, i) => (owners[i] ? `${owners[i]}:${k}` : undefined)));
          expect(errors.filter((e) => e !== undefined)).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a failed node fails exactly its keys (thrown or rejected) and no other', async () => {
    await fc.assert(
      fc.asyncProperty(
        routed,
        fc.subarray(NODES),
        fc.boolean(),
        async ({ keys, owners }, down, sync) => {
          const plan = split(keys.length, (i) => owners[i]);
          takeUnrouted(plan);
          const out = new Array<string | undefined>(keys.length);
          const errors = new Array<unknown>(keys.length);
          await fanOut(
            plan,
            (node, idx) => {
              if (down.includes(node)) {
                const err = new DcacheError('NODE_UNAVAILABLE', node);
                if (sync) throw err;
                return later(1, () => {
                  throw err;
                });
              }
              return later(1, () => pick(keys, idx));
            },
            out,
            errors,
          );
          keys.forEach((k, i) => {
            const o = owners[i];
            if (o !== undefined && down.includes(o)) {
              expect((errors[i] as DcacheError).code).toBe('NODE_UNAVAILABLE');
              expect((errors[i] as DcacheError).message).toBe(o);
              expect(out[i]).toBeUndefined();
            } else {
              expect(errors[i]).toBeUndefined();
              expect(out[i]).toBe(o === undefined ? undefined : k);
            }
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a node that rejects with nothing still fails its keys', async () => {
    const out: string[] = [];
    const errors: unknown[] = [];
    await fanOut(new Map([['n1', [0, 1]]]), () => Promise.reject(undefined), out, errors);
    expect(errors).toEqual([null, null]);
  });

  it('outcome: 200 none failed, 207 some, 503 all, 413 all for the answer size', () => {
    const code = fc.option(
      fc.constantFrom<ErrorCode>('NODE_UNAVAILABLE', 'NODE_TIMEOUT', 'RESPONSE_TOO_LARGE'),
      { nil: undefined },
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 5 }), { maxLength: 40 }),
        fc.array(code),
        (keys, cs) => {
          const codes = keys.map((_, i) => cs[i]);
          const res = outcome(keys, codes);
          const failedKeys = keys.filter((_, i) => codes[i] !== undefined);
          expect(res.unique).toBe(keys.length);
          expect(res.failedCount).toBe(failedKeys.length);
          expect(Object.keys(res.failed).sort()).toEqual([...failedKeys].sort());
          for (const [i, k] of keys.entries())
            if (codes[i] !== undefined) expect(res.failed[k]).toBe(codes[i]);
          const expected =
            failedKeys.length === 0
              ? 200
              : failedKeys.length < keys.length
                ? 207
                : codes.every((c) => c === 'RESPONSE_TOO_LARGE')
                  ? 413
                  : 503;
          expect(res.status).toBe(expected);
        },
      ),
    );
    const proto = outcome(['__proto__', 'a'], ['NODE_ERROR', undefined]);
    expect(proto.status).toBe(207);
    expect(JSON.stringify(proto.failed)).toBe('{"__proto__":"NODE_ERROR"}');
  });

  it('dedupe keeps the first occurrence of each key, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', 'c', '__proto__', '')), (keys) => {
        expect(dedupe(keys)).toEqual([...new Set(keys)]);
      }),
    );
  });
});
