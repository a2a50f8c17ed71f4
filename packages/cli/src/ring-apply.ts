import type { DcacheClient, RingView } from '@dcache/client';
import { DcacheClientError } from '@dcache/client';
import { type HashName, nodeIdFor, Ring, type RingNodeInput } from '@dcache/ring';
import { CommandError, EXIT } from './errors.js';
import { compareRings, type RingComparison } from './plan.js';
import type { DesiredNode } from './ring-file.js';

/** One change `ring apply` makes, in the order it makes them. */
export type ApplyStep =
  | {
      /** POST the node (then PATCH it to draining when the file says so). */
      op: 'add';
      id: string;
      address: string;
      weight: number;
      state: DesiredNode['state'];
    }
  | {
      /** DELETE `remove_id`, then POST the node: a new address for an id, or a new id for an address. */
      op: 'replace';
      remove_id: string;
      address_before: string;
      id: string;
      address: string;
      weight: number;
      state: DesiredNode['state'];
    }
  | {
      /** PATCH weight and/or state. */
      op: 'update';
      id: string;
      weight_before: number;
      weight: number;
      state_before: string;
      state: DesiredNode['state'];
    }
  | {
      /** DELETE: the node is not in the file. */
      op: 'remove';
      id: string;
      address: string;
    };

/** What `ring apply` would do (and, after it ran, what it did). */
export interface ApplyPlan extends RingComparison {
  /** The file the desired ring came from. */
  file: string;
  /** False when the ring already matches the file. */
  changed: boolean;
  steps: ApplyStep[];
}

// Additions first (so that removing or draining never leaves the ring without an active
// node), then weight changes and activations, then drains, then removals.
function phase(s: ApplyStep): number {
  if (s.op === 'add') return 0;
  if (s.op === 'replace') return 1;
  if (s.op === 'update') return s.state === 'draining' && s.state_before === 'active' ? 3 : 2;
  return 4;
}

/** The steps that turn the ring `view` into `desired`, in the order they are made. */
export function diffRing(view: RingView, desired: readonly DesiredNode[]): ApplyStep[] {
  const steps: ApplyStep[] = [];
  const current = new Map(view.nodes.map((n) => [n.id, n]));
  const wanted = new Set(desired.map((d) => d.id));
  const replaced = new Set<string>();
  for (const d of desired) {
    const cur = current.get(d.id);
    // A live node under another id holding the address is removed first (the server refuses
    // one address under two ids); it is not in the file, or the file gives it another address.
    const holder = view.nodes.find((n) => n.address === d.address && n.id !== d.id);
    const freeHolder = holder && !wanted.has(holder.id) ? holder : undefined;
    if (cur && cur.address !== d.address) {
      steps.push({
        op: 'replace',
        remove_id: cur.id,
        address_before: cur.address,
        id: d.id,
        address: d.address,
        weight: d.weight,
        state: d.state,
      });
      if (freeHolder) {
        steps.push({ op: 'remove', id: freeHolder.id, address: freeHolder.address });
        replaced.add(freeHolder.id);
      }
    } else if (!cur && freeHolder) {
      steps.push({
        op: 'replace',
        remove_id: freeHolder.id,
        address_before: freeHolder.address,
        id: d.id,
        address: d.address,
        weight: d.weight,
        state: d.state,
      });
      replaced.add(freeHolder.id);
    } else if (!cur) {
      steps.push({ op: 'add', id: d.id, address: d.address, weight: d.weight, state: d.state });
    } else if (cur.weight !== d.weight || cur.state !== d.state) {
      steps.push({
        op: 'update',
        id: d.id,
        weight_before: cur.weight,
        weight: d.weight,
        state_before: cur.state,
        state: d.state,
      });
    }
  }
  for (const n of view.nodes)
    if (!wanted.has(n.id) && !replaced.has(n.id))
      steps.push({ op: 'remove', id: n.id, address: n.address });
  // A removal of a node whose address a replacement takes must precede that replacement.
  return steps
    .map((s, i) => ({ s, i, p: s.op === 'remove' && replaced.has(s.id) ? 0.5 : phase(s) }))
    .sort((a, b) => a.p - b.p || a.i - b.i)
    .map((x) => x.s)
    .filter((s, i, all) => !(s.op === 'remove' && all.findIndex((o) => sameStep(o, s)) !== i));
}

