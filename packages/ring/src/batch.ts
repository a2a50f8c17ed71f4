import type { Ring } from './ring.js';

/** Group key under which `planBatch` puts keys that have no eligible owner. */
export const NO_OWNER = '';

/**
 * Split positions by owner: node id -> the positions it owns, in the order given (ascending for
 * a count). `positions` is a count n (positions 0..n-1) or an explicit list; `ownerOf` answers
 * undefined for a position with no owner, which goes under `NO_OWNER`. Every position lands in
 * exactly one group.
 */
export function groupByOwner(
  positions: number | readonly number[],
  ownerOf: (i: number) => string | undefined,
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const n = typeof positions === 'number' ? positions : positions.length;
  // Consecutive positions often share an owner only by chance: remember the last group anyway,
  // it saves a Map lookup whenever they do (always with one node).
  let lastOwner: string | undefined;
  let last: number[] | undefined;
  for (let j = 0; j < n; j++) {
    const i = typeof positions === 'number' ? j : (positions[j] as number);
    const owner = ownerOf(i) ?? NO_OWNER;
    if (owner === lastOwner && last) {
      last.push(i);
      continue;
    }
    let list = out.get(owner);
    if (list) list.push(i);
    else {
      list = [i];
      out.set(owner, list);
    }
    lastOwner = owner;
    last = list;
  }
  return out;
}

/**
 * Split a key list by owner: node id -> original indices (ascending). Keys whose
 * every candidate is excluded go under `''`. Duplicate keys appear once per index.
 */
export function planBatch(
  keys: readonly string[],
  ring: Ring,
  exclude?: ReadonlySet<string>,
): Map<string, number[]> {
  const ex = exclude && exclude.size > 0 ? exclude : undefined;
  if (ring.pointCount === 0) return groupByOwner(keys.length, () => undefined);
  return groupByOwner(keys.length, (i) => {
    const key = keys[i] as string;
    return ex ? ring.ownerExcluding(key, ex) : ring.owner(key);
  });
}
