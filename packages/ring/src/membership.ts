/**
 * The versioned membership document shared by all proxies: a state-based CRDT
 * (a map of last-writer-wins registers keyed by node id, removals as tombstones).
 */
import { createHash } from 'node:crypto';
import { parseAddress } from './address.js';

export type MemberState = 'active' | 'draining' | 'removed';

export interface MemberEntry {
  id: string;
  address: string;
  weight: number;
  state: MemberState;
  /** Per-entry version: previous + 1 on every change. */
  version: number;
  /** Id of the proxy that made this change (tie-breaker). */
  writer: string;
  /** Wall clock (ms) of the change; informational, last tie-breaker only. */
  updatedAt: number;
}

/**
 * Cluster-wide routing state of a node, apart from its admin state: `up` serves; `out` is ejected
 * (its keys route to the next owner); `rejoining` is being purged before it serves again (its keys
 * fail fast everywhere). A last-writer-wins register of its own, so that a health change and an
 * admin change made at once on two proxies never overwrite each other.
 */
export type RoutingState = 'up' | 'out' | 'rejoining';

export interface RoutingEntry {
  id: string;
  state: RoutingState;
  /** Per-register version: previous + 1 on every change. */
  version: number;
  /** Id of the proxy that made this change (tie-breaker). */
  writer: string;
  /** Wall clock (ms) of the change; informational, last tie-breaker only. */
  updatedAt: number;
}

export interface MembershipDoc {
  entries: Readonly<Record<string, MemberEntry>>;
  /** Routing registers by node id; a node without one is `up`. */
  routing: Readonly<Record<string, RoutingEntry>>;
}

export const MEMBER_STATES: readonly MemberState[] = Object.freeze([
  'active',
  'draining',
  'removed',
]);
export const MAX_ENTRIES = 4096;
export const MAX_ID_LENGTH = 255;
/**
 * Highest version an entry or a routing register may carry: 2^39 (about 5.5e11 changes of one
 * node). Far below 2^53, so that version + 1 is always exact; and low enough that the routing
 * epoch (`docVersion`, the sum of every version of a document of at most MAX_ENTRIES entries and
 * MAX_ENTRIES routing registers) stays at most 2 × 2^12 × 2^39 = 2^52, a safe integer. A change
 * that would pass it throws VersionLimitError; a document carrying a version above it is invalid.
 */
export const MAX_VERSION = 2 ** 39;
/** Ids that are never node ids: JSON parsers and plain objects treat these keys specially. */
export const RESERVED_IDS: readonly string[] = Object.freeze([
  '__proto__',
  'constructor',
  'prototype',
]);

/** A change refused because a version would pass MAX_VERSION (never an overflow). */
export class VersionLimitError extends RangeError {
  readonly code = 'VERSION_LIMIT';
  /** The node id whose entry or routing register is at the cap. */
  readonly id: string;
  readonly register: 'entry' | 'routing';
  constructor(id: string, register: 'entry' | 'routing') {
    super(
      `the ${register === 'entry' ? 'entry' : 'routing register'} of ${JSON.stringify(id)} is at the version cap (${MAX_VERSION}) and cannot change any more`,
    );
    this.name = 'VersionLimitError';
    this.id = id;
    this.register = register;
  }
}

/** The version after `prev` (1 for a new register); VersionLimitError past MAX_VERSION. */
function nextVersion(prev: number | undefined, id: string, register: 'entry' | 'routing'): number {
  const v = (prev ?? 0) + 1;
  if (!(v <= MAX_VERSION)) throw new VersionLimitError(id, register);
  return v;
}
export const MIN_WEIGHT = 1;
export const MAX_WEIGHT = 1000;

const STATE_RANK: Record<MemberState, number> = { active: 0, draining: 1, removed: 2 };
export const ROUTING_STATES: readonly RoutingState[] = Object.freeze(['up', 'out', 'rejoining']);
const ROUTING_RANK: Record<RoutingState, number> = { up: 0, rejoining: 1, out: 2 };

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Total order on entries for the same id: higher version, then greater writer,
 * then state rank (removed > draining > active), then address, weight, updatedAt.
 * Returns > 0 when `a` wins.
 */
export function compareEntries(a: MemberEntry, b: MemberEntry): number {
  return (
    a.version - b.version ||
    cmpStr(a.writer, b.writer) ||
    STATE_RANK[a.state] - STATE_RANK[b.state] ||
    cmpStr(a.address, b.address) ||
    a.weight - b.weight ||
    a.updatedAt - b.updatedAt
  );
}