function sameStep(a: ApplyStep, b: ApplyStep): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The plan of applying `desired` to the live ring `view`: steps, shares, keys that move. */
export function planApply(
  view: RingView,
  desired: readonly DesiredNode[],
  file: string,
  opts: { syntheticKeys?: number; sample?: readonly string[] } = {},
): ApplyPlan {
  const hash = view.hash as HashName;
  const tag = view.hash_tag ?? '';
  const ringOpts = { hash, ...(tag ? { hashTag: tag } : {}) };
  const before: RingNodeInput[] = view.nodes
    .filter((n) => n.state === 'active')
    .map((n) => ({ id: n.id, weight: n.weight }));
  const after: RingNodeInput[] = desired
    .filter((d) => d.state === 'active')
    .map((d) => ({ id: d.id, weight: d.weight }));
  const rb = new Ring(before, ringOpts);
  const ra = new Ring(after, ringOpts);
  const cmp = compareRings(rb, ra, opts.syntheticKeys ?? 100_000, opts.sample);
  const steps = diffRing(view, desired);
  const plan: ApplyPlan = {
    file,
    ring_version: view.version,
    hash: rb.hash,
    hash_tag: rb.hashTag,
    changed: steps.length > 0,
    steps,
    nodes_before: rb.size,
    nodes_after: ra.size,
    ideal_fraction: cmp.nodes.reduce((a, n) => a + Math.max(0, n.share_before - n.share_after), 0),
    nodes: cmp.nodes,
    synthetic: cmp.synthetic,
  };
  if (cmp.sample) plan.sample = cmp.sample;
  return plan;
}

/** One line describing a step. */
export function describeStep(s: ApplyStep): string {
  const drain = s.op !== 'update' && s.op !== 'remove' && s.state === 'draining';
  switch (s.op) {
    case 'add':
      return `add ${s.id}${s.id !== safeId(s.address) ? ` (${s.address})` : ''} weight ${s.weight}${drain ? ', then drain it' : ''}`;
    case 'replace':
      return `replace ${s.remove_id} (${s.address_before}) by ${s.id} (${s.address}) weight ${s.weight}${drain ? ', then drain it' : ''}`;
    case 'update': {
      const parts: string[] = [];
      if (s.weight !== s.weight_before) parts.push(`weight ${s.weight_before} → ${s.weight}`);
      if (s.state !== s.state_before)
        parts.push(s.state === 'draining' ? 'drain' : `activate (was ${s.state_before})`);
      return `${s.id}: ${parts.join(', ')}`;
    }
    case 'remove':
      return `remove ${s.id}${s.id !== s.address ? ` (${s.address})` : ''}`;
  }
}

function safeId(address: string): string {
  try {
    return nodeIdFor(address);
  } catch {
    return address;
  }
}

/** The calls of one step against the admin API; resolves with the ring after it. */
async function runStep(client: DcacheClient, s: ApplyStep): Promise<RingView> {
  const add = async (id: string, address: string, weight: number, state: string) => {
    let view = await client.addNode(address, {
      weight,
      ...(id !== safeId(address) ? { id } : {}),
    });
    if (state === 'draining') view = await client.drainNode(id);
    return view;
  };
  switch (s.op) {
    case 'add':
      return add(s.id, s.address, s.weight, s.state);
    case 'replace':
      await client.removeNode(s.remove_id);
      return add(s.id, s.address, s.weight, s.state);
    case 'update':
      return client.updateNode(s.id, {
        ...(s.weight !== s.weight_before ? { weight: s.weight } : {}),
        ...(s.state !== s.state_before ? { state: s.state } : {}),
      });
    case 'remove':
      return client.removeNode(s.id);
  }
}

/** What `applySteps` did. */
export interface ApplyResult {
  /** Steps made, in order. */
  applied: ApplyStep[];
  /** Ring version after the last step. */
  ring_version: number;
}

/**
 * Make the plan's steps. The admin API has no conditional (expected-version) write, so before
 * each step the ring is read again and the remaining steps planned again: when they differ from
 * the ones left (someone else changed the ring), nothing more is changed and RING_CHANGED is
 * thrown. A refused step throws with the server's code. Both name the steps already made.
 */
export async function applySteps(
  client: DcacheClient,
  desired: readonly DesiredNode[],
  plan: ApplyPlan,
): Promise<ApplyResult> {
  const applied: ApplyStep[] = [];
  let version = plan.ring_version;
  const done = () =>
    applied.length === 0
      ? 'nothing was changed'
      : `${applied.length} of ${plan.steps.length} changes were made (${applied.map(describeStep).join('; ')}); ring is now v${version}`;
  for (let i = 0; i < plan.steps.length; i++) {
    const step = plan.steps[i] as ApplyStep;
    const view = await client.ring();
    version = view.version;
    const left = diffRing(view, desired);
    const expected = plan.steps.slice(i);
    if (JSON.stringify(left) !== JSON.stringify(expected)) {
      throw new CommandError(
        'RING_CHANGED',
        `the ring changed while applying (now v${view.version}): ${done()}; run the command again to see the new plan`,
        EXIT.FAILED,
        { applied, ring_version: view.version },
      );
    }
    try {
      version = (await runStep(client, step)).version;
    } catch (e) {
      if (!(e instanceof DcacheClientError)) throw e;
      throw new CommandError(
        e.code,
        `the proxy refused "${describeStep(step)}" (${e.status} ${e.code}: ${e.message}); ${done()}`,
        EXIT.FAILED,
        { applied, ring_version: version, step, status: e.status },
      );
    }
    applied.push(step);
  }
  return { applied, ring_version: version };
}
