import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  activeNodes,
  checksum,
  digest,
  docVersion,
  emptyDoc,
  liveEntries,
  type MemberEntry,
  type MembershipDoc,
  merge,
  nodeIdFor,
  parseAddress,
  type RoutingEntry,
  routingState,
  setRouting,
  upsertEntry,
  validateDoc,
} from '../src/index.js';

const entryArb: fc.Arbitrary<MemberEntry> = fc
  .record({
    id: fc.constantFrom('a:1', 'b:1', 'c:1', 'd:1', 'toString'),
    address: fc.constantFrom('10.0.0.1:6379', '10.0.0.2:6379'),
    weight: fc.integer({ min: 1, max: 3 }),
    state: fc.constantFrom('active', 'draining', 'removed'),
    version: fc.integer({ min: 1, max: 4 }),
    writer: fc.constantFrom('p1', 'p2', ''),
    updatedAt: fc.integer({ min: 0, max: 3 }),
  })
  .map((e) => e as MemberEntry);

const routingArb: fc.Arbitrary<RoutingEntry> = fc
  .record({
    id: fc.constantFrom('a:1', 'b:1', 'c:1', 'toString'),
    state: fc.constantFrom('up', 'out', 'rejoining'),
    version: fc.integer({ min: 1, max: 4 }),
    writer: fc.constantFrom('p1', 'p2', ''),
    updatedAt: fc.integer({ min: 0, max: 3 }),
  })
  .map((r) => r as RoutingEntry);

const docArb: fc.Arbitrary<MembershipDoc> = fc
  .tuple(
    fc.uniqueArray(entryArb, { selector: (e) => e.id, maxLength: 5 }),
    fc.uniqueArray(routingArb, { selector: (r) => r.id, maxLength: 3 }),
  )
  .map(([list, routing]) =>
    validateDoc({
      entries: Object.fromEntries(list.map((e) => [e.id, e])),
      routing: Object.fromEntries(routing.map((r) => [r.id, r])),
    }),
  );

const same = (x: MembershipDoc, y: MembershipDoc) => {
  expect(checksum(x)).toBe(checksum(y));
  expect(JSON.stringify(x)).toBe(JSON.stringify(y));
};

