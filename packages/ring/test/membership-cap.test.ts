/**
 * Hostile or broken documents: the version cap (no overflow, never a document the peers refuse)
 * and the reserved ids.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checksum,
  docVersion,
  emptyDoc,
  MAX_ENTRIES,
  MAX_VERSION,
  type MemberEntry,
  type MembershipDoc,
  merge,
  RESERVED_IDS,
  type RoutingEntry,
  setRouting,
  upsertEntry,
  VersionLimitError,
  validateDoc,
} from '../src/membership.js';

const IDS = ['a:1', 'b:1', 'c:1', 'd:1'];
/** Versions near the cap, and a few ordinary ones. */
const versionArb = fc.oneof(
  fc.integer({ min: MAX_VERSION - 3, max: MAX_VERSION }),
  fc.integer({ min: 1, max: 3 }),
);

const entryArb: fc.Arbitrary<MemberEntry> = fc
  .record({
    id: fc.constantFrom(...IDS),
    address: fc.constantFrom('10.0.0.1:6379', '10.0.0.2:6379'),
    weight: fc.integer({ min: 1, max: 3 }),
    state: fc.constantFrom('active', 'draining', 'removed'),
    version: versionArb,
    writer: fc.constantFrom('p1', 'p2'),
    updatedAt: fc.integer({ min: 0, max: 3 }),
  })
  .map((e) => e as MemberEntry);

const routingArb: fc.Arbitrary<RoutingEntry> = fc
  .record({
    id: fc.constantFrom(...IDS),
    state: fc.constantFrom('up', 'out', 'rejoining'),
    version: versionArb,
    writer: fc.constantFrom('p1', 'p2'),
    updatedAt: fc.integer({ min: 0, max: 3 }),
  })
  .map((r) => r as RoutingEntry);

const docArb: fc.Arbitrary<MembershipDoc> = fc
  .tuple(
    fc.uniqueArray(entryArb, { selector: (e) => e.id, maxLength: 4 }),
    fc.uniqueArray(routingArb, { selector: (r) => r.id, maxLength: 4 }),
  )
  .map(([list, routing]) =>
    validateDoc({
      entries: Object.fromEntries(list.map((e) => [e.id, e])),
      routing: Object.fromEntries(routing.map((r) => [r.id, r])),
    }),
  );

/** A local change as the proxy makes them: admin upserts and routing changes. */
const opArb = fc.oneof(
  fc.record({
    kind: fc.constant('upsert' as const),
    id: fc.constantFrom(...IDS),
    state: fc.constantFrom('active', 'draining', 'removed', undefined),
    weight: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant('routing' as const),
    id: fc.constantFrom(...IDS),
    state: fc.constantFrom('up', 'out', 'rejoining'),
  }),
);

/** What a peer would receive: the document through JSON, validated. */
function overTheWire(doc: MembershipDoc): MembershipDoc {
  return validateDoc(JSON.parse(JSON.stringify(doc)));
}

function checkSafe(doc: MembershipDoc): void {
  expect(Number.isSafeInteger(docVersion(doc))).toBe(true);
  for (const e of Object.values(doc.entries)) expect(e.version).toBeLessThanOrEqual(MAX_VERSION);
  for (const r of Object.values(doc.routing)) expect(r.version).toBeLessThanOrEqual(MAX_VERSION);
  expect(checksum(overTheWire(doc))).toBe(checksum(doc));
}