/** Total order on routing registers of one id, as `compareEntries`. Returns > 0 when `a` wins. */
export function compareRouting(a: RoutingEntry, b: RoutingEntry): number {
  return (
    a.version - b.version ||
    cmpStr(a.writer, b.writer) ||
    ROUTING_RANK[a.state] - ROUTING_RANK[b.state] ||
    a.updatedAt - b.updatedAt
  );
}

function sortedRecord<T>(m: Map<string, T>): Readonly<Record<string, T>> {
  // Prototype-less record (ids like "__proto__" are data, not magic), in id order.
  const record: Record<string, T> = Object.create(null);
  for (const id of [...m.keys()].sort(cmpStr)) record[id] = m.get(id)!;
  return Object.freeze(record);
}

function makeDoc(
  entries: Map<string, MemberEntry>,
  routing: Map<string, RoutingEntry> = new Map(),
): MembershipDoc {
  return Object.freeze({ entries: sortedRecord(entries), routing: sortedRecord(routing) });
}

function entryMap(doc: MembershipDoc): Map<string, MemberEntry> {
  return new Map(Object.entries(doc.entries));
}

function routingMap(doc: MembershipDoc): Map<string, RoutingEntry> {
  return new Map(Object.entries(doc.routing ?? {}));
}

export function emptyDoc(): MembershipDoc {
  return makeDoc(new Map());
}

/** Join of two documents: commutative, associative, idempotent (entries and routing apart). */
export function merge(a: MembershipDoc, b: MembershipDoc): MembershipDoc {
  const out = entryMap(a);
  for (const [id, eb] of Object.entries(b.entries)) {
    const ea = out.get(id);
    if (ea === undefined || compareEntries(eb, ea) > 0) out.set(id, eb);
  }
  const routing = routingMap(a);
  for (const [id, rb] of Object.entries(b.routing ?? {})) {
    const ra = routing.get(id);
    if (ra === undefined || compareRouting(rb, ra) > 0) routing.set(id, rb);
  }
  return makeDoc(out, routing);
}

/** The routing state of node `id` (`up` when it has no register). */
export function routingState(doc: MembershipDoc, id: string): RoutingState {
  return doc.routing?.[id]?.state ?? 'up';
}

/**
 * Set the routing state of node `id`, a change by `writer` at `now` (version = previous + 1).
 * Returns the document unchanged when the node is already in that state.
 */
export function setRouting(
  doc: MembershipDoc,
  id: string,
  state: RoutingState,
  writer: string,
  now: number,
): MembershipDoc {
  checkId(id, 'id');
  checkWriter(writer);
  if (!ROUTING_STATES.includes(state)) {
    throw new TypeError(`routing state must be one of ${ROUTING_STATES.join(', ')}`);
  }
  const prev = doc.routing?.[id];
  if ((prev?.state ?? 'up') === state && prev !== undefined) return doc;
  if (prev === undefined && state === 'up') return doc;
  const version = nextVersion(prev?.version, id, 'routing');
  const routing = routingMap(doc);
  if (prev === undefined && routing.size >= MAX_ENTRIES) {
    throw new RangeError(`the document holds ${MAX_ENTRIES} routing registers: no more fit`);
  }
  routing.set(id, Object.freeze({ id, state, version, writer, updatedAt: now }));
  return makeDoc(entryMap(doc), routing);
}

export interface MemberChange {
  id: string;
  address?: string;
  weight?: number;
  state?: MemberState;
}

/**
 * Apply an admin change made by `writer` at `now`. The new entry's version is the
 * previous one + 1 (1 for a new id). Unspecified fields keep their previous value;
 * a new entry needs an address, defaults to weight 1 and state 'active'. Changing a
 * removed entry without a state re-activates it. Removal = `state: 'removed'`
 * (a tombstone that wins over older versions everywhere it is merged).
 */
