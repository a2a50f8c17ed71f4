import type { RingView } from '@dcache/client';
import { describe, expect, it } from 'vitest';
import { CommandError } from '../src/errors.js';
import { describeStep, diffRing, planApply } from '../src/ring-apply.js';
import { parseRingFile } from '../src/ring-file.js';

/** A ring view as GET /api/v1/ring shows it (shares are not used by the diff). */
function view(
  nodes: { id: string; address?: string; weight?: number; state?: string }[],
): RingView {
  return {
    version: 7,
    checksum: 'c',
    hash: 'murmur',
    replication_factor: 1,
    peers: [],
    nodes: nodes.map((n) => ({
      id: n.id,
      address: n.address ?? n.id,
      weight: n.weight ?? 1,
      state: n.state ?? 'active',
      healthy: true,
      breaker: 'closed',
      share: 0,
      version: 1,
    })),
  };
}

function fileError(text: string): string {
  try {
    parseRingFile(text, 'ring.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).code).toBe('INVALID_RING_FILE');
    expect((e as CommandError).exit).toBe(2);
    return (e as Error).message;
  }
  throw new Error(`no error for:\n${text}`);
}

describe('parseRingFile', () => {
  it('fills defaults: id host:port, weight 1, state active; keeps the line', () => {
    const nodes = parseRingFile(
      'nodes:\n  - address: 10.0.0.1:6379\n  - address: 10.0.0.2:6379\n    id: redis-2\n    weight: 3\n    state: draining\n',
      'ring.yaml',
    );
    expect(nodes).toEqual([
      { id: '10.0.0.1:6379', address: '10.0.0.1:6379', weight: 1, state: 'active', line: 2 },
      { id: 'redis-2', address: '10.0.0.2:6379', weight: 3, state: 'draining', line: 3 },
    ]);
  });

  it('names the line and the field of each problem', () => {
    expect(fileError('nodes:\n  - address: a:1\n    address: b:2\n')).toMatch(
      /^ring\.yaml:3: not valid YAML or JSON: Map keys must be unique/,
    );
    expect(fileError('nodes:\n  - address: a:1\n    id: __proto__\n')).toMatch(
      /^ring\.yaml:3: nodes\[0\]\.id "__proto__" is reserved/,
    );
    expect(fileError('nodes:\n  - address: a:1\n  - address: b:2\n    id: a:1\n')).toBe(
      'ring.yaml:3: nodes[1]: node id a:1 is also declared on line 2',
    );
    expect(fileError('nodes:\n  - address: a:1\n  - address: a:1\n    id: other\n')).toBe(
      'ring.yaml:3: nodes[1]: address a:1 is also declared on line 2',
    );
    expect(fileError('nodes:\n  - address: a:1\n    weight: 1001\n')).toBe(
      'ring.yaml:3: nodes[0].weight must be an integer 1..1000, got 1001',
    );
    expect(fileError('nodes: []\n')).toBe(
      'ring.yaml:1: "nodes" is empty: a ring needs at least one active node',
    );
    expect(fileError('- a:1\n')).toBe(
      'ring.yaml:1: expected a mapping with "nodes" at the top level',
    );
  });
});

describe('diffRing', () => {
  const file = (text: string) => parseRingFile(text, 'ring.yaml');

  it('orders additions, then weight changes and activations, then drains, then removals', () => {
    const steps = diffRing(
      view([
        { id: 'a:1' },
        { id: 'b:1', state: 'draining' },
        { id: 'c:1' },
        { id: 'd:1', weight: 2 },
      ]),
      file(
        'nodes:\n  - address: d:1\n  - address: c:1\n    state: draining\n  - address: b:1\n  - address: e:1\n',
      ),
    );
    expect(steps.map(describeStep)).toEqual([
      'add e:1 weight 1',
      'd:1: weight 2 → 1',
      'b:1: activate (was draining)',
      'c:1: drain',
      'remove a:1',
    ]);
  });

  it('a new address for an id is a replace; an address under a new id removes the old id first', () => {
    const before = view([
      { id: 'redis-0', address: '10.0.0.1:6379' },
      { id: '10.0.0.2:6379' },
      { id: '10.0.0.3:6379' },
    ]);
    const steps = diffRing(
      before,
      file(
        'nodes:\n  - address: 10.0.0.9:6379\n    id: redis-0\n  - address: 10.0.0.2:6379\n    id: redis-1\n  - address: 10.0.0.3:6379\n',
      ),
    );
    expect(steps).toEqual([
      {
        op: 'replace',
        remove_id: 'redis-0',
        address_before: '10.0.0.1:6379',
        id: 'redis-0',
        address: '10.0.0.9:6379',
        weight: 1,
        state: 'active',
      },
      {
        op: 'replace',
        remove_id: '10.0.0.2:6379',
        address_before: '10.0.0.2:6379',
        id: 'redis-1',
        address: '10.0.0.2:6379',
        weight: 1,
        state: 'active',
      },
    ]);
  });

  it('nothing to do when the ring matches; the plan says so', () => {
    const v = view([
      { id: 'a:1', weight: 2 },
      { id: 'b:1', state: 'draining' },
    ]);
    const desired = file(
      'nodes:\n  - address: a:1\n    weight: 2\n  - address: b:1\n    state: draining\n',
    );
    expect(diffRing(v, desired)).toEqual([]);
    const plan = planApply(v, desired, 'ring.yaml', { syntheticKeys: 1_000 });
    expect(plan).toMatchObject({ changed: false, steps: [], nodes_before: 1, nodes_after: 1 });
    expect(plan.synthetic).toEqual({ keys: 1_000, moved: 0, fraction: 0 });
  });

  it('the ideal is half the sum of share changes: a removal of one of two equal nodes is its share', () => {
    const v = view([{ id: 'a:1' }, { id: 'b:1' }]);
    const plan = planApply(v, file('nodes:\n  - address: a:1\n'), 'f', { syntheticKeys: 2_000 });
    const b = plan.nodes.find((n) => n.id === 'b:1');
    expect(plan.ideal_fraction).toBeCloseTo(b?.share_before ?? -1, 12);
    expect(plan.synthetic.moved).toBe(b?.keys_before);
  });
});
