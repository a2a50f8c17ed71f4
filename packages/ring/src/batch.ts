import type { Ring } from './ring.js';

/** Group key under which `planBatch` puts keys that have no eligible owner. */
export const NO_OWNER = '';

/**
 * Split a key list by owner: node id -> original indices (ascending). Keys whose
 * every candidate is excluded go under `''`. Duplicate keys appear once per index.
 */
export function planBatch(
  keys: readonly string[],
  ring: Ring,
  exclude?: ReadonlySet<string>,
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const ex = exclude && exclude.size > 0 ? exclude : undefined;
  const empty = ring.pointCount === 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const owner = empty ? undefined : ex ? ring.ownerExcluding(key, ex) : ring.owner(key);
    const group = owner ?? NO_OWNER;
    const list = out.get(group);
    if (list) list.push(i);
    else out.set(group, [i]);
  }
  return out;
}
