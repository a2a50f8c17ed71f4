import type { RingView } from '@dcache/client';
import { Ring } from '@dcache/ring';
import { describe, expect, it } from 'vitest';
import { itemMap, keyList } from '../src/commands/batch.js';
import { parseValue, showValue, ttlArg } from '../src/commands/data.js';
import { parseDurationMs } from '../src/context.js';
import { CommandError, report, UsageError } from '../src/errors.js';
import { LITERAL_MARK, STDIN_ARG } from '../src/input.js';
import { protectArgs } from '../src/main.js';
import { bytes, percent, table, uptime, visibleWidth } from '../src/output.js';
import { movesOf, planChange, syntheticKey } from '../src/plan.js';

function view(nodes: { id: string; weight?: number; state?: string }[]): RingView {
  const ring = new Ring(
    nodes
      .filter((n) => (n.state ?? 'active') === 'active')
      .map((n) => ({ id: n.id, weight: n.weight ?? 1 })),
  );
  const share = ring.share();
  return {
    version: 7,
    checksum: 'abc',
    hash: 'murmur',
    replication_factor: 1,
    peers: [],
    nodes: nodes.map((n) => ({
      id: n.id,
      address: n.id,
      weight: n.weight ?? 1,
      state: n.state ?? 'active',
      healthy: true,
      breaker: 'closed',
      share: share.get(n.id) ?? 0,
      version: 1,
    })),
  };
}

const three = view([{ id: '10.0.0.1:6379' }, { id: '10.0.0.2:6379' }, { id: '10.0.0.3:6379' }]);

describe('planChange', () => {
  it('add one node to 3 (equal weights): about 1/4 moves, all of it to the new node', () => {
    const p = planChange(
      three,
      { op: 'add', address: '10.0.0.4:6379', weight: 1 },
      { syntheticKeys: 20_000 },
    );
    expect(p.change).toEqual({
      op: 'add',
      id: '10.0.0.4:6379',
      address: '10.0.0.4:6379',
      weight: 1,
    });
    expect(p).toMatchObject({ nodes_before: 3, nodes_after: 4, ring_version: 7, hash: 'murmur' });
    expect(p.synthetic.keys).toBe(20_000);
    expect(p.synthetic.fraction).toBeGreaterThan(0.17);
    expect(p.synthetic.fraction).toBeLessThan(0.33);
    expect(Math.abs(p.synthetic.fraction - p.ideal_fraction)).toBeLessThan(0.02);
    const added = p.nodes.find((n) => n.id === '10.0.0.4:6379');
    expect(added).toMatchObject({
      weight_before: null,
      weight_after: 1,
      keys_before: 0,
      moved_out: 0,
    });
    expect(added?.moved_in).toBe(p.synthetic.moved);
    for (const n of p.nodes) {
      if (n.id !== '10.0.0.4:6379') expect(n.moved_in).toBe(0);
      expect(n.keys_after).toBe(n.keys_before - n.moved_out + n.moved_in);
    }
    expect(p.nodes.reduce((a, n) => a + n.share_before, 0)).toBeCloseTo(1, 9);
    expect(p.nodes.reduce((a, n) => a + n.share_after, 0)).toBeCloseTo(1, 9);
  });

  it('remove: every moved key leaves the removed node; the sample count is exact', () => {
    const sample = Array.from({ length: 3_000 }, (_, i) => `user:${i}`);
    const p = planChange(
      three,
      { op: 'remove', id: '10.0.0.2:6379' },
      { syntheticKeys: 10_000, sample },
    );
    const before = new Ring(three.nodes.map((n) => ({ id: n.id })));
    const onRemoved = sample.filter((k) => before.owner(k) === '10.0.0.2:6379').length;
    expect(p.sample).toEqual({ keys: 3_000, moved: onRemoved, fraction: onRemoved / 3_000 });
    const removed = p.nodes.find((n) => n.id === '10.0.0.2:6379');
    expect(removed).toMatchObject({ weight_after: null, keys_after: 0, moved_in: 0 });
    expect(removed?.moved_out).toBe(p.synthetic.moved);
    expect(p.change).toMatchObject({ op: 'remove', in_ring: true });
  });

  it('a draining node is out of the ring: removing it moves nothing', () => {
    const v = view([{ id: 'a:1' }, { id: 'b:1' }, { id: 'c:1', state: 'draining' }]);
    const p = planChange(v, { op: 'remove', id: 'c:1' }, { syntheticKeys: 2_000 });
    expect(p).toMatchObject({
      nodes_before: 2,
      nodes_after: 2,
      synthetic: { moved: 0 },
      ideal_fraction: 0,
    });
    expect(p.change).toMatchObject({ in_ring: false });
  });

  it('refuses what the server would refuse, with the same codes and exit codes', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error('expected a throw');
    };
    expect(
      err(() => planChange(three, { op: 'add', address: '10.0.0.1:6379', weight: 1 })),
    ).toMatchObject({
      code: 'NODE_EXISTS',
      exit: 1,
    });
    expect(err(() => planChange(three, { op: 'remove', id: 'nope:1' }))).toMatchObject({
      code: 'NODE_NOT_FOUND',
      exit: 3,
    });
    expect(
      err(() => planChange(three, { op: 'add', address: 'no-port', weight: 1 })),
    ).toBeInstanceOf(UsageError);
    const one = view([{ id: 'a:1' }]);
    expect(err(() => planChange(one, { op: 'remove', id: 'a:1' }))).toMatchObject({
      code: 'RING_CONFLICT',
    });
  });

  it('movesOf and syntheticKey are deterministic', () => {
    const a = new Ring([{ id: 'x:1' }, { id: 'y:1' }]);
    expect(movesOf(a, a, ['k1', 'k2'])).toEqual({ keys: 2, moved: 0, fraction: 0 });
    expect(movesOf(a, a, [])).toEqual({ keys: 0, moved: 0, fraction: 0 });
    expect(syntheticKey(12)).toBe('dcache:plan:12');
  });
});

