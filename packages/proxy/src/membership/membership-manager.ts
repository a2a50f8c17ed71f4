import {
  activeNodes,
  checksum,
  compareEntries,
  liveEntries,
  MAX_ENTRIES,
  MAX_WEIGHT,
  type MemberChange,
  type MemberEntry,
  type MembershipDoc,
  MIN_WEIGHT,
  merge,
  nodeIdFor,
  parseAddress,
  type RoutingState,
  setRouting,
  upsertEntry,
  validateDoc,
} from '@dcache/ring';
import type { Logger } from 'pino';
import { DcacheError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { MembershipHolder, RingSnapshot } from './membership-holder.js';

/**
 * Ids that are never node ids, as `RESERVED_IDS` of @dcache/ring's membership.ts (which refuses
 * them everywhere; not re-exported by the package index): checked first here, so that the admin
 * API names the id rather than another problem of the request.
 */
const RESERVED_IDS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** Body of POST /api/v1/ring/nodes. */
export interface AddNodeInput {
  address: string;
  weight?: number;
  /** A name instead of host:port (default: the address). */
  id?: string;
}

/** Body of PATCH /api/v1/ring/nodes/{id}. */
export interface UpdateNodeInput {
  weight?: number;
  state?: 'active' | 'draining';
}

/** What receiving a peer's document did. */
export interface ReceiveResult {
  /** The local document changed. */
  changed: boolean;
  /** Why the peer's document was not merged: a seed list, or equal to ours (nothing to do). */
  ignored?: 'seeded' | 'same';
  /** Nodes re-activated because the merge would have left the ring without an active node. */
  reactivated: string[];
}

/** Options of a MembershipManager. */
export interface ManagerOptions {
  /** This proxy's node id: the `writer` of its changes. */
  writer: string;
  log: Logger;
  metrics?: Metrics;
  /** The current document is only the DC_CACHE_ADDRESSES seed. */
  seeded?: boolean;
  now?: () => number;
}

/**
 * Every change of the membership goes through here: admin changes (checked, then applied as
 * one new snapshot) and documents from peers (merged, with the empty-ring guard). Node.js
 * runs each method to completion, so read-modify-apply is atomic.
 */
export class MembershipManager {
  readonly holder: MembershipHolder;
  readonly writer: string;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => number;
  private seededDoc: boolean;
  private readonly seededListeners: (() => void)[] = [];
  /**
   * Entries written by admin changes made while the document was only the seed list: their
   * versions may be older than the cluster's, so the first merge with a peer that has cluster
   * history may overwrite them. That is logged, not silent (cleared once a peer confirmed).
   */
  private readonly provisional = new Map<string, MemberEntry>();

  constructor(holder: MembershipHolder, opts: ManagerOptions) {
    this.holder = holder;
    this.writer = opts.writer;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
    this.seededDoc = opts.seeded ?? false;
  }

  /** True while the document is only the seed list (no admin change, nothing from a peer). */
  get seeded(): boolean {
    return this.seededDoc;
  }

  /** Call `fn` whenever `seeded` turns false without the document changing (it must be saved). */
  onSeededCleared(fn: () => void): void {
    this.seededListeners.push(fn);
  }

  /** The current snapshot. */
  get current(): RingSnapshot {
    return this.holder.current;
  }

  /** Add a node (or re-add a removed one). INVALID_ADDRESS, INVALID_BODY, NODE_EXISTS. */
  addNode(input: AddNodeInput): RingSnapshot {
    const address = input.address;
    try {
      parseAddress(address);
    } catch (e) {
      throw new DcacheError(
        'INVALID_ADDRESS',
        `${JSON.stringify(address)} is not host:port: ${(e as Error).message}`,
      );
    }
    const id = input.id ?? nodeIdFor(address);
    if (RESERVED_IDS.includes(id)) {
      throw new DcacheError(
        'INVALID_BODY',
        `"id" ${JSON.stringify(id)} is reserved (${RESERVED_IDS.join(', ')} are never node ids)`,
      );
    }
    checkWeight(input.weight);
    const doc = this.holder.current.doc;
    const prev = doc.entries[id];
    if (prev && prev.state !== 'removed') {
      throw new DcacheError('NODE_EXISTS', `node ${id} is already in the ring (${prev.state})`);
    }
    const same = Object.values(doc.entries).find(
      (e) => e.state !== 'removed' && e.address === address && e.id !== id,
    );
    if (same) {
      throw new DcacheError(
        'NODE_EXISTS',
        `address ${address} is already in the ring as ${same.id}`,
      );
    }
    const change: MemberChange = { id, address, weight: input.weight ?? 1, state: 'active' };
    // A node that joins may hold values from an earlier time in the ring: it is purged (flushed)
    // by this proxy before any proxy routes to it (routing state `rejoining` until then).
    return this.adminApply(doc, change, 'rejoining');
  }

  /** Remove a node (a tombstone). NODE_NOT_FOUND, RING_CONFLICT for the last active node. */
  removeNode(id: string): RingSnapshot {
    const doc = this.holder.current.doc;
    const prev = this.live(doc, id);
    if (prev.state === 'active') this.refuseLastActive(doc, id, 'remove');
    return this.adminApply(doc, { id, state: 'removed' });
  }

  /** Change a node's weight or state. NODE_NOT_FOUND, INVALID_BODY, RING_CONFLICT. */
  updateNode(id: string, patch: UpdateNodeInput): RingSnapshot {
    const doc = this.holder.current.doc;
    const prev = this.live(doc, id);
    checkWeight(patch.weight);
    if (patch.state !== undefined && patch.state !== 'active' && patch.state !== 'draining') {
      throw new DcacheError(
        'INVALID_BODY',
        '"state" must be "active" or "draining" (DELETE removes a node)',
      );
    }
    const weight = patch.weight ?? prev.weight;
    const state = patch.state ?? prev.state;
    if (weight === prev.weight && state === prev.state) return this.holder.current;
    if (prev.state === 'active' && state === 'draining') this.refuseLastActive(doc, id, 'drain');
    // A drained node that comes back is purged of what changed meanwhile before it serves.
    const back = prev.state === 'draining' && state === 'active';
    return this.adminApply(doc, { id, weight, state }, back ? 'rejoining' : undefined);
  }

  /**
   * A cluster-wide routing change of node `id` made by this proxy (health or rejoin protocol).
   * False when nothing changed, or when the change cannot be made (the node's routing register
   * is at the version cap: logged, the routing stays as it is).
   */
  setRouting(id: string, state: RoutingState): boolean {
    const doc = this.holder.current.doc;
    let next: MembershipDoc;
    try {
      next = setRouting(doc, id, state, this.writer, this.now());
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.log.warn(
        { node: id, routing: state, err: e.message },
        'routing change refused: the document cannot take it',
      );
      return false;
    }
    if (next === doc) return false;
    return this.holder.apply(next, 'health');
  }

  /**
   * Take a peer's document (already validated). Seed-only documents never override a
   * document that has cluster history, and a seed-only proxy adopts the first real one whole.
   * Otherwise merge; a merge that would leave no active node re-activates ours (see docs).
   * A document equal to ours (`checksum`, when the caller has it) is not merged at all.
   * Throws DcacheError, changing nothing, when the result could not be kept: more than
   * MAX_ENTRIES entries or registers (INVALID_MEMBERSHIP: peers would refuse it), or an empty
   * ring whose nodes cannot be re-activated because they are at the version cap (VERSION_LIMIT).
   */
  receive(
    remote: MembershipDoc,
    opts: { seeded: boolean; origin?: string; checksum?: string },
  ): ReceiveResult {
    const local = this.holder.current.doc;
    if (!this.seededDoc && opts.seeded) {
      // Our document has cluster history; theirs is only a seed list. They adopt ours.
      return { changed: false, ignored: 'seeded', reactivated: [] };
    }
    if ((opts.checksum ?? checksum(remote)) === this.holder.current.checksum) {
      // The same document (a resent one): nothing to merge or build.
      if (!opts.seeded) this.clearSeeded();
      return { changed: false, ignored: 'same', reactivated: [] };
    }
    let next: MembershipDoc;
    if (this.seededDoc && !opts.seeded && activeNodes(remote).length > 0) {
      // "A peer knows better" than our DC_CACHE_ADDRESSES: take its document as it is.
      next = remote;
    } else {
      next = merge(local, remote);
    }
    const entries = Object.keys(next.entries).length;
    const registers = Object.keys(next.routing).length;
    if (entries > MAX_ENTRIES || registers > MAX_ENTRIES) {
      throw new DcacheError(
        'INVALID_MEMBERSHIP',
        `merging the document would give ${entries} entries and ${registers} routing registers; at most ${MAX_ENTRIES} of each (peers would refuse the result)`,
      );
    }
    const reactivated = this.guardEmpty(local, next);
    next = reactivated.doc;
    if (!opts.seeded) this.noteLostAdminChanges(next, opts.origin);
    const wasSeeded = this.seededDoc;
    if (!opts.seeded || reactivated.ids.length > 0) this.seededDoc = false;
    const changed = this.applyFrom(next, local, opts.origin);
    if (!changed && wasSeeded && !this.seededDoc) for (const fn of this.seededListeners) fn();
    return { changed, reactivated: reactivated.ids };
  }

  /**
   * P8: admin changes made while this proxy's document was only its seed list (it started
   * without its state file while its peers were unreachable) carry versions that may be older
   * than the cluster's. The first merge with a document that has cluster history decides; an
   * admin change that lost is logged (warn) instead of vanishing silently.
   */
  private noteLostAdminChanges(next: MembershipDoc, origin: string | undefined): void {
    if (this.provisional.size === 0) return;
    for (const [id, mine] of this.provisional) {
      const now = next.entries[id];
      if (now === undefined || now.writer === this.writer || compareEntries(now, mine) <= 0) {
        continue;
      }
      this.log.warn(
        {
          node: id,
          from: origin,
          ours: { state: mine.state, weight: mine.weight, address: mine.address },
          theirs: { state: now.state, weight: now.weight, address: now.address, by: now.writer },
        },
        'an admin change made before this proxy met its peers lost to a newer change of the cluster (it started without its state file while its peers were unreachable); make it again if it is still wanted',
      );
    }
    this.provisional.clear();
  }

  /** The document equals a peer's that has cluster history: stop counting ours as a seed. */
  clearSeeded(): void {
    // A peer with cluster history holds our document: admin changes made while seeded survived.
    this.provisional.clear();
    if (!this.seededDoc) return;
    this.seededDoc = false;
    for (const fn of this.seededListeners) fn();
  }

  private applyFrom(next: MembershipDoc, prev: MembershipDoc, origin: string | undefined): boolean {
    const changed = this.holder.apply(next, 'peer', origin);
    if (changed) {
      const snap = this.holder.current;
      this.log.info(
        { from: origin, version: snap.version, checksum: snap.checksum },
        'membership merged from a peer',
      );
      this.warnSharedAddresses(next, prev, origin);
    }
    if (changed && this.metrics) {
      const now = this.now();
      for (const e of Object.values(next.entries)) {
        const old = prev.entries[e.id];
        if (old && old.version === e.version && old.writer === e.writer) continue;
        if (e.updatedAt > 0)
          this.metrics.convergence.observe(Math.max(0, now - e.updatedAt) / 1000);
      }
    }
    return changed;
  }

  /**
   * The empty-ring guard. If `local` has active nodes and `next` has none, re-activate (as a
   * new change by this proxy, so it wins the merge everywhere) the nodes that were active in
   * `local`. This keeps merge convergent: it is an ordinary change, not a refusal.
   */
  private guardEmpty(
    local: MembershipDoc,
    next: MembershipDoc,
  ): { doc: MembershipDoc; ids: string[] } {
    const before = activeNodes(local);
    if (before.length === 0 || activeNodes(next).length > 0) return { doc: next, ids: [] };
    let doc = next;
    const now = this.now();
    const ids: string[] = [];
    for (const n of before) {
      try {
        doc = upsertEntry(doc, { id: n.id, state: 'active' }, this.writer, now);
        ids.push(n.id);
      } catch (e) {
        // An entry at the version cap cannot be re-activated (never an overflow).
        if (!(e instanceof RangeError)) throw e;
      }
    }
    if (ids.length === 0) {
      throw new DcacheError(
        'VERSION_LIMIT',
        `the document would leave the ring without an active node, and the nodes to re-activate (${before
          .slice(0, 5)
          .map((n) => n.id)
          .join(', ')}) are at the version cap: refused`,
      );
    }
    this.log.warn(
      { reactivated: ids },
      'a peer document would leave the ring without an active node: re-activated ours',
    );
    return { doc, ids };
  }

  /**
   * P7: two live ids on one Redis address give it double weight. A merge cannot refuse that (two
   * proxies adding one address under two ids at once must still converge), so it is logged.
   */
  private warnSharedAddresses(
    next: MembershipDoc,
    prev: MembershipDoc,
    origin: string | undefined,
  ): void {
    const before = sharedAddresses(prev);
    for (const [address, ids] of sharedAddresses(next)) {
      if (before.get(address) === ids) continue;
      this.log.warn(
        { address, ids: ids.split(','), from: origin },
        'two live nodes of the ring share one Redis address (it counts twice): remove one of them',
      );
    }
  }

  private live(doc: MembershipDoc, id: string): MemberEntry {
    const prev = doc.entries[id];
    if (!prev || prev.state === 'removed') {
      throw new DcacheError('NODE_NOT_FOUND', `no node ${JSON.stringify(id)} in the ring`);
    }
    return prev;
  }

  private refuseLastActive(doc: MembershipDoc, id: string, what: string): void {
    const active = activeNodes(doc);
    if (active.length === 1 && active[0]?.id === id) {
      throw new DcacheError(
        'RING_CONFLICT',
        `cannot ${what} ${id}: it is the last active node (add another node first)`,
      );
    }
  }

  private adminApply(
    doc: MembershipDoc,
    change: MemberChange,
    routing?: RoutingState,
  ): RingSnapshot {
    let next: MembershipDoc;
    try {
      next = upsertEntry(doc, change, this.writer, this.now());
      if (routing !== undefined)
        next = setRouting(next, change.id, routing, this.writer, this.now());
    } catch (e) {
      const message = (e as Error).message;
      if ((e as { code?: unknown }).code === 'VERSION_LIMIT') {
        // Refused whole: no document peers would reject, no overflow.
        throw new DcacheError(
          'VERSION_LIMIT',
          `${message} (a peer or an older build set it there); add the Redis under a new id instead`,
        );
      }
      throw new DcacheError('INVALID_BODY', message);
    }
    if (this.seededDoc) {
      const entry = next.entries[change.id];
      if (entry) this.provisional.set(change.id, entry);
    }
    this.seededDoc = false;
    this.holder.apply(next, 'admin');
    const snap = this.holder.current;
    this.log.info(
      { change, by: this.writer, version: snap.version, checksum: snap.checksum },
      'ring changed by admin',
    );
    return snap;
  }
}

/** Addresses that two or more live ids share, as `address → ids` ("a,b"). */
function sharedAddresses(doc: MembershipDoc): Map<string, string> {
  const by = new Map<string, string[]>();
  for (const e of liveEntries(doc)) {
    const ids = by.get(e.address);
    if (ids) ids.push(e.id);
    else by.set(e.address, [e.id]);
  }
  const out = new Map<string, string>();
  for (const [address, ids] of by) if (ids.length > 1) out.set(address, ids.join(','));
  return out;
}

function checkWeight(weight: unknown): void {
  if (weight === undefined) return;
  if (
    typeof weight !== 'number' ||
    !Number.isInteger(weight) ||
    weight < MIN_WEIGHT ||
    weight > MAX_WEIGHT
  ) {
    throw new DcacheError(
      'INVALID_BODY',
      `"weight" must be an integer ${MIN_WEIGHT}..${MAX_WEIGHT} (got ${JSON.stringify(weight)})`,
    );
  }
}

/** Parse and validate a document from untrusted input; INVALID_MEMBERSHIP on failure. */
export function checkDoc(input: unknown): MembershipDoc {
  try {
    return validateDoc(input);
  } catch (e) {
    throw new DcacheError('INVALID_MEMBERSHIP', (e as Error).message);
  }
}