export function upsertEntry(
  doc: MembershipDoc,
  change: MemberChange,
  writer: string,
  now: number,
): MembershipDoc {
  checkId(change.id, 'id');
  checkWriter(writer);
  if (!Number.isFinite(now) || now < 0) throw new TypeError('now must be a finite number >= 0');
  const prev = doc.entries[change.id];
  const version = nextVersion(prev?.version, change.id, 'entry');
  const address = change.address ?? prev?.address;
  if (address === undefined) {
    throw new TypeError(`entry ${JSON.stringify(change.id)} is new and needs an address`);
  }
  parseAddress(address);
  const weight = change.weight ?? prev?.weight ?? 1;
  checkWeight(weight, change.id);
  const state: MemberState =
    change.state ?? (prev === undefined || prev.state === 'removed' ? 'active' : prev.state);
  if (!MEMBER_STATES.includes(state)) {
    throw new TypeError(`state must be one of ${MEMBER_STATES.join(', ')}`);
  }
  const entry: MemberEntry = Object.freeze({
    id: change.id,
    address,
    weight,
    state,
    version,
    writer,
    updatedAt: now,
  });
  const out = entryMap(doc);
  if (prev === undefined && out.size >= MAX_ENTRIES) {
    throw new RangeError(
      `the ring holds ${MAX_ENTRIES} entries (removed nodes count): no node can be added`,
    );
  }
  out.set(change.id, entry);
  return makeDoc(out, routingMap(doc));
}

function sortedEntries(doc: MembershipDoc): MemberEntry[] {
  return Object.values(doc.entries).sort((a, b) => cmpStr(a.id, b.id));
}

/** Entries in state 'active', sorted by id: these form the ring. */
export function activeNodes(doc: MembershipDoc): { id: string; address: string; weight: number }[] {
  return sortedEntries(doc)
    .filter((e) => e.state === 'active')
    .map((e) => ({ id: e.id, address: e.address, weight: e.weight }));
}

/** Entries not removed (active and draining), sorted by id. */
export function liveEntries(doc: MembershipDoc): MemberEntry[] {
  return sortedEntries(doc).filter((e) => e.state !== 'removed');
}

/**
 * Sum of entry and routing versions: the routing epoch. Never decreases under merge, upsert or
 * setRouting; every change of who serves a key (admin or health) increases it. At most 2^52 (a
 * safe integer) for a document within MAX_ENTRIES entries and registers (see MAX_VERSION).
 */
export function docVersion(doc: MembershipDoc): number {
  let v = 0;
  for (const e of Object.values(doc.entries)) v += e.version;
  for (const r of Object.values(doc.routing ?? {})) v += r.version;
  return v;
}

/** sha256 hex of the canonical entry list (sorted by id, every field). Equal docs, equal checksum. */
export function checksum(doc: MembershipDoc): string {
  const canonical = sortedEntries(doc).map((e) => [
    e.id,
    e.address,
    e.weight,
    e.state,
    e.version,
    e.writer,
    e.updatedAt,
  ]);
  const routing = Object.values(doc.routing ?? {});
  // A document without routing registers keeps the checksum it had before they existed.
  if (routing.length > 0) {
    canonical.push([
      '#routing',
      ...routing
        .sort((a, b) => cmpStr(a.id, b.id))
        .map((r) => [r.id, r.state, r.version, r.writer, r.updatedAt]),
    ] as never);
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

export function digest(doc: MembershipDoc): { version: number; checksum: string } {
  return { version: docVersion(doc), checksum: checksum(doc) };
}

// ---------------------------------------------------------------- validation

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function checkId(id: unknown, what: string): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new TypeError(`${what} must be a non-empty string`);
  }
  if (id.length > MAX_ID_LENGTH) {
    throw new TypeError(`${what} is longer than ${MAX_ID_LENGTH} characters`);
  }
  if (hasControl(id)) throw new TypeError(`${what} contains control characters`);
  if (RESERVED_IDS.includes(id)) {
    throw new TypeError(
      `${what} ${JSON.stringify(id)} is reserved (${RESERVED_IDS.join(', ')} are never node ids)`,
    );
  }
}

function checkWriter(writer: unknown): asserts writer is string {
  if (typeof writer !== 'string' || writer.length > MAX_ID_LENGTH || hasControl(writer)) {
    throw new TypeError(
      `writer must be a string of at most ${MAX_ID_LENGTH} characters without control characters`,
    );
  }
}

