import {
  activeNodes,
  checksum,
  emptyDoc,
  type MembershipDoc,
  merge,
  upsertEntry,
} from '@dcache/ring';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DcacheError } from '../../src/errors.js';
import { MembershipHolder, seedDoc } from '../../src/membership/membership-holder.js';
import { MembershipManager } from '../../src/membership/membership-manager.js';
import { createMetrics } from '../../src/metrics.js';

const log = pino({ level: 'silent' });
const SEED = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379'];

const metrics = createMetrics();

function manager(writer: string, doc: MembershipDoc = seedDoc(SEED), seeded = false) {
  const holder = new MembershipHolder(doc, { hash: 'murmur' });
  let t = 1_000;
  const m = new MembershipManager(holder, { writer, log, metrics, seeded, now: () => ++t });
  return { m, holder };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof DcacheError) return e.code;
    throw e;
  }
  return undefined;
}

const ids = (doc: MembershipDoc) => activeNodes(doc).map((n) => n.id);

describe('admin changes', () => {
  it('adds, re-adds, refuses duplicates and bad input with stable codes', () => {
    const { m, holder } = manager('A');
    const changes: string[] = [];
    holder.on('change', (c) => {
      changes.push(c.source);
    });
    const snap = m.addNode({ address: '10.0.0.4:6379', weight: 2 });
    expect(snap.doc.entries['10.0.0.4:6379']).toMatchObject({
      weight: 2,
      state: 'active',
      version: 1,
      writer: 'A',
    });
    expect(snap.ring.size).toBe(4);
    expect(changes).toEqual(['admin']);
    expect(code(() => m.addNode({ address: '10.0.0.4:6379' }))).toBe('NODE_EXISTS');
    expect(code(() => m.addNode({ address: '10.0.0.4:6379', id: 'other' }))).toBe('NODE_EXISTS');
    expect(code(() => m.addNode({ address: 'nope' }))).toBe('INVALID_ADDRESS');
    expect(code(() => m.addNode({ address: 'h:70000' }))).toBe('INVALID_ADDRESS');
    expect(code(() => m.addNode({ address: 'h:1', weight: 0 }))).toBe('INVALID_BODY');
    expect(code(() => m.addNode({ address: 'h:1', weight: 1.5 }))).toBe('INVALID_BODY');
    expect(code(() => m.removeNode('nope:1'))).toBe('NODE_NOT_FOUND');
    m.removeNode('10.0.0.4:6379');
    expect(code(() => m.removeNode('10.0.0.4:6379'))).toBe('NODE_NOT_FOUND');
    expect(code(() => m.updateNode('10.0.0.4:6379', { weight: 3 }))).toBe('NODE_NOT_FOUND');
    // Re-adding a removed node bumps its version past the tombstone.
    const again = m.addNode({ address: '10.0.0.4:6379' });
    expect(again.doc.entries['10.0.0.4:6379']).toMatchObject({ state: 'active', version: 3 });
    expect(changes).toEqual(['admin', 'admin', 'admin']);
    expect(m.seeded).toBe(false);
  });

  it('refuses to remove or drain the last active node (RING_CONFLICT)', () => {
    const { m } = manager('A', seedDoc(['h:1', 'h:2']));
    m.updateNode('h:1', { state: 'draining' });
    expect(code(() => m.removeNode('h:2'))).toBe('RING_CONFLICT');
    expect(code(() => m.updateNode('h:2', { state: 'draining' }))).toBe('RING_CONFLICT');
    // Removing the draining one is fine; the active one stays.
    m.removeNode('h:1');
    expect(ids(m.current.doc)).toEqual(['h:2']);
    expect(code(() => m.removeNode('h:2'))).toBe('RING_CONFLICT');
  });

  it('PATCH with the same values is a no-op; weight and state changes bump the version', () => {
    const { m } = manager('A');
    const before = m.current;
    expect(m.updateNode('10.0.0.1:6379', { weight: 1, state: 'active' })).toBe(before);
    m.updateNode('10.0.0.1:6379', { weight: 5 });
    expect(m.current.doc.entries['10.0.0.1:6379']).toMatchObject({ weight: 5, version: 2 });
    expect(code(() => m.updateNode('10.0.0.1:6379', { state: 'removed' as 'active' }))).toBe(
      'INVALID_BODY',
    );
  });
});