describe('merge is a join (properties)', () => {
  it('commutative', () => {
    fc.assert(
      fc.property(docArb, docArb, (a, b) => same(merge(a, b), merge(b, a))),
      {
        numRuns: 300,
      },
    );
  });
  it('associative', () => {
    fc.assert(
      fc.property(docArb, docArb, docArb, (a, b, c) =>
        same(merge(merge(a, b), c), merge(a, merge(b, c))),
      ),
      { numRuns: 300 },
    );
  });
  it('idempotent, with the empty doc as identity', () => {
    fc.assert(
      fc.property(docArb, (a) => {
        same(merge(a, a), a);
        same(merge(a, emptyDoc()), a);
      }),
      { numRuns: 200 },
    );
  });
  it('docVersion is monotone under merge; upsert then merge keeps the upsert', () => {
    fc.assert(
      fc.property(
        docArb,
        docArb,
        fc.constantFrom('a:1', 'b:1', 'e:1'),
        fc.constantFrom('active', 'draining', 'removed'),
        (a, b, id, state) => {
          const m = merge(a, b);
          expect(docVersion(m)).toBeGreaterThanOrEqual(Math.max(docVersion(a), docVersion(b)));
          const u = upsertEntry(a, { id, address: '10.0.0.9:6379', state }, 'p9', 5);
          expect(docVersion(u)).toBe(docVersion(a) + 1);
          expect(u.entries[id]!.version).toBe((a.entries[id]?.version ?? 0) + 1);
          const back = merge(a, u);
          same(back, u);
          expect(docVersion(merge(u, b))).toBeGreaterThanOrEqual(docVersion(m));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('routing registers', () => {
  const base = upsertEntry(emptyDoc(), { id: 'a:1', address: 'a:1' }, 'p1', 1);
  it('a node without a register is up; setRouting bumps the version and the epoch', () => {
    expect(routingState(base, 'a:1')).toBe('up');
    const out = setRouting(base, 'a:1', 'out', 'p2', 5);
    expect(routingState(out, 'a:1')).toBe('out');
    expect(docVersion(out)).toBe(docVersion(base) + 1);
    expect(checksum(out)).not.toBe(checksum(base));
    expect(setRouting(out, 'a:1', 'out', 'p1', 6)).toBe(out);
    expect(setRouting(base, 'a:1', 'up', 'p1', 6)).toBe(base);
    const back = setRouting(out, 'a:1', 'up', 'p1', 7);
    expect(back.routing['a:1']?.version).toBe(2);
  });
  it('an admin change and a health change made at once both survive the merge', () => {
    const drained = upsertEntry(base, { id: 'a:1', state: 'draining' }, 'p1', 2);
    const ejected = setRouting(base, 'a:1', 'out', 'p2', 2);
    const m = merge(drained, ejected);
    expect(m.entries['a:1']?.state).toBe('draining');
    expect(routingState(m, 'a:1')).toBe('out');
    same(m, merge(ejected, drained));
  });
  it('validateDoc refuses bad registers and keeps the checksum of documents without any', () => {
    expect(() => validateDoc({ entries: {}, routing: { x: { id: 'y' } } })).toThrow(/routing/);
    expect(() =>
      validateDoc({
        entries: {},
        routing: { x: { id: 'x', state: 'gone', version: 1, writer: '', updatedAt: 0 } },
      }),
    ).toThrow(/state/);
    expect(checksum(validateDoc({ entries: base.entries }))).toBe(checksum(base));
  });
});

describe('merge rule', () => {
  const base = (over: Partial<MemberEntry>): MemberEntry => ({
    id: 'n:1',
    address: '10.0.0.1:6379',
    weight: 1,
    state: 'active',
    version: 1,
    writer: 'p1',
    updatedAt: 0,
    ...over,
  });
  const doc = (e: MemberEntry) => validateDoc({ entries: { [e.id]: e } });
  it('higher version wins, then greater writer, then removed > draining > active', () => {
    expect(
      merge(doc(base({ version: 2 })), doc(base({ version: 1, writer: 'z' }))).entries['n:1']!
        .version,
    ).toBe(2);
    expect(
      merge(doc(base({ writer: 'p2' })), doc(base({ writer: 'p1', state: 'removed' }))).entries[
        'n:1'
      ]!.writer,
    ).toBe('p2');
    expect(
      merge(doc(base({ state: 'draining' })), doc(base({ state: 'removed' }))).entries['n:1']!
        .state,
    ).toBe('removed');
    expect(merge(doc(base({ state: 'draining' })), doc(base({}))).entries['n:1']!.state).toBe(
      'draining',
    );
  });
  it('a removal is a tombstone that beats the older add everywhere', () => {
    let a = upsertEntry(emptyDoc(), { id: 'n:1', address: '10.0.0.1:6379' }, 'p1', 1);
    const b = a;
    a = upsertEntry(a, { id: 'n:1', state: 'removed' }, 'p1', 2);
    expect(a.entries['n:1']!.state).toBe('removed');
    expect(merge(b, a).entries['n:1']!.state).toBe('removed');
    expect(activeNodes(merge(a, b))).toEqual([]);
    // re-adding later bumps the version again and re-activates
    const c = upsertEntry(a, { id: 'n:1' }, 'p2', 3);
    expect(c.entries['n:1']).toMatchObject({ state: 'active', version: 3, writer: 'p2' });
  });
});

describe('upsert / views / digest', () => {
  let d = emptyDoc();
  d = upsertEntry(d, { id: 'b:1', address: '10.0.0.2:6379', weight: 2 }, 'p1', 10);
  d = upsertEntry(d, { id: 'a:1', address: '10.0.0.1:6379' }, 'p1', 11);
  d = upsertEntry(d, { id: 'c:1', address: '10.0.0.3:6379', state: 'draining' }, 'p2', 12);
  d = upsertEntry(d, { id: 'x:1', address: '10.0.0.4:6379' }, 'p2', 13);
  d = upsertEntry(d, { id: 'x:1', state: 'removed' }, 'p2', 14);
  it('keeps unspecified fields and bumps the version', () => {
    const e = upsertEntry(d, { id: 'b:1', weight: 5 }, 'p3', 20).entries['b:1']!;
    expect(e).toEqual({
      id: 'b:1',
      address: '10.0.0.2:6379',
      weight: 5,
      state: 'active',
      version: 2,
      writer: 'p3',
      updatedAt: 20,
    });
  });
  it('activeNodes / liveEntries are sorted by id', () => {
    expect(activeNodes(d)).toEqual([
      { id: 'a:1', address: '10.0.0.1:6379', weight: 1 },
      { id: 'b:1', address: '10.0.0.2:6379', weight: 2 },
    ]);
    expect(liveEntries(d).map((e) => e.id)).toEqual(['a:1', 'b:1', 'c:1']);
  });
  it('digest: version is the sum of entry versions, checksum tracks content', () => {
    expect(digest(d).version).toBe(5);
    expect(digest(d).checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(validateDoc(JSON.parse(JSON.stringify(d))))).toBe(checksum(d));
    expect(checksum(upsertEntry(d, { id: 'a:1' }, 'p1', 11))).not.toBe(checksum(d));
    expect(checksum(emptyDoc())).toBe(checksum(validateDoc({ entries: {} })));
  });
  it('refuses bad changes', () => {
    expect(() => upsertEntry(d, { id: 'new:1' }, 'p1', 1)).toThrow(/needs an address/);
    expect(() => upsertEntry(d, { id: 'a:1', weight: 0 }, 'p1', 1)).toThrow(TypeError);
    expect(() => upsertEntry(d, { id: 'a:1', address: 'nope' }, 'p1', 1)).toThrow(TypeError);
    expect(() => upsertEntry(d, { id: '' }, 'p1', 1)).toThrow(TypeError);
  });
  it('documents are frozen', () => {
    expect(Object.isFrozen(d)).toBe(true);
    expect(Object.isFrozen(d.entries)).toBe(true);
    expect(Object.isFrozen(d.entries['a:1'])).toBe(true);
  });
});

describe('validateDoc', () => {
  const good = {
    id: 'a:1',
    address: '10.0.0.1:6379',
    weight: 1,
    state: 'active',
    version: 1,
    writer: 'p1',
    updatedAt: 0,
  };
  const bad: [unknown, RegExp][] = [
    [null, /must be an object/],
    [[], /must be an object/],
    [{}, /"entries" must be an object/],
    [{ entries: [] }, /"entries" must be an object/],
    [{ entries: { 'a:1': 5 } }, /entries\["a:1"\] must be an object/],
    [{ entries: { 'b:1': good } }, /id does not match/],
    [{ entries: { 'a:1': { ...good, address: 'x' } } }, /address.*no port/],
    [{ entries: { 'a:1': { ...good, address: 'h:0' } } }, /outside 1\.\.65535/],
    [{ entries: { 'a:1': { ...good, weight: 0 } } }, /weight.*1\.\.1000/],
    [{ entries: { 'a:1': { ...good, weight: 1001 } } }, /weight/],
    [{ entries: { 'a:1': { ...good, weight: '1' } } }, /weight/],
    [{ entries: { 'a:1': { ...good, state: 'gone' } } }, /state must be one of/],
    [{ entries: { 'a:1': { ...good, version: 0 } } }, /version must be a positive integer/],
    [{ entries: { 'a:1': { ...good, version: 1.5 } } }, /version/],
    [{ entries: { 'a:1': { ...good, writer: 7 } } }, /writer/],
    [{ entries: { 'a:1': { ...good, updatedAt: -1 } } }, /updatedAt/],
    [{ entries: { 'a:1': { ...good, updatedAt: Number.NaN } } }, /updatedAt/],
    [{ entries: { ['x'.repeat(256)]: { ...good, id: 'x'.repeat(256) } } }, /longer than 255/],
    [{ entries: { '': { ...good, id: '' } } }, /non-empty/],
    [{ entries: { 'a:1': { ...good, address: `${'h'.repeat(251)}:6379` } } }, /longer than 255/],
  ];
  for (const [input, msg] of bad) {
    it(`rejects ${JSON.stringify(input)?.slice(0, 70)}`, () => {
      expect(() => validateDoc(input)).toThrow(TypeError);
      expect(() => validateDoc(input)).toThrow(msg);
    });
  }
  it('rejects more than 4096 entries', () => {
    const entries: Record<string, unknown> = {};
    for (let i = 0; i < 4097; i++) entries[`n${i}`] = { ...good, id: `n${i}` };
    expect(() => validateDoc({ entries })).toThrow(/at most 4096/);
  });
  it('treats "toString" or "hasOwnProperty" from JSON as plain ids', () => {
    const doc = validateDoc(
      JSON.parse(
        `{"entries":{"toString":${JSON.stringify({ ...good, id: 'toString' })},"hasOwnProperty":${JSON.stringify({ ...good, id: 'hasOwnProperty' })}}}`,
      ),
    );
    expect(Object.keys(doc.entries)).toEqual(['hasOwnProperty', 'toString']);
    expect(activeNodes(doc)).toHaveLength(2);
  });
  for (const id of ['__proto__', 'constructor', 'prototype']) {
    it(`refuses the reserved id ${id} (entries and routing, as JSON keys too)`, () => {
      const entry = JSON.stringify({ ...good, id });
      expect(() => validateDoc(JSON.parse(`{"entries":{"${id}":${entry}}}`))).toThrow(
        /is reserved/,
      );
      const reg = JSON.stringify({ id, state: 'out', version: 1, writer: 'p', updatedAt: 0 });
      expect(() => validateDoc(JSON.parse(`{"entries":{},"routing":{"${id}":${reg}}}`))).toThrow(
        /is reserved/,
      );
    });
  }
});

describe('parseAddress / nodeIdFor', () => {
  it('parses host:port, hostnames and bracketed IPv6', () => {
    expect(parseAddress('127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(parseAddress('redis-1.svc_x:1')).toEqual({ host: 'redis-1.svc_x', port: 1 });
    expect(parseAddress('[::1]:65535')).toEqual({ host: '::1', port: 65535 });
    expect(nodeIdFor('redis:06379')).toBe('redis:6379');
    expect(nodeIdFor('[::1]:7000')).toBe('[::1]:7000');
  });
  for (const bad of [
    '',
    'host',
    ':6379',
    'host:',
    'host:0',
    'host:65536',
    'host:-1',
    'host:12a',
    'host:1.5',
    'ho st:1',
    '::1:6379',
    '[::1]6379',
    '[zz]:1',
    'a:b:1',
    `${'a'.repeat(256)}:1`,
  ]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 40))}`, () => {
      expect(() => parseAddress(bad)).toThrow(TypeError);
    });
  }
  it('rejects non-strings', () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    expect(() => parseAddress(6379 as any)).toThrow(TypeError);
  });
});