describe('version cap', () => {
  it('MAX_VERSION keeps every version + 1 and the routing epoch exact', () => {
    expect(MAX_VERSION).toBe(2 ** 39);
    // The largest epoch: MAX_ENTRIES entries and MAX_ENTRIES registers, all at the cap.
    expect(2 * MAX_ENTRIES * MAX_VERSION).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });

  it('validateDoc refuses versions above the cap, naming the field and the cap', () => {
    const good = {
      id: 'a:1',
      address: '10.0.0.1:6379',
      weight: 1,
      state: 'active',
      version: MAX_VERSION,
      writer: 'p1',
      updatedAt: 0,
    };
    expect(validateDoc({ entries: { 'a:1': good } }).entries['a:1']?.version).toBe(MAX_VERSION);
    for (const version of [MAX_VERSION + 1, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 60]) {
      expect(() => validateDoc({ entries: { 'a:1': { ...good, version } } })).toThrow(
        /entries\["a:1"\]\.version/,
      );
      const reg = { id: 'a:1', state: 'out', version, writer: 'p1', updatedAt: 0 };
      expect(() => validateDoc({ entries: {}, routing: { 'a:1': reg } })).toThrow(
        /routing\["a:1"\]\.version/,
      );
    }
    expect(() =>
      validateDoc({ entries: { 'a:1': { ...good, version: MAX_VERSION + 1 } } }),
    ).toThrow(`above the version cap ${MAX_VERSION}`);
  });

  it('a change past the cap throws VersionLimitError and leaves the document as it was', () => {
    const doc = validateDoc({
      entries: {
        'a:1': {
          id: 'a:1',
          address: '10.0.0.1:6379',
          weight: 1,
          state: 'removed',
          version: MAX_VERSION,
          writer: 'evil',
          updatedAt: 0,
        },
      },
      routing: {
        'a:1': { id: 'a:1', state: 'out', version: MAX_VERSION, writer: 'e', updatedAt: 0 },
      },
    });
    const before = checksum(doc);
    for (const change of [
      { id: 'a:1', state: 'active' as const },
      { id: 'a:1', weight: 3 },
    ]) {
      expect(() => upsertEntry(doc, change, 'p1', 1)).toThrow(VersionLimitError);
    }
    expect(() => setRouting(doc, 'a:1', 'up', 'p1', 1)).toThrow(VersionLimitError);
    try {
      upsertEntry(doc, { id: 'a:1', state: 'active' }, 'p1', 1);
    } catch (e) {
      expect(e).toMatchObject({ code: 'VERSION_LIMIT', id: 'a:1', register: 'entry' });
      expect((e as Error).message).toMatch(/at the version cap/);
    }
    // No-op routing changes are no changes, so no refusal.
    expect(setRouting(doc, 'a:1', 'out', 'p1', 1)).toBe(doc);
    expect(checksum(doc)).toBe(before);
    // One below the cap still works, and lands exactly on it.
    const below = validateDoc({
      entries: { 'a:1': { ...doc.entries['a:1'], version: MAX_VERSION - 1 } },
    });
    expect(upsertEntry(below, { id: 'a:1' }, 'p1', 1).entries['a:1']?.version).toBe(MAX_VERSION);
  });

  it('merges of documents near the cap never give an unsafe integer or a document peers refuse', () => {
    fc.assert(
      fc.property(docArb, docArb, docArb, (a, b, c) => {
        const m = merge(merge(a, b), c);
        checkSafe(m);
        expect(docVersion(m)).toBeGreaterThanOrEqual(
          Math.max(docVersion(a), docVersion(b), docVersion(c)),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('local changes near the cap either give a valid document or throw VersionLimitError', () => {
    fc.assert(
      fc.property(docArb, docArb, fc.array(opArb, { maxLength: 12 }), (a, b, ops) => {
        let doc = merge(a, b);
        for (const op of ops) {
          const before = doc;
          try {
            if (op.kind === 'upsert') {
              const change = {
                id: op.id,
                ...(before.entries[op.id] ? {} : { address: '10.0.0.3:6379' }),
                ...(op.state === undefined ? {} : { state: op.state }),
                ...(op.weight === undefined ? {} : { weight: op.weight }),
              } as Parameters<typeof upsertEntry>[1];
              doc = upsertEntry(before, change, 'p3', 9);
            } else {
              doc = setRouting(before, op.id, op.state, 'p3', 9);
            }
          } catch (e) {
            expect(e).toBeInstanceOf(VersionLimitError);
            const reg =
              op.kind === 'upsert' ? before.entries[op.id] : before.routing[op.id as string];
            expect(reg?.version).toBe(MAX_VERSION);
            continue;
          }
          checkSafe(doc);
          expect(docVersion(doc)).toBeGreaterThanOrEqual(docVersion(before));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a full document at the cap everywhere has a safe epoch and passes validation', () => {
    const entries: Record<string, unknown> = {};
    const routing: Record<string, unknown> = {};
    for (let i = 0; i < MAX_ENTRIES; i++) {
      const id = `n${i}`;
      entries[id] = {
        id,
        address: `10.0.${i >> 8}.${i & 255}:6379`,
        weight: 1,
        state: 'active',
        version: MAX_VERSION,
        writer: 'p',
        updatedAt: 0,
      };
      routing[id] = { id, state: 'out', version: MAX_VERSION, writer: 'p', updatedAt: 0 };
    }
    const doc = validateDoc({ entries, routing });
    expect(docVersion(doc)).toBe(2 ** 52);
    expect(Number.isSafeInteger(docVersion(doc))).toBe(true);
  });

  it('no entry or register is added past MAX_ENTRIES (the document would be refused)', () => {
    const entries: Record<string, unknown> = {};
    const routing: Record<string, unknown> = {};
    for (let i = 0; i < MAX_ENTRIES; i++) {
      const id = `n${i}`;
      entries[id] = {
        id,
        address: '10.0.0.1:6379',
        weight: 1,
        state: 'removed',
        version: 1,
        writer: 'p',
        updatedAt: 0,
      };
      routing[id] = { id, state: 'out', version: 1, writer: 'p', updatedAt: 0 };
    }
    const full = validateDoc({ entries });
    expect(() => upsertEntry(full, { id: 'new:1', address: '10.0.0.2:6379' }, 'p', 1)).toThrow(
      /holds 4096 entries/,
    );
    // An existing id can still change.
    expect(upsertEntry(full, { id: 'n0' }, 'p', 1).entries.n0?.state).toBe('active');
    const routed = validateDoc({ entries, routing });
    expect(setRouting(routed, 'n0', 'up', 'p', 1).routing.n0?.state).toBe('up');
    expect(() => setRouting(routed, 'other', 'out', 'p', 1)).toThrow(/4096 routing registers/);
  });
});

describe('reserved ids', () => {
  for (const id of RESERVED_IDS) {
    it(`${id} is refused by upsertEntry and setRouting`, () => {
      expect(() => upsertEntry(emptyDoc(), { id, address: '10.0.0.1:6379' }, 'p', 1)).toThrow(
        /is reserved/,
      );
      expect(() => setRouting(emptyDoc(), id, 'out', 'p', 1)).toThrow(/is reserved/);
    });
  }
});
