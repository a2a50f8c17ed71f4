/** Keys, values and request specs shared by the cases. */
import type { RequestSpec } from '../lib/load-spec.js';

/** A 98-character string: its stored JSON text (with quotes) is exactly 100 bytes. */
export const VALUE = 'v'.repeat(40) + 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2).slice(0, 58);
/** The stored text of VALUE. */
export const VALUE_JSON = JSON.stringify(VALUE);

/** `n` keys `<prefix>:<i>` (six digits). */
export function keys(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}:${String(i).padStart(6, '0')}`);
}

/** GET /api/v1/cache/<key> over the keys, in turn. */
export function getSpec(ks: readonly string[]): RequestSpec {
  return { method: 'GET', paths: ks.map((k) => `/api/v1/cache/${encodeURIComponent(k)}`) };
}

/** PUT /api/v1/cache/<key> {"value": VALUE} over the keys, in turn. */
export function putSpec(ks: readonly string[]): RequestSpec {
  return {
    method: 'PUT',
    paths: ks.map((k) => `/api/v1/cache/${encodeURIComponent(k)}`),
    bodies: [JSON.stringify({ value: VALUE })],
  };
}

/** Deterministic pseudo-random numbers in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `count` POST /api/v1/cache/batch/get bodies of `size` distinct keys drawn from `ks`. */
export function batchGetSpec(ks: readonly string[], size: number, count: number): RequestSpec {
  const r = rng(size * 7919 + count);
  const bodies: string[] = [];
  for (let b = 0; b < count; b++) {
    const pick = new Set<string>();
    while (pick.size < Math.min(size, ks.length)) pick.add(ks[Math.floor(r() * ks.length)]!);
    bodies.push(JSON.stringify({ keys: [...pick] }));
  }
  return { method: 'POST', paths: ['/api/v1/cache/batch/get'], bodies };
}