function checkWeight(weight: unknown, id: string): asserts weight is number {
  if (
    typeof weight !== 'number' ||
    !Number.isInteger(weight) ||
    weight < MIN_WEIGHT ||
    weight > MAX_WEIGHT
  ) {
    throw new TypeError(
      `weight of ${JSON.stringify(id)} must be an integer ${MIN_WEIGHT}..${MAX_WEIGHT} (got ${JSON.stringify(weight)})`,
    );
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Check an untrusted value (peer payload, state file) and return it as a frozen
 * MembershipDoc. Throws a TypeError whose message names the offending field.
 */
export function validateDoc(input: unknown): MembershipDoc {
  if (!isPlainObject(input)) throw new TypeError('membership document must be an object');
  const raw = input['entries'];
  if (!isPlainObject(raw)) {
    throw new TypeError('membership document: "entries" must be an object keyed by node id');
  }
  const keys = Object.keys(raw);
  if (keys.length > MAX_ENTRIES) {
    throw new TypeError(
      `membership document has ${keys.length} entries; at most ${MAX_ENTRIES} allowed`,
    );
  }
  const out = new Map<string, MemberEntry>();
  for (const key of keys) {
    const where = `entries[${JSON.stringify(key.slice(0, 64))}]`;
    const e = raw[key];
    if (!isPlainObject(e)) throw new TypeError(`${where} must be an object`);
    checkId(e['id'], `${where}.id`);
    if (e['id'] !== key) throw new TypeError(`${where}.id does not match its key`);
    const address = e['address'];
    if (typeof address !== 'string') throw new TypeError(`${where}.address must be a string`);
    try {
      parseAddress(address);
    } catch (err) {
      throw new TypeError(`${where}.address: ${(err as Error).message}`);
    }
    try {
      checkWeight(e['weight'], key);
    } catch (err) {
      throw new TypeError(`${where}.weight: ${(err as Error).message}`);
    }
    const state = e['state'];
    if (typeof state !== 'string' || !MEMBER_STATES.includes(state as MemberState)) {
      throw new TypeError(`${where}.state must be one of ${MEMBER_STATES.join(', ')}`);
    }
    const { version, updatedAt } = checkStamp(e, where);
    out.set(
      key,
      Object.freeze({
        id: key,
        address,
        weight: e['weight'] as number,
        state: state as MemberState,
        version,
        writer: e['writer'] as string,
        updatedAt,
      }),
    );
  }
  return makeDoc(out, validateRouting(input['routing']));
}

/** The version, writer and time every register carries, checked; errors name `where`. */
function checkStamp(
  r: Record<string, unknown>,
  where: string,
): { version: number; updatedAt: number } {
  const version = r['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new TypeError(`${where}.version must be a positive integer`);
  }
  if (version > MAX_VERSION) {
    throw new TypeError(`${where}.version ${version} is above the version cap ${MAX_VERSION}`);
  }
  try {
    checkWriter(r['writer']);
  } catch (err) {
    throw new TypeError(`${where}.${(err as Error).message}`);
  }
  const updatedAt = r['updatedAt'];
  if (typeof updatedAt !== 'number' || !Number.isFinite(updatedAt) || updatedAt < 0) {
    throw new TypeError(`${where}.updatedAt must be a finite number >= 0`);
  }
  return { version, updatedAt };
}

function validateRouting(raw: unknown): Map<string, RoutingEntry> {
  const out = new Map<string, RoutingEntry>();
  if (raw === undefined) return out;
  if (!isPlainObject(raw)) {
    throw new TypeError('membership document: "routing" must be an object keyed by node id');
  }
  const keys = Object.keys(raw);
  if (keys.length > MAX_ENTRIES) {
    throw new TypeError(
      `membership document has ${keys.length} routing registers; at most ${MAX_ENTRIES} allowed`,
    );
  }
  for (const key of keys) {
    const where = `routing[${JSON.stringify(key.slice(0, 64))}]`;
    const r = raw[key];
    if (!isPlainObject(r)) throw new TypeError(`${where} must be an object`);
    checkId(r['id'], `${where}.id`);
    if (r['id'] !== key) throw new TypeError(`${where}.id does not match its key`);
    const state = r['state'];
    if (typeof state !== 'string' || !ROUTING_STATES.includes(state as RoutingState)) {
      throw new TypeError(`${where}.state must be one of ${ROUTING_STATES.join(', ')}`);
    }
    const { version, updatedAt } = checkStamp(r, where);
    out.set(
      key,
      Object.freeze({
        id: key,
        state: state as RoutingState,
        version,
        writer: r['writer'] as string,
        updatedAt,
      }),
    );
  }
  return out;
}
