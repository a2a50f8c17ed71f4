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

export interface MembershipDoc {
  entries: Readonly<Record<string, MemberEntry>>;
}

export const MEMBER_STATES: readonly MemberState[] = Object.freeze([
  'active',
  'draining',
  'removed',
]);
export const MAX_ENTRIES = 4096;
export const MAX_ID_LENGTH = 255;
export const MIN_WEIGHT = 1;
export const MAX_WEIGHT = 1000;

const STATE_RANK: Record<MemberState, number> = { active: 0, draining: 1, removed: 2 };

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

function makeDoc(entries: Map<string, MemberEntry>): MembershipDoc {
  // Prototype-less record (ids like "__proto__" are data, not magic), in id order.
  const record: Record<string, MemberEntry> = Object.create(null);
  for (const id of [...entries.keys()].sort(cmpStr)) record[id] = entries.get(id)!;
  return Object.freeze({ entries: Object.freeze(record) });
}

function entryMap(doc: MembershipDoc): Map<string, MemberEntry> {
  return new Map(Object.entries(doc.entries));
}

export function emptyDoc(): MembershipDoc {
  return makeDoc(new Map());
}

/** Join of two documents: commutative, associative, idempotent. */
export function merge(a: MembershipDoc, b: MembershipDoc): MembershipDoc {
  const out = entryMap(a);
  for (const [id, eb] of Object.entries(b.entries)) {
    const ea = out.get(id);
    if (ea === undefined || compareEntries(eb, ea) > 0) out.set(id, eb);
  }
  return makeDoc(out);
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
    version: (prev?.version ?? 0) + 1,
    writer,
    updatedAt: now,
  });
  const out = entryMap(doc);
  out.set(change.id, entry);
  return makeDoc(out);
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

/** Sum of entry versions; never decreases under merge or upsert. */
export function docVersion(doc: MembershipDoc): number {
  let v = 0;
  for (const e of Object.values(doc.entries)) v += e.version;
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
    const version = e['version'];
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      throw new TypeError(`${where}.version must be a positive integer`);
    }
    try {
      checkWriter(e['writer']);
    } catch (err) {
      throw new TypeError(`${where}.${(err as Error).message}`);
    }
    const updatedAt = e['updatedAt'];
    if (typeof updatedAt !== 'number' || !Number.isFinite(updatedAt) || updatedAt < 0) {
      throw new TypeError(`${where}.updatedAt must be a finite number >= 0`);
    }
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
  return makeDoc(out);
}