describe('documents from peers', () => {
  it('merges, counts convergence, and ignores equal documents', async () => {
    const count = async () =>
      (await metrics.convergence.get()).values.find((v) => v.metricName?.endsWith('_count'))
        ?.value ?? 0;
    const a = manager('A');
    const b = manager('B');
    a.m.addNode({ address: '10.0.0.9:6379' });
    const before = await count();
    const r = b.m.receive(a.m.current.doc, { seeded: false, origin: 'http://a' });
    expect(r.changed).toBe(true);
    expect(await count()).toBe(before + 1); // one entry changed
    expect(b.m.current.checksum).toBe(a.m.current.checksum);
    expect(b.m.receive(a.m.current.doc, { seeded: false }).changed).toBe(false);
  });

  it('a stale or partial document changes nothing (absence is not removal)', () => {
    const { m } = manager('A');
    m.removeNode('10.0.0.2:6379');
    const now = m.current.checksum;
    expect(m.receive(seedDoc(SEED), { seeded: false }).changed).toBe(false);
    expect(m.receive(emptyDoc(), { seeded: false }).changed).toBe(false);
    expect(m.current.checksum).toBe(now);
    expect(ids(m.current.doc)).toEqual(['10.0.0.1:6379', '10.0.0.3:6379']);
  });

  it('a seed-only proxy adopts a real document whole; a real one ignores seed-only documents', () => {
    const fresh = manager('F', seedDoc(['10.9.9.9:1']), true);
    const real = manager('R');
    real.m.addNode({ address: '10.0.0.4:6379' });
    // The real one ignores the seed list (10.9.9.9:1 must not join the cluster).
    const ignored = real.m.receive(fresh.m.current.doc, { seeded: true });
    expect(ignored).toMatchObject({ changed: false, ignored: 'seeded' });
    expect(real.m.current.doc.entries['10.9.9.9:1']).toBeUndefined();
    // The fresh one takes the real document as it is.
    expect(fresh.m.receive(real.m.current.doc, { seeded: false }).changed).toBe(true);
    expect(fresh.m.current.checksum).toBe(real.m.current.checksum);
    expect(fresh.m.seeded).toBe(false);
    // Two seed-only proxies merge their seeds and stay seed-only.
    const s1 = manager('S1', seedDoc(['h:1']), true);
    const s2 = manager('S2', seedDoc(['h:2']), true);
    s1.m.receive(s2.m.current.doc, { seeded: true });
    expect(ids(s1.m.current.doc)).toEqual(['h:1', 'h:2']);
    expect(s1.m.seeded).toBe(true);
  });

  it('concurrent removals that would empty the ring re-activate nodes and still converge', () => {
    const base = seedDoc(['h:1', 'h:2']);
    const a = manager('A', base);
    const c = manager('C', base);
    a.m.removeNode('h:1'); // A keeps h:2
    c.m.removeNode('h:2'); // C keeps h:1
    const fromC = c.m.current.doc;
    const fromA = a.m.current.doc;
    const ra = a.m.receive(fromC, { seeded: false });
    const rc = c.m.receive(fromA, { seeded: false });
    expect(ra.reactivated).toEqual(['h:2']);
    expect(rc.reactivated).toEqual(['h:1']);
    expect(ids(a.m.current.doc).length).toBeGreaterThan(0);
    // One more exchange each way and both hold the same, non-empty document.
    a.m.receive(c.m.current.doc, { seeded: false });
    c.m.receive(a.m.current.doc, { seeded: false });
    expect(a.m.current.checksum).toBe(c.m.current.checksum);
    expect(ids(a.m.current.doc)).toEqual(['h:1', 'h:2']);
  });

  it('a hostile document of newer tombstones for every node cannot empty the ring', () => {
    const { m } = manager('A', seedDoc(['h:1', 'h:2']));
    let evil = seedDoc(['h:1', 'h:2']);
    for (const id of ['h:1', 'h:2']) evil = upsertEntry(evil, { id, state: 'removed' }, 'Z', 5);
    const r = m.receive(evil, { seeded: false });
    expect(r.reactivated).toEqual(['h:1', 'h:2']);
    expect(ids(m.current.doc)).toEqual(['h:1', 'h:2']);
    // Our re-activation wins over the tombstones wherever it is merged.
    expect(ids(merge(evil, m.current.doc))).toEqual(['h:1', 'h:2']);
  });
});

describe('convergence (property)', () => {
  it('any interleaving of admin changes and exchanges among 3 proxies converges', () => {
    const nodes = ['h:1', 'h:2', 'h:3', 'h:4'];
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('admin' as const),
        at: fc.nat(2),
        node: fc.constantFrom(...nodes),
        what: fc.constantFrom('add', 'remove', 'drain', 'weight'),
        weight: fc.integer({ min: 1, max: 5 }),
      }),
      fc.record({ kind: fc.constant('send' as const), from: fc.nat(2), to: fc.nat(2) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const ms = ['A', 'B', 'C'].map((w) => manager(w, seedDoc(['h:1', 'h:2'])).m);
        for (const o of ops) {
          if (o.kind === 'send') {
            ms[o.to]!.receive(ms[o.from]!.current.doc, { seeded: false });
            continue;
          }
          const m = ms[o.at]!;
          try {
            if (o.what === 'add') m.addNode({ address: o.node });
            else if (o.what === 'remove') m.removeNode(o.node);
            else if (o.what === 'drain') m.updateNode(o.node, { state: 'draining' });
            else m.updateNode(o.node, { weight: o.weight });
          } catch (e) {
            if (!(e instanceof DcacheError)) throw e;
          }
        }
        // Every proxy keeps at least one active node at every step of the final gossip.
        for (let round = 0; round < 3; round++) {
          for (const from of ms) {
            for (const to of ms) {
              to.receive(from.current.doc, { seeded: false });
              expect(ids(to.current.doc).length).toBeGreaterThan(0);
            }
          }
        }
        const sums = new Set(ms.map((m) => checksum(m.current.doc)));
        expect(sums.size).toBe(1);
      }),
      { numRuns: 80 },
    );
  });
});
