/**
 * Hostile or broken documents at the manager, holder and state file (issue 15, part 3): the
 * version cap, reserved ids, checksums compared before any ring is built, refused merges, and
 * state files an older build wrote.
 */
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checksum,
  type MemberEntry,
  type MembershipDoc,
  merge,
  upsertEntry,
  validateDoc,
} from '@dcache/ring';
import pino from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DcacheError } from '../../src/errors.js';
import { initialMembership } from '../../src/membership/cluster.js';
import { MembershipHolder, seedDoc } from '../../src/membership/membership-holder.js';
import { MembershipManager } from '../../src/membership/membership-manager.js';
import {
  readStateFile,
  StateFileError,
  serializeState,
  tempPathFor,
  writeFileAtomic,
} from '../../src/membership/state-file.js';
import { createMetrics } from '../../src/metrics.js';

/** Every Ring the code under test constructs is counted. */
const built = vi.hoisted(() => ({ rings: 0 }));
vi.mock('@dcache/ring', async (importOriginal) => {
  const mod = await importOriginal<typeof import('@dcache/ring')>();
  class CountingRing extends mod.Ring {
    constructor(...args: ConstructorParameters<typeof mod.Ring>) {
      super(...args);
      built.rings++;
    }
  }
  return { ...mod, Ring: CountingRing };
});

/** MAX_VERSION of @dcache/ring (membership.ts; the package index does not re-export it). */
const MAX_VERSION = 2 ** 39;
const SEED = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379'];
const metrics = createMetrics();
const dir = mkdtempSync(join(tmpdir(), 'dcache-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: log lines are arbitrary JSON
type Line = Record<string, any>;

/** A logger whose lines the test reads. */
function capture(): { log: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

function manager(writer: string, doc: MembershipDoc = seedDoc(SEED), seeded = false) {
  const { log, lines } = capture();
  const holder = new MembershipHolder(doc, { hash: 'murmur' });
  let t = 1_000;
  const m = new MembershipManager(holder, { writer, log, metrics, seeded, now: () => ++t });
  return { m, holder, lines };
}

function refusal(fn: () => unknown): DcacheError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DcacheError) return e;
    throw e;
  }
  throw new Error('not refused');
}

/** A document as a peer sends it: plain JSON, validated. */
function doc(entries: Partial<MemberEntry>[], routing: object[] = []): MembershipDoc {
  const e = (x: Partial<MemberEntry>) => ({
    weight: 1,
    state: 'active',
    version: 1,
    writer: 'evil',
    updatedAt: 5,
    ...x,
  });
  return validateDoc({
    entries: Object.fromEntries(entries.map((x) => [x.id, e(x)])),
    routing: Object.fromEntries(routing.map((r) => [(r as { id: string }).id, r])),
  });
}

/** `n` active nodes, a document of the size a big cluster has. */
function bigDoc(n: number): MembershipDoc {
  const entries: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const id = `11.${i >> 16}.${(i >> 8) & 255}.${i & 255}:6379`;
    entries[id] = {
      id,
      address: id,
      weight: 1 + (i % 3),
      state: 'active',
      version: 1 + (i % 7),
      writer: `proxy-${i % 5}`,
      updatedAt: 1_700_000_000_000 + i,
    };
  }
  return validateDoc({ entries });
}

