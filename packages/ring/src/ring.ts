/**
 * The consistent-hash ring: twemproxy's ketama continuum (nc_ketama.c), immutable.
 */
import { createHash } from 'node:crypto';
import { type ByteHash, byteHash, type HashName, murmurAscii, Utf8Scratch } from './hash.js';

export interface RingNodeInput {
  id: string;
  weight?: number;
}

export interface RingOptions {
  /** Key hash; default `murmur` (twemproxy's default). */
  hash?: HashName;
  /** Two ASCII characters, e.g. `"{}"`, as twemproxy's `hash_tag`. */
  hashTag?: string;
  /** ketama points per server at weight share 1/N; default 160 (twemproxy / libketama). */
  pointsPerServer?: number;
}

export interface RingNode {
  readonly id: string;
  readonly weight: number;
}

/** twemproxy's KETAMA_POINTS_PER_SERVER. */
export const KETAMA_POINTS_PER_SERVER = 160;
const POINTS_PER_HASH = 4;
const TWO_POW_32 = 2 ** 32;

/**
 * Number of continuum points a server gets, computed exactly as nc_ketama.c does,
 * including its single-precision (`float`) arithmetic:
 *
 *   pct = (float)weight / (float)total_weight;
 *   points = floorf((float)(pct * 160 / 4 * (float)nlive + 0.0000000001)) * 4;
 *
 * The float rounding matters: for 7 equal servers the float product is 40.0000009
 * (160 points each) where a double computation gives 39.99999999 (156 points, what
 * npm hashring does).
 */
export function ketamaPointsFor(
  weight: number,
  totalWeight: number,
  liveServers: number,
  pointsPerServer = KETAMA_POINTS_PER_SERVER,
): number {
  const f = Math.fround;
  const pct = f(f(weight) / f(totalWeight));
  const scaled = f(f(f(pct * f(pointsPerServer)) / POINTS_PER_HASH) * f(liveServers));
  return Math.floor(f(scaled + 0.0000000001)) * POINTS_PER_HASH;
}

function validateNodes(nodes: readonly RingNodeInput[]): RingNode[] {
  if (!Array.isArray(nodes)) throw new TypeError('Ring: nodes must be an array');
  const seen = new Set<string>();
  const out: RingNode[] = [];
  for (const n of nodes) {
    if (n === null || typeof n !== 'object') {
      throw new TypeError('Ring: every node must be an object { id, weight? }');
    }
    const { id } = n;
    if (typeof id !== 'string' || id.length === 0) {
      throw new TypeError('Ring: node id must be a non-empty string');
    }
    if (seen.has(id)) throw new RangeError(`Ring: duplicate node id ${JSON.stringify(id)}`);
    seen.add(id);
    const weight = n.weight ?? 1;
    if (!Number.isSafeInteger(weight) || weight < 1) {
      throw new RangeError(
        `Ring: weight of ${JSON.stringify(id)} must be a positive integer (got ${String(weight)})`,
      );
    }
    out.push(Object.freeze({ id, weight }));
  }
  if (out.length > 0xffff) throw new RangeError('Ring: at most 65535 nodes');
  return out;
}

function validateHashTag(tag: string | undefined): [number, number] | undefined {
  if (tag === undefined || tag === '') return undefined;
  if (
    typeof tag !== 'string' ||
    tag.length !== 2 ||
    tag.charCodeAt(0) >= 0x80 ||
    tag.charCodeAt(1) >= 0x80
  ) {
    throw new RangeError(
      `Ring: hashTag must be two ASCII characters such as "{}" (got ${JSON.stringify(tag)})`,
    );
  }
  return [tag.charCodeAt(0), tag.charCodeAt(1)];
}

/**
 * An immutable ketama ring. Build a new Ring for every membership change; use the
 * `exclude` arguments (skip-walk) for health ejection.
 */