describe('output helpers', () => {
  it('table aligns columns by visible width (ANSI ignored), right-aligns numbers, trims', () => {
    const t = table(
      [{ header: 'node' }, { header: 'keys', align: 'r' }, { header: 'state' }],
      [
        ['a', '1', '\u001b[32mok\u001b[0m'],
        ['long-name', '12,345', 'down'],
      ],
    );
    expect(t.split('\n')).toEqual([
      'NODE         KEYS  STATE',
      'a               1  \u001b[32mok\u001b[0m',
      'long-name  12,345  down',
    ]);
    expect(visibleWidth('\u001b[31mé✓\u001b[0m')).toBe(2);
  });

  it('formats percentages, sizes and durations', () => {
    expect(percent(0.31721)).toBe('31.72%');
    expect(bytes(512)).toBe('512 B');
    expect(bytes(1_005_080)).toBe('981.5 KiB');
    expect(bytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(uptime(12)).toBe('12s');
    expect(uptime(191)).toBe('3m 11s');
    expect(uptime(7_500)).toBe('2h 5m');
    expect(uptime(3 * 86_400 + 4 * 3_600)).toBe('3d 4h');
  });
});

describe('argument parsing', () => {
  it('--timeout durations: units, a bare number is seconds, junk is undefined', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('10s')).toBe(10_000);
    expect(parseDurationMs('1m30s')).toBe(90_000);
    expect(parseDurationMs('2')).toBe(2_000);
    expect(parseDurationMs('0.25')).toBe(250);
    expect(parseDurationMs('soon')).toBeUndefined();
    expect(parseDurationMs('-1s')).toBeUndefined();
  });

  it('values: JSON when they parse, text otherwise, --string forces text; ttl numbers are seconds', () => {
    expect(parseValue('{"a":1}', false)).toEqual({ a: 1 });
    expect(parseValue('42', false)).toBe(42);
    expect(parseValue('null', false)).toBeNull();
    expect(parseValue('hello', false)).toBe('hello');
    expect(parseValue('007', false)).toBe('007');
    expect(parseValue('42', true)).toBe('42');
    expect(showValue('text')).toBe('text');
    expect(showValue({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}');
    expect(ttlArg('90')).toBe(90);
    expect(ttlArg('1h30m')).toBe('1h30m');
    expect(() => ttlArg(' ')).toThrow(UsageError);
  });

  it('a lone "-" means stdin and arguments after "--" are literal', () => {
    expect(protectArgs(['set', 'k', '-'])).toEqual(['set', 'k', STDIN_ARG]);
    expect(protectArgs(['get', '--', '-k', '--x'])).toEqual([
      'get',
      `${LITERAL_MARK}-k`,
      `${LITERAL_MARK}--x`,
    ]);
  });

  it('batch input: key lists and item maps in both accepted shapes', () => {
    expect(keyList(['a', 'b'])).toEqual(['a', 'b']);
    expect(keyList({ keys: ['a'] })).toEqual(['a']);
    expect(() => keyList([1])).toThrow(UsageError);
    expect(() => keyList([])).toThrow(/empty/);
    expect(() => keyList(['a', ''])).toThrow(UsageError);
    expect(itemMap({ a: 1, b: { x: 2 } })).toEqual({ a: { value: 1 }, b: { value: { x: 2 } } });
    expect(itemMap({ items: { a: { value: 1, ttl: '1m' } } })).toEqual({
      a: { value: 1, ttl: '1m' },
    });
    // A plain map whose only key is "items" but whose value is not an object stays a plain map.
    expect(itemMap({ items: 5 })).toEqual({ items: { value: 5 } });
    expect(() => itemMap({ items: { a: { ttl: 1 } } })).toThrow(/no "value"/);
    expect(() => itemMap([1])).toThrow(UsageError);
  });
});

describe('error reporting', () => {
  it('maps errors to codes and exit codes', () => {
    expect(report(new UsageError('bad'), 'http://x')).toMatchObject({ code: 'USAGE', exit: 2 });
    expect(report(new CommandError('NODE_EXISTS', 'dup'), 'http://x')).toMatchObject({ exit: 1 });
    expect(report(new Error('boom'), 'http://x')).toMatchObject({ code: 'INTERNAL', exit: 1 });
  });
});