describe('the version cap (P1)', () => {
  it('the local constant is the cap validation applies', () => {
    expect(doc([{ id: 'a:1', address: 'a:1', version: MAX_VERSION }]).entries['a:1']?.version).toBe(
      MAX_VERSION,
    );
    expect(() => doc([{ id: 'a:1', address: 'a:1', version: MAX_VERSION + 1 }])).toThrow(/cap/);
  });

  it('an admin change that would pass the cap is 409 VERSION_LIMIT and changes nothing', () => {
    const { m, holder } = manager('A');
    // A peer pins 10.0.0.1 at the cap (same address and weight: only its version moves).
    const pinned = doc([{ id: '10.0.0.1:6379', address: '10.0.0.1:6379', version: MAX_VERSION }]);
    expect(m.receive(pinned, { seeded: false }).changed).toBe(true);
    const before = holder.current.checksum;
    for (const change of [
      () => m.updateNode('10.0.0.1:6379', { weight: 2 }),
      () => m.updateNode('10.0.0.1:6379', { state: 'draining' }),
      () => m.removeNode('10.0.0.1:6379'),
    ]) {
      const e = refusal(change);
      expect(e.code).toBe('VERSION_LIMIT');
      expect(e.status).toBe(409);
      expect(e.message).toMatch(/"10\.0\.0\.1:6379" is at the version cap/);
    }
    expect(holder.current.checksum).toBe(before);
    // The document it holds is one every peer accepts.
    expect(checksum(validateDoc(JSON.parse(JSON.stringify(holder.current.doc))))).toBe(before);
    expect(Number.isSafeInteger(holder.current.version)).toBe(true);
    // Other nodes still change.
    m.updateNode('10.0.0.2:6379', { weight: 3 });
  });

  it('re-adding a node whose tombstone or routing register is at the cap is VERSION_LIMIT', () => {
    const { m, holder } = manager('A');
    m.receive(
      doc(
        [
          { id: 'x', address: '10.0.0.8:6379', state: 'removed', version: MAX_VERSION },
          { id: 'y', address: '10.0.0.9:6379', state: 'removed', version: 3 },
        ],
        [{ id: 'y', state: 'out', version: MAX_VERSION, writer: 'evil', updatedAt: 1 }],
      ),
      { seeded: false },
    );
    const before = holder.current.checksum;
    expect(refusal(() => m.addNode({ address: '10.0.0.8:6379', id: 'x' })).code).toBe(
      'VERSION_LIMIT',
    );
    // The entry could move, but the add also sets its routing (rejoining): refused whole.
    expect(refusal(() => m.addNode({ address: '10.0.0.9:6379', id: 'y' })).code).toBe(
      'VERSION_LIMIT',
    );
    expect(holder.current.checksum).toBe(before);
    // Under a new id the same Redis joins.
    m.addNode({ address: '10.0.0.8:6379', id: 'x2' });
  });

  it('a routing change past the cap is refused and logged, never thrown at the health code', () => {
    const { m, holder, lines } = manager('A');
    m.receive(
      doc(
        [{ id: '10.0.0.1:6379', address: '10.0.0.1:6379', version: 2 }],
        [{ id: '10.0.0.1:6379', state: 'up', version: MAX_VERSION, writer: 'evil', updatedAt: 1 }],
      ),
      { seeded: false },
    );
    const before = holder.current.checksum;
    expect(m.setRouting('10.0.0.1:6379', 'out')).toBe(false);
    expect(holder.current.checksum).toBe(before);
    expect(
      lines.find((l) => l.msg === 'routing change refused: the document cannot take it'),
    ).toMatchObject({ level: 40, node: '10.0.0.1:6379', err: expect.stringMatching(/cap/) });
  });

  it('tombstones at the cap for every node: the merge is refused (the guard cannot re-activate)', () => {
    const { m, holder } = manager('A');
    const before = holder.current.checksum;
    const evil = doc(
      SEED.map((id) => ({ id, address: id, state: 'removed' as const, version: MAX_VERSION })),
    );
    const e = refusal(() => m.receive(evil, { seeded: false, origin: 'http://evil' }));
    expect(e.code).toBe('VERSION_LIMIT');
    expect(e.message).toMatch(/without an active node/);
    expect(holder.current.checksum).toBe(before);
    // One below the cap: the guard re-activates them as before (at the cap, no further).
    const almost = doc(
      SEED.map((id) => ({ id, address: id, state: 'removed' as const, version: MAX_VERSION - 1 })),
    );
    const r = m.receive(almost, { seeded: false });
    expect(r.reactivated).toEqual(SEED);
    for (const id of SEED) {
      expect(holder.current.doc.entries[id]).toMatchObject({
        state: 'active',
        version: MAX_VERSION,
      });
    }
  });

  it('a merge that would pass MAX_ENTRIES is refused (peers would refuse the result)', () => {
    const { m, holder } = manager('A');
    const before = holder.current.checksum;
    const e = refusal(() => m.receive(bigDoc(4096), { seeded: false }));
    expect(e.code).toBe('INVALID_MEMBERSHIP');
    expect(e.message).toMatch(/4099 entries .* at most 4096/);
    expect(holder.current.checksum).toBe(before);
  });
});

describe('reserved ids (P4)', () => {
  for (const id of ['__proto__', 'constructor', 'prototype']) {
    it(`admin add with id ${id} is 400 INVALID_BODY naming the id`, () => {
      const { m, holder } = manager('A');
      const before = holder.current.checksum;
      for (const address of ['10.0.0.4:6379', '10.0.0.1:6379']) {
        // Named first, even when the address is already in the ring.
        const e = refusal(() => m.addNode({ address, id }));
        expect(e.code).toBe('INVALID_BODY');
        expect(e.status).toBe(400);
        expect(e.message).toContain(`"${id}" is reserved`);
      }
      expect(holder.current.checksum).toBe(before);
    });
  }
});

