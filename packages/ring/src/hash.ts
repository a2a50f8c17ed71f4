/**
 * Key hash functions, bit-for-bit compatible with twemproxy (nutcracker 0.5.0)
 * `src/hashkit/*`, over the UTF-8 bytes of the key.
 *
 * All functions take a byte buffer and a length so callers can reuse one scratch
 * buffer and hash without allocating.
 */
import { createHash } from 'node:crypto';

export type HashName = 'murmur' | 'fnv1a_64' | 'md5';

export const HASH_NAMES: readonly HashName[] = Object.freeze(['murmur', 'fnv1a_64', 'md5']);

/** A hash over `bytes[0..length)`, returning an unsigned 32-bit integer. */
export type ByteHash = (bytes: Uint8Array, length: number) => number;

const MURMUR_M = 0x5bd1e995;

/**
 * twemproxy `hash_murmur`: MurmurHash2 with `seed = 0xdeadbeef * length`,
 * `h = seed ^ length`, 4-byte little-endian blocks, r = 24.
 */
export function murmurBytes(bytes: Uint8Array, length: number): number {
  const seed = Math.imul(0xdeadbeef, length);
  let h = (seed ^ length) | 0;
  let i = 0;
  let rest = length;
  while (rest >= 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24) | 0;
    k = Math.imul(k, MURMUR_M);
    k ^= k >>> 24;
    k = Math.imul(k, MURMUR_M);
    h = Math.imul(h, MURMUR_M);
    h ^= k;
    i += 4;
    rest -= 4;
  }
  // Tail bytes (twemproxy's fall-through switch, unrolled).
  if (rest > 0) {
    if (rest === 3) h ^= bytes[i + 2]! << 16;
    if (rest >= 2) h ^= bytes[i + 1]! << 8;
    h ^= bytes[i]!;
    h = Math.imul(h, MURMUR_M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, MURMUR_M);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * `murmurBytes` computed straight from the UTF-16 code units of `str[from, to)`
 * when they are all ASCII (then code units == UTF-8 bytes). Returns -1 as soon as
 * a non-ASCII code unit is seen, so the caller can fall back to UTF-8 encoding.
 */
export function murmurAscii(str: string, from: number, to: number): number {
  const length = to - from;
  let h = (Math.imul(0xdeadbeef, length) ^ length) | 0;
  let i = from;
  const end4 = from + (length & ~3);
  while (i < end4) {
    const c0 = str.charCodeAt(i);
    const c1 = str.charCodeAt(i + 1);
    const c2 = str.charCodeAt(i + 2);
    const c3 = str.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return -1;
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    k = Math.imul(k, MURMUR_M);
    k ^= k >>> 24;
    k = Math.imul(k, MURMUR_M);
    h = Math.imul(h, MURMUR_M) ^ k;
    i += 4;
  }
  const rest = to - i;
  if (rest > 0) {
    const c0 = str.charCodeAt(i);
    const c1 = rest >= 2 ? str.charCodeAt(i + 1) : 0;
    const c2 = rest === 3 ? str.charCodeAt(i + 2) : 0;
    if ((c0 | c1 | c2) >= 0x80) return -1;
    h ^= (c2 << 16) | (c1 << 8) | c0;
    h = Math.imul(h, MURMUR_M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, MURMUR_M);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Low 32 bits of the FNV-64 offset basis 0xcbf29ce484222325. */
const FNV64_INIT_LO = 0x84222325;
/** Low 32 bits of the FNV-64 prime 0x100000001b3. */
const FNV64_PRIME_LO = 0x1b3;

/**
 * twemproxy `hash_fnv1a_64`: despite the name, a 32-bit FNV-1a with the low 32
 * bits of the 64-bit constants. twemproxy reads bytes through a (signed on
 * x86-64/glibc) `char`, so bytes >= 0x80 are sign-extended before the xor; we do
 * the same so non-ASCII keys land where nutcracker puts them.
 */
export function fnv1a64Bytes(bytes: Uint8Array, length: number): number {
  let h = FNV64_INIT_LO | 0;
  for (let i = 0; i < length; i++) {
    const b = bytes[i]!;
    h ^= b >= 0x80 ? b | 0xffffff00 : b;
    h = Math.imul(h, FNV64_PRIME_LO);
  }
  return h >>> 0;
}

/** twemproxy `hash_md5` (and libketama / npm hashring): first 4 md5 bytes, little-endian. */
export function md5Bytes(bytes: Uint8Array, length: number): number {
  const d = createHash('md5').update(bytes.subarray(0, length)).digest();
  return d.readUInt32LE(0);
}

export function byteHash(name: HashName): ByteHash {
  switch (name) {
    case 'murmur':
      return murmurBytes;
    case 'fnv1a_64':
      return fnv1a64Bytes;
    case 'md5':
      return md5Bytes;
    default:
      throw new RangeError(
        `unknown hash ${JSON.stringify(name)}; expected one of ${HASH_NAMES.join(', ')}`,
      );
  }
}

const encoder = new TextEncoder();

/**
 * Reusable UTF-8 scratch buffer. `encode` writes `str[from, to)` and returns the
 * byte length; pure-ASCII input takes a copy loop with no allocation at all.
 */
export class Utf8Scratch {
  buf: Uint8Array;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  encode(str: string, from: number, to: number): number {
    const n = to - from;
    // Worst case UTF-8 expansion is 3 bytes per UTF-16 code unit.
    if (this.buf.length < n * 3) this.buf = new Uint8Array(Math.max(n * 3, this.buf.length * 2));
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      const c = str.charCodeAt(from + i);
      if (c >= 0x80) {
        const part = from === 0 && to === str.length ? str : str.slice(from, to);
        return encoder.encodeInto(part, buf).written;
      }
      buf[i] = c;
    }
    return n;
  }
}

const sharedScratch = new Utf8Scratch();

/** Hash a whole string with the named function (UTF-8 bytes), for tests and tools. */
export function hashString(name: HashName, str: string): number {
  const len = sharedScratch.encode(str, 0, str.length);
  return byteHash(name)(sharedScratch.buf, len);
}
