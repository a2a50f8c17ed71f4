import { EventEmitter } from 'node:events';
import {
  activeNodes,
  checksum,
  docVersion,
  emptyDoc,
  liveEntries,
  type MemberEntry,
  type MembershipDoc,
  nodeIdFor,
  Ring,
  type RingOptions,
  routingState,
  upsertEntry,
} from '@dcache/ring';

/**
 * An immutable routing view of the cluster: the document, the ring over its active nodes, the
 * nodes taken out of routing cluster-wide, and the digest whose version is the routing epoch.
 */
export interface RingSnapshot {
  readonly doc: MembershipDoc;
  readonly ring: Ring;
  /** The ring over every live node (active and draining): whose keys a write journals for. */
  readonly homeRing: Ring;
  /** Active nodes whose routing state is `out` or `rejoining`: keys skip them to the next owner. */
  readonly excluded: ReadonlySet<string>;
  /** Active nodes being purged before they serve again: the keys they will serve fail fast. */
  readonly rejoining: ReadonlySet<string>;
  /** Active nodes whose routing state is `out` (excluded and not rejoining). */
  readonly out: ReadonlySet<string>;
  /** Live nodes that do not serve their keys now (excluded or draining): writes journal for them. */
  readonly away: ReadonlySet<string>;
  /** The routing epoch: sum of every entry's and routing register's version. */
  readonly version: number;
  readonly checksum: string;
  /** Live members (active and draining) by id: the pool keeps a client for each. */
  readonly members: ReadonlyMap<string, MemberEntry>;
  readonly at: number;
}

/** Where a membership change came from. */
export type ChangeSource = 'seed' | 'admin' | 'peer' | 'file' | 'health';

/** A change of the routing view, as listeners receive it. */
export interface RoutingChange {
  next: RingSnapshot;
  prev: RingSnapshot;
  source: ChangeSource;
  /** The peer URL the change came from (source `peer`). */
  origin?: string;
}

function sameNodes(a: Ring, nodes: readonly { id: string; weight: number }[]): boolean {
  const b = a.nodes;
  return (
    b.length === nodes.length &&
    b.every((n, i) => n.id === nodes[i]?.id && n.weight === nodes[i]?.weight)
  );
}

/**
 * Build a snapshot from a document, reusing `prev`'s rings when their node lists are unchanged.
 * `sum` is the document's checksum when the caller computed it already.
 */
export function snapshotOf(
  doc: MembershipDoc,
  ringOpts: RingOptions,
  prev?: RingSnapshot,
  sum: string = checksum(doc),
): RingSnapshot {
  const d = { version: docVersion(doc), checksum: sum };
  const active = activeNodes(doc).map((n) => ({ id: n.id, weight: n.weight }));
  const ring = prev && sameNodes(prev.ring, active) ? prev.ring : new Ring(active, ringOpts);
  const live = liveEntries(doc);
  const home = live.map((n) => ({ id: n.id, weight: n.weight }));
  const homeRing =
    home.length === active.length
      ? ring
      : prev && sameNodes(prev.homeRing, home)
        ? prev.homeRing
        : new Ring(home, ringOpts);
  const excluded = new Set<string>();
  const rejoining = new Set<string>();
  const out = new Set<string>();
  for (const n of active) {
    const r = routingState(doc, n.id);
    if (r !== 'up') excluded.add(n.id);
    if (r === 'rejoining') rejoining.add(n.id);
    if (r === 'out') out.add(n.id);
  }
  const away = new Set(excluded);
  for (const e of live) if (e.state === 'draining') away.add(e.id);
  return {
    doc,
    ring,
    homeRing,
    excluded,
    rejoining,
    out,
    away,
    version: d.version,
    checksum: d.checksum,
    members: new Map(live.map((e) => [e.id, e])),
    at: Date.now(),
  };
}

/**
 * True when `key` waits for a rejoining node of `s`: the node is among the `replicas` owners the
 * key gets once the rejoining nodes serve again. That is its home, and also a key whose home (or
 * an earlier node of its ring walk) is still `out`: the hand-back gives that key's newest value to
 * the returning node too, so no write of it may reach the interim owner meanwhile.
 */
export function rejoinFenced(s: RingSnapshot, key: string, replicas: number): boolean {
  if (s.rejoining.size === 0) return false;
  if (replicas === 1) {
    const o = s.out.size === 0 ? s.ring.owner(key) : s.ring.ownerExcluding(key, s.out);
    return o !== undefined && s.rejoining.has(o);
  }
  return s.ring.owners(key, replicas, s.out).some((o) => s.rejoining.has(o));
}

/** The document `DC_CACHE_ADDRESSES` seeds: identical on every proxy given the same list. */
export function seedDoc(addresses: readonly string[]): MembershipDoc {
  let doc = emptyDoc();
  for (const address of addresses) {
    doc = upsertEntry(
      doc,
      { id: nodeIdFor(address), address, weight: 1, state: 'active' },
      'seed',
      0,
    );
  }
  return doc;
}

/**
 * Holds the current snapshot and swaps it whole. Listeners of `change` run in the order they were
 * added, which the runtime declares in one place (runtime.ts).
 */
export class MembershipHolder extends EventEmitter<{ change: [RoutingChange] }> {
  private snap: RingSnapshot;
  readonly ringOpts: RingOptions;
  /** Snapshots built by `apply` (a document equal to the current one builds none). */
  builds = 0;

  constructor(doc: MembershipDoc, ringOpts: RingOptions) {
    super();
    this.ringOpts = ringOpts;
    this.snap = snapshotOf(doc, ringOpts);
  }

  /** The current snapshot. */
  get current(): RingSnapshot {
    return this.snap;
  }

  /**
   * Replace the document; returns false (no event) when its checksum is unchanged. The checksum
   * is compared before anything is built: an equal document (a peer's resent one) costs one hash,
   * not a snapshot and its rings.
   */
  apply(doc: MembershipDoc, source: ChangeSource, origin?: string): boolean {
    if (doc === this.snap.doc) return false;
    const sum = checksum(doc);
    if (sum === this.snap.checksum) return false;
    const next = snapshotOf(doc, this.ringOpts, this.snap, sum);
    this.builds++;
    const prev = this.snap;
    this.snap = next;
    this.emit(
      'change',
      origin === undefined ? { next, prev, source } : { next, prev, source, origin },
    );
    return true;
  }
}