describe('checksums before rings (P6)', () => {
  it('an identical 4,096-entry document builds no snapshot and no ring', () => {
    const big = bigDoc(4096);
    const { m, holder } = manager('A', big);
    const builds = holder.builds;
    const rings = built.rings;
    // What a peer resends: the same document, parsed and validated again (new objects).
    const again = validateDoc(JSON.parse(JSON.stringify(big)));
    const t0 = performance.now();
    expect(holder.apply(again, 'peer')).toBe(false);
    expect(m.receive(again, { seeded: false, origin: 'http://peer' })).toMatchObject({
      changed: false,
      ignored: 'same',
    });
    // A stale document (older versions) merges to ours: compared, not built.
    const stale = validateDoc({
      entries: Object.fromEntries(
        Object.entries(JSON.parse(JSON.stringify(big)).entries).slice(0, 100),
      ),
    });
    expect(m.receive(stale, { seeded: false }).changed).toBe(false);
    const ms = performance.now() - t0;
    expect(holder.builds).toBe(builds);
    expect(built.rings).toBe(rings);
    // A real change builds one snapshot (and its ring).
    m.updateNode('11.0.0.0:6379', { weight: 5 });
    expect(holder.builds).toBe(builds + 1);
    expect(built.rings).toBeGreaterThan(rings);
    // Generous bound (2 busy cores): a ring build of 4,096 nodes alone takes far longer here.
    expect(ms).toBeLessThan(2_000);
  });
});

describe('lost admin changes are logged (P8) and shared addresses warned about (P7)', () => {
  it('an admin change made before meeting the peers that a newer cluster change beats', () => {
    // Restarted without its state file, peers unreachable: only the seed list (versions 1).
    const { m, lines } = manager('fresh', seedDoc(SEED), true);
    m.updateNode('10.0.0.1:6379', { weight: 7 });
    // The cluster had moved on: that entry is at version 5 there.
    let cluster = seedDoc(SEED);
    for (let i = 0; i < 4; i++) {
      cluster = upsertEntry(cluster, { id: '10.0.0.1:6379', weight: 2 + (i % 2) }, 'old', i + 1);
    }
    m.receive(cluster, { seeded: false, origin: 'http://peer' });
    expect(m.current.doc.entries['10.0.0.1:6379']?.weight).toBe(3);
    const lost = lines.filter((l) => /admin change made before this proxy met/.test(l.msg));
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({
      level: 40,
      node: '10.0.0.1:6379',
      from: 'http://peer',
      ours: { weight: 7 },
      theirs: { weight: 3, by: 'old' },
    });
  });

  it('an admin change made while seeded that survives the merge logs nothing', () => {
    const { m, lines } = manager('fresh', seedDoc(SEED), true);
    m.updateNode('10.0.0.1:6379', { weight: 7 });
    const other = upsertEntry(seedDoc(SEED), { id: '10.0.0.2:6379', weight: 4 }, 'old', 1);
    m.receive(other, { seeded: false });
    expect(m.current.doc.entries['10.0.0.1:6379']?.weight).toBe(7);
    expect(lines.filter((l) => /admin change made before/.test(l.msg))).toEqual([]);
  });

  it('two live ids on one address after a merge: converges, and warns', () => {
    const { m, lines } = manager('A');
    const twin = doc([{ id: 'twin', address: '10.0.0.1:6379' }]);
    expect(m.receive(twin, { seeded: false, origin: 'http://b' }).changed).toBe(true);
    const w = lines.find((l) => /share one Redis address/.test(l.msg));
    expect(w).toMatchObject({ level: 40, address: '10.0.0.1:6379', from: 'http://b' });
    expect(w?.ids).toEqual(['10.0.0.1:6379', 'twin']);
  });
});