export class Ring {
  /** The nodes as given (input order), frozen. */
  readonly nodes: readonly RingNode[];
  /** Number of nodes (including any that ended up with zero points). */
  readonly size: number;
  /** Key hash in use. */
  readonly hash: HashName;
  /** Hash tag in use ('' when none). */
  readonly hashTag: string;
  /** Continuum points, ascending. */
  private readonly points: Uint32Array;
  /** Owner of each point: an index into `ids`. */
  private readonly pointOwner: Uint32Array;
  /** Node ids in canonical (sorted) order; `pointOwner` indexes this. */
  private readonly ids: readonly string[];
  /** Points per node, by canonical index. */
  private readonly pointCounts: Uint32Array;
  private readonly keyHash: ByteHash;
  private readonly isMurmur: boolean;
  private readonly tagOpen: string;
  private readonly tagClose: string;
  private readonly scratch = new Utf8Scratch();
  /**
   * First-level index: `firstAtOrAbove[b]` is the first point >= `b << shift`, so a hash's
   * answer lies between two neighbouring entries (about 8 points) and the binary search
   * starts there instead of over the whole continuum.
   */
  private readonly firstAtOrAbove: Uint32Array;
  private readonly shift: number;

  constructor(nodes: readonly RingNodeInput[], opts: RingOptions = {}) {
    const list = validateNodes(nodes);
    this.hash = opts.hash ?? 'murmur';
    this.keyHash = byteHash(this.hash);
    this.isMurmur = this.hash === 'murmur';
    const tag = validateHashTag(opts.hashTag);
    this.hashTag = tag ? (opts.hashTag as string) : '';
    this.tagOpen = tag ? String.fromCharCode(tag[0]) : '';
    this.tagClose = tag ? String.fromCharCode(tag[1]) : '';
    const pps = opts.pointsPerServer ?? KETAMA_POINTS_PER_SERVER;
    if (!Number.isSafeInteger(pps) || pps < 1 || pps > 1_000_000) {
      throw new RangeError(`Ring: pointsPerServer must be an integer 1..1000000 (got ${pps})`);
    }

    this.nodes = Object.freeze(list);
    this.size = list.length;

    // Canonical order: by id (code unit order), so the ring does not depend on the
    // order the caller listed the nodes in. It only matters for ties (two points
    // with the same value), which twemproxy leaves to qsort's unspecified order.
    const canonical = [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.ids = Object.freeze(canonical.map((n) => n.id));
    const totalWeight = list.reduce((s, n) => s + n.weight, 0);
    const counts = new Uint32Array(canonical.length);
    let total = 0;
    for (let i = 0; i < canonical.length; i++) {
      const c = ketamaPointsFor(canonical[i]!.weight, totalWeight, canonical.length, pps);
      counts[i] = c;
      total += c;
    }
    this.pointCounts = counts;

    const values = new Uint32Array(total);
    const owners = new Uint32Array(total);
    let at = 0;
    for (let i = 0; i < canonical.length; i++) {
      const id = canonical[i]!.id;
      const hashes = counts[i]! / POINTS_PER_HASH;
      for (let h = 0; h < hashes; h++) {
        // twemproxy: md5("<name>-<h>"), 4 little-endian uint32 per digest.
        const d = createHash('md5').update(`${id}-${h}`).digest();
        for (let x = 0; x < POINTS_PER_HASH; x++) {
          values[at] = d.readUInt32LE(x * 4);
          owners[at] = i;
          at++;
        }
      }
    }
    // Sort by value; ties by canonical node index then generation order (stable).
    const order = new Uint32Array(total);
    for (let i = 0; i < total; i++) order[i] = i;
    order.sort((a, b) => values[a]! - values[b]! || a - b);
    this.points = new Uint32Array(total);
    this.pointOwner = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const src = order[i]!;
      this.points[i] = values[src]!;
      this.pointOwner[i] = owners[src]!;
    }
    const bits = Math.max(1, Math.min(16, Math.floor(Math.log2(Math.max(total, 2) / 8))));
    this.shift = 32 - bits;
    this.firstAtOrAbove = new Uint32Array((1 << bits) + 1);
    for (let b = 0, i = 0; b <= 1 << bits; b++) {
      const start = b === 1 << bits ? 2 ** 32 : b * 2 ** this.shift;
      while (i < total && this.points[i]! < start) i++;
      this.firstAtOrAbove[b] = i;
    }
    Object.freeze(this);
  }

  /** Total number of points on the continuum. */
  get pointCount(): number {
    return this.points.length;
  }

  /** Points each node got (ketama formula), by id. */
  pointsPerNode(): Map<string, number> {
    const out = new Map<string, number>();
    for (const n of this.nodes) out.set(n.id, this.pointCounts[this.ids.indexOf(n.id)]!);
    return out;
  }

