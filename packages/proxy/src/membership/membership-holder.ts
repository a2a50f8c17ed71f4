import { EventEmitter } from 'node:events';
import {
  activeNodes,
  digest,
  emptyDoc,
  liveEntries,
  type MemberEntry,
  type MembershipDoc,
  nodeIdFor,
  Ring,
  type RingOptions,
  upsertEntry,
} from '@dcache/ring';

/** An immutable view of the membership: the document, the ring over its active nodes, its digest. */
export interface RingSnapshot {
  readonly doc: MembershipDoc;
  readonly ring: Ring;
  readonly version: number;
  readonly checksum: string;
  /** Live members (active and draining) by id: the pool keeps a client for each. */
  readonly members: ReadonlyMap<string, MemberEntry>;
  readonly at: number;
}

/** Where a membership change came from. */
export type ChangeSource = 'seed' | 'admin' | 'peer' | 'file';

/** Build a snapshot from a document. */
export function snapshotOf(doc: MembershipDoc, ringOpts: RingOptions): RingSnapshot {
  const d = digest(doc);
  const ring = new Ring(
    activeNodes(doc).map((n) => ({ id: n.id, weight: n.weight })),
    ringOpts,
  );
  return {
    doc,
    ring,
    version: d.version,
    checksum: d.checksum,
    members: new Map(liveEntries(doc).map((e) => [e.id, e])),
    at: Date.now(),
  };
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

/** Holds the current snapshot and swaps it whole; emits `change` (next, previous, source). */
export class MembershipHolder extends EventEmitter<{
  change: [RingSnapshot, RingSnapshot, ChangeSource];
}> {
  private snap: RingSnapshot;
  readonly ringOpts: RingOptions;

  constructor(doc: MembershipDoc, ringOpts: RingOptions) {
    super();
    this.ringOpts = ringOpts;
    this.snap = snapshotOf(doc, ringOpts);
  }

  /** The current snapshot. */
  get current(): RingSnapshot {
    return this.snap;
  }

  /** Replace the document; returns false (no event) when its checksum is unchanged. */
  apply(doc: MembershipDoc, source: ChangeSource): boolean {
    const next = snapshotOf(doc, this.ringOpts);
    if (next.checksum === this.snap.checksum) return false;
    const prev = this.snap;
    this.snap = next;
    this.emit('change', next, prev, source);
    return true;
  }
}
