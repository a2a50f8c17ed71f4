import { setRouting } from '@dcache/ring';
import { describe, expect, it } from 'vitest';
import { MembershipHolder, seedDoc } from '../../src/membership/membership-holder.js';
import { FENCED, Router } from '../../src/router.js';

const NODES = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379', '10.0.0.4:6379'];
const X = NODES[1] as string;
const Y = NODES[2] as string;
const keys = Array.from({ length: 3_000 }, (_, i) => `k:${i}`);

describe('the rejoin fence with another node still out', () => {
  it('fences exactly the keys whose owners change when the rejoining node serves again', () => {
    for (const r of [1, 2]) {
      const holder = new MembershipHolder(seedDoc(NODES), { hash: 'murmur' });
      const router = new Router(holder, r, 0);
      const set = (id: string, state: 'up' | 'out' | 'rejoining') =>
        holder.apply(setRouting(holder.current.doc, id, state, 'p', Date.now()), 'health');
      set(X, 'out');
      set(Y, 'out');
      const whileOut = new Map(keys.map((k) => [k, router.owners(k).join()]));
      set(Y, 'rejoining');
      const fenced = keys.filter((k) => router.owners(k)[0] === FENCED);
      set(Y, 'up');
      const moved = keys.filter((k) => router.owners(k).join() !== whileOut.get(k));
      expect(fenced, `R=${r}`).toEqual(moved);
      // Among them, keys whose home is X (still out): the case the home-only rule missed.
      const homeX = moved.filter((k) => holder.current.ring.owner(k) === X);
      expect(homeX.length, `R=${r}: keys of X that Y takes while X is out`).toBeGreaterThan(0);
    }
  });
});