  /** uint32 hash of a key, after hash-tag extraction. The empty key hashes to 0 (as in twemproxy). */
  hashKey(key: string): number {
    let from = 0;
    let to = key.length;
    if (this.tagOpen !== '') {
      // twemproxy: first open char, then the first close char after it; an empty
      // tag ("{}") falls back to the whole key.
      const s = key.indexOf(this.tagOpen);
      if (s >= 0) {
        const e = key.indexOf(this.tagClose, s + 1);
        if (e - s > 1) {
          from = s + 1;
          to = e;
        }
      }
    }
    if (to === from) return 0;
    if (this.isMurmur) {
      // Fast path: hash ASCII keys straight from the string, no byte copy.
      const h = murmurAscii(key, from, to);
      if (h >= 0) return h;
    }
    const len = this.scratch.encode(key, from, to);
    return this.keyHash(this.scratch.buf, len);
  }

  /** Index of the first point >= hash, wrapping to 0 (twemproxy ketama_dispatch). */
  private position(hash: number): number {
    const points = this.points;
    const b = hash >>> this.shift;
    let lo = this.firstAtOrAbove[b]!;
    let hi = this.firstAtOrAbove[b + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }

  /** The node that owns `key`. Throws a RangeError on a ring without points. */
  owner(key: string): string {
    if (this.points.length === 0) throw new RangeError('Ring: the ring is empty');
    return this.ids[this.pointOwner[this.position(this.hashKey(key))]!]!;
  }

  /**
   * The first owner of `key` walking the ring clockwise, skipping every point of an
   * excluded node. Only keys owned by excluded nodes change owner. `undefined` when
   * every node is excluded.
   */
  ownerExcluding(key: string, exclude: ReadonlySet<string>): string | undefined {
    const total = this.points.length;
    if (total === 0) return undefined;
    const start = this.position(this.hashKey(key));
    if (exclude.size === 0) return this.ids[this.pointOwner[start]!]!;
    const owners = this.pointOwner;
    const ids = this.ids;
    for (let step = 0, p = start; step < total; step++) {
      const id = ids[owners[p]!]!;
      if (!exclude.has(id)) return id;
      if (++p === total) p = 0;
    }
    return undefined;
  }

  /**
   * Up to `n` distinct node ids in ring-walk order from `key`'s position, skipping
   * excluded nodes (replica selection). Fewer when not enough nodes are eligible.
   */
  owners(key: string, n: number, exclude?: ReadonlySet<string>): string[] {
    const total = this.points.length;
    const out: string[] = [];
    if (total === 0 || !(n >= 1)) return out;
    const ids = this.ids;
    let eligible = 0;
    for (let i = 0; i < ids.length; i++) {
      if (this.pointCounts[i]! > 0 && !exclude?.has(ids[i]!)) eligible++;
    }
    const want = Math.min(Math.floor(n), eligible);
    if (want === 0) return out;
    const taken = new Uint8Array(ids.length);
    const owners = this.pointOwner;
    for (let step = 0, p = this.position(this.hashKey(key)); step < total; step++) {
      const idx = owners[p]!;
      if (taken[idx] === 0) {
        taken[idx] = 1;
        const id = ids[idx]!;
        if (!exclude?.has(id)) {
          out.push(id);
          if (out.length === want) break;
        }
      }
      if (++p === total) p = 0;
    }
    return out;
  }

  /** Fraction of the 2^32 hash space owned by each node (sums to 1; 0 for nodes without points). */
  share(): Map<string, number> {
    const acc = new Float64Array(this.ids.length);
    const pts = this.points;
    const total = pts.length;
    if (total > 0) {
      // Point i owns (pts[i-1], pts[i]]; point 0 also owns the wrap-around arc.
      acc[this.pointOwner[0]!]! += pts[0]! + TWO_POW_32 - pts[total - 1]!;
      for (let i = 1; i < total; i++) acc[this.pointOwner[i]!]! += pts[i]! - pts[i - 1]!;
    }
    const out = new Map<string, number>();
    for (const n of this.nodes) out.set(n.id, acc[this.ids.indexOf(n.id)]! / TWO_POW_32);
    return out;
  }
}
