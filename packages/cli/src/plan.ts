import type { RingView } from '@dcache/client';
import { type HashName, nodeIdFor, Ring, type RingNodeInput } from '@dcache/ring';
import { CommandError, EXIT, UsageError } from './errors.js';

/** A ring change to simulate. */
export type PlanChange =
  | { op: 'add'; address: string; weight: number }
  | { op: 'remove'; id: string };

/** How many keys of a set change owner. */
export interface KeyMoves {
  /** Keys examined. */
  keys: number;
  /** Keys whose owner changes. */
  moved: number;
  /** moved / keys (0 for an empty set). */
  fraction: number;
}

/** One node's figures before and after the change. */
export interface PlanNode {
  id: string;
  /** null when the node is not in the ring on that side. */
  weight_before: number | null;
  weight_after: number | null;
  /** Fraction of the hash space owned. */
  share_before: number;
  share_after: number;
  /** Synthetic keys owned. */
  keys_before: number;
  keys_after: number;
  /** Synthetic keys it loses / gains. */
  moved_out: number;
  moved_in: number;
}

/** A ring before and after a change, compared: what `ring plan` and `ring apply` both print. */
export interface RingComparison {
  /** Ring version the comparison was computed on. */
  ring_version: number;
  hash: string;
  hash_tag: string;
  /** Nodes in the ring (active) before and after. */
  nodes_before: number;
  nodes_after: number;
  /** Fraction of keys that ideally move between the shares before and those after. */
  ideal_fraction: number;
  nodes: PlanNode[];
  synthetic: KeyMoves;
  /** Real keys listed from the cluster (`--sample N`). */
  sample?: KeyMoves;
}

/** Result of `planChange`: what a ring change would do, computed locally. */
export interface Plan extends RingComparison {
  change:
    | { op: 'add'; id: string; address: string; weight: number }
    | { op: 'remove'; id: string; address: string; weight: number; in_ring: boolean };
}

/** Options of `planChange`. */
export interface PlanOptions {
  /** Synthetic keys to place (default 100000). */
  syntheticKeys?: number;
  /** Real keys to place as well. */
  sample?: readonly string[];
  /** Hash tag to apply (default: the ring's `hash_tag`, else none). */
  hashTag?: string;
}

/** The synthetic key `i` (deterministic, so plans are reproducible). */
export function syntheticKey(i: number): string {
  return `dcache:plan:${i}`;
}

/** Build the before and after rings of a change to the live ring `view`. */
export function ringsFor(
  view: RingView,
  change: PlanChange,
  hashTag?: string,
): { before: Ring; after: Ring; plan: Plan['change'] } {
  const hash = view.hash as HashName;
  const tag = hashTag ?? view.hash_tag ?? '';
  const active: RingNodeInput[] = view.nodes
    .filter((n) => n.state === 'active')
    .map((n) => ({ id: n.id, weight: n.weight }));
  let afterNodes: RingNodeInput[];
  let plan: Plan['change'];
  if (change.op === 'add') {
    let id: string;
    try {
      id = nodeIdFor(change.address);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (view.nodes.some((n) => n.id === id))
      throw new CommandError('NODE_EXISTS', `${id} is already in the ring`);
    afterNodes = [...active, { id, weight: change.weight }];
    plan = { op: 'add', id, address: change.address, weight: change.weight };
  } else {
    const node = view.nodes.find((n) => n.id === change.id);
    if (!node)
      throw new CommandError('NODE_NOT_FOUND', `no node ${change.id} in the ring`, EXIT.NOT_FOUND);
    afterNodes = active.filter((n) => n.id !== change.id);
    plan = {
      op: 'remove',
      id: node.id,
      address: node.address,
      weight: node.weight,
      in_ring: node.state === 'active',
    };
  }
  if (afterNodes.length === 0)
    throw new CommandError(
      'RING_CONFLICT',
      'the change would leave the ring without an active node',
    );
  const opts = { hash, ...(tag ? { hashTag: tag } : {}) };
  return { before: new Ring(active, opts), after: new Ring(afterNodes, opts), plan };
}

/** Simulate `change` on the live ring `view` with @dcache/ring: shares, synthetic and sampled moves. */
export function planChange(view: RingView, change: PlanChange, opts: PlanOptions = {}): Plan {
  const n = opts.syntheticKeys ?? 100_000;
  const { before, after, plan } = ringsFor(view, change, opts.hashTag);
  const cmp = compareRings(before, after, n, opts.sample);
  const row = cmp.nodes.find((x) => x.id === plan.id);
  const ideal = plan.op === 'add' ? (row?.share_after ?? 0) : (row?.share_before ?? 0);
  const result: Plan = {
    change: plan,
    ring_version: view.version,
    hash: before.hash,
    hash_tag: before.hashTag,
    nodes_before: before.size,
    nodes_after: after.size,
    ideal_fraction: ideal,
    nodes: cmp.nodes,
    synthetic: cmp.synthetic,
  };
  if (cmp.sample) result.sample = cmp.sample;
  return result;
}

/** Per-node shares and synthetic keys of two rings, the synthetic keys (and `sample`) that move. */
export function compareRings(
  before: Ring,
  after: Ring,
  n: number,
  sample?: readonly string[],
): { nodes: PlanNode[]; synthetic: KeyMoves; sample?: KeyMoves } {
  const shareBefore = before.share();
  const shareAfter = after.share();
  const weightBefore = new Map(before.nodes.map((x) => [x.id, x.weight]));
  const weightAfter = new Map(after.nodes.map((x) => [x.id, x.weight]));
  const ids = [...new Set([...weightBefore.keys(), ...weightAfter.keys()])].sort();
  const rows = new Map<string, PlanNode>(
    ids.map((id) => [
      id,
      {
        id,
        weight_before: weightBefore.get(id) ?? null,
        weight_after: weightAfter.get(id) ?? null,
        share_before: shareBefore.get(id) ?? 0,
        share_after: shareAfter.get(id) ?? 0,
        keys_before: 0,
        keys_after: 0,
        moved_out: 0,
        moved_in: 0,
      },
    ]),
  );
  let moved = 0;
  for (let i = 0; i < n; i++) {
    const key = syntheticKey(i);
    const a = ownerOf(before, key);
    const b = ownerOf(after, key);
    if (a !== undefined) (rows.get(a) as PlanNode).keys_before++;
    if (b !== undefined) (rows.get(b) as PlanNode).keys_after++;
    if (a !== b) {
      moved++;
      if (a !== undefined) (rows.get(a) as PlanNode).moved_out++;
      if (b !== undefined) (rows.get(b) as PlanNode).moved_in++;
    }
  }
  return {
    nodes: [...rows.values()],
    synthetic: { keys: n, moved, fraction: n > 0 ? moved / n : 0 },
    ...(sample ? { sample: movesOf(before, after, sample) } : {}),
  };
}

/** How many of `keys` change owner between two rings. */
export function movesOf(before: Ring, after: Ring, keys: readonly string[]): KeyMoves {
  let moved = 0;
  for (const k of keys) if (ownerOf(before, k) !== ownerOf(after, k)) moved++;
  return { keys: keys.length, moved, fraction: keys.length > 0 ? moved / keys.length : 0 };
}

/** The owner of `key`, undefined on a ring without nodes. */
function ownerOf(ring: Ring, key: string): string | undefined {
  return ring.size > 0 ? ring.owner(key) : undefined;
}