describe('state files an older build wrote', () => {
  /** The file an older build wrote: a document that passed its validation, checksum included. */
  function olderBuildFile(over: Partial<MemberEntry>): string {
    const base = seedDoc(SEED);
    const raw = JSON.parse(serializeState({ doc: base, seeded: false }, 'old'));
    Object.assign(raw.doc.entries['10.0.0.1:6379'], over);
    if (over.id) {
      // An own "__proto__" key, as JSON.parse makes it (a plain assignment would set a prototype).
      Object.defineProperty(raw.doc.entries, over.id, {
        value: raw.doc.entries['10.0.0.1:6379'],
        enumerable: true,
      });
      delete raw.doc.entries['10.0.0.1:6379'];
    }
    // The older build computed its checksum over what it held.
    raw.checksum = checksum(raw.doc);
    return JSON.stringify(raw, null, 2);
  }

  it('an intact file holding a refused document is "refused"; damage stays "corrupt"', async () => {
    const over = join(dir, 'over.json');
    writeFileSync(over, olderBuildFile({ version: 2 ** 53 }));
    await expect(readStateFile(over)).rejects.toMatchObject({
      problem: 'refused',
      message: expect.stringMatching(/holds a membership document this version refuses/),
    });
    const proto = join(dir, 'proto.json');
    writeFileSync(proto, olderBuildFile({ id: '__proto__' }));
    await expect(readStateFile(proto)).rejects.toMatchObject({
      problem: 'refused',
      message: expect.stringMatching(/reserved/),
    });
    // Edited by hand (the checksum no longer matches): damage, the operator decides.
    const edited = JSON.parse(olderBuildFile({ version: 2 ** 53 }));
    edited.doc.entries['10.0.0.1:6379'].weight = 9;
    const hand = join(dir, 'hand.json');
    writeFileSync(hand, JSON.stringify(edited));
    await expect(readStateFile(hand)).rejects.toMatchObject({ problem: 'corrupt' });
  });

  it('at start, a refused file is moved aside, logged at error, and the proxy starts from the seed', async () => {
    const path = join(dir, 'start', 'ring.json');
    await writeFileAtomic(path, olderBuildFile({ version: Number.MAX_SAFE_INTEGER }));
    const text = readFileSync(path, 'utf8');
    const { log, lines } = capture();
    const config = loadConfig({
      env: { DC_CACHE_ADDRESSES: SEED.join(','), DC_CLUSTER_STATE_FILE: path },
    });
    const init = await initialMembership(config, log);
    expect(init.source).toBe('seed');
    expect(checksum(init.doc)).toBe(checksum(seedDoc(SEED)));
    const moved = readdirSync(join(dir, 'start')).filter((f) =>
      f.startsWith('ring.json.rejected-'),
    );
    expect(moved).toHaveLength(1);
    expect(readFileSync(join(dir, 'start', moved[0] as string), 'utf8')).toBe(text);
    const e = lines.find((l) => l.level === 50);
    expect(e?.msg).toMatch(/DC_CLUSTER_STATE_FILE.*moved it aside/);
    expect(e).toMatchObject({ path, reason: expect.stringMatching(/version/) });
    // A damaged file still stops the start (one line, the operator decides).
    writeFileSync(path, '{"format":');
    await expect(initialMembership(config, log)).rejects.toBeInstanceOf(StateFileError);
  });
});

describe('the temp state file (S4)', () => {
  it('is created exclusively: a symlink planted at its name is replaced, its target untouched', async () => {
    const sub = join(dir, 'wx');
    const path = join(sub, 'ring.json');
    await writeFileAtomic(path, serializeState({ doc: seedDoc(SEED), seeded: false }, 'A'));
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, tempPathFor(path));
    await writeFileAtomic(path, serializeState({ doc: seedDoc(SEED), seeded: true }, 'A'));
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect((await readStateFile(path))?.seeded).toBe(true);
    expect(readdirSync(sub)).toEqual(['ring.json']);
  });
});

describe('merge near the cap through the manager (property)', () => {
  it('documents at the cap merged in any order converge to one a peer accepts', () => {
    const a = manager('A');
    const b = manager('B');
    const pins = [
      doc([{ id: '10.0.0.1:6379', address: '10.0.0.1:6379', version: MAX_VERSION, writer: 'p' }]),
      doc([{ id: '10.0.0.1:6379', address: '10.0.0.1:6379', version: MAX_VERSION, writer: 'q' }]),
      doc([{ id: '10.0.0.2:6379', address: '10.0.0.2:6379', version: MAX_VERSION - 1 }]),
    ];
    for (const p of pins) a.m.receive(p, { seeded: false });
    for (const p of [...pins].reverse()) b.m.receive(p, { seeded: false });
    b.m.updateNode('10.0.0.2:6379', { weight: 4 }); // lands exactly on the cap
    a.m.receive(b.m.current.doc, { seeded: false });
    b.m.receive(a.m.current.doc, { seeded: false });
    expect(a.m.current.checksum).toBe(b.m.current.checksum);
    const wire = validateDoc(JSON.parse(JSON.stringify(merge(a.m.current.doc, b.m.current.doc))));
    expect(checksum(wire)).toBe(a.m.current.checksum);
    expect(refusal(() => b.m.updateNode('10.0.0.2:6379', { weight: 5 })).code).toBe(
      'VERSION_LIMIT',
    );
  });
});
