import { setRouting } from '@dcache/ring';
import { describe, expect, it } from 'vitest';
import { MembershipHolder, seedDoc } from '../src/membership/membership-holder.js';
import { FENCED, Router } from '../src/router.js';

const NODES = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379'];
const X = NODES[1] as string;
const keys = Array.from({ length: 2_000 }, (_, i) => `k:${i}`);

function setup(replicas = 1, warmup = 0) {
  const holder = new MembershipHolder(seedDoc(NODES), { hash: 'murmur' });
  const router = new Router(holder, replicas, warmup);
  const route = (state: 'up' | 'out' | 'rejoining') => {
    const prev = holder.current;
    holder.apply(setRouting(holder.current.doc, X, state, 'p', Date.now()), 'health');
    return prev;
  };
  return { holder, router, route };
}

describe('Router.route(): one routing view per request', () => {
  it('keeps routing on the snapshot it was made on after the ring changes', () => {
    for (const r of [1, 2]) {
      const { router, route } = setup(r);
      const view = router.route();
      const before = keys.map((k) => view.owners(k));
      route('out');
      let changed = 0;
      keys.forEach((k, i) => {
        expect(view.owners(k)).toEqual(before[i]);
        expect(view.primary(k)).toBe(before[i]?.[0]);
        if (router.owners(k).join() !== before[i]?.join()) changed++;
        expect(router.owners(k)).not.toContain(X);
      });
      // The live router moved X's keys while the request's view did not.
      expect(changed).toBeGreaterThan(0);
      expect(router.route().owners(keys[0] as string)).toEqual(router.owners(keys[0] as string));
    }
  });

  it('fences on its own snapshot: a rejoining node fences its keys in a view made after', () => {
    const { router, route } = setup();
    const early = router.route();
    route('rejoining');
    const late = router.route();
    const homes = keys.filter((k) => early.primary(k) === X);
    expect(homes.length).toBeGreaterThan(0);
    for (const k of homes) {
      expect(early.primary(k)).toBe(X);
      expect(late.primary(k)).toBe(FENCED);
      expect(late.previousOwner(k, FENCED)).toBeUndefined();
    }
  });

  it('carries the warm-up view and what is left of the window from its start', () => {
    const { router, route } = setup(1, 60_000);
    expect(router.route().previous).toBeUndefined();
    expect(router.route().warmupRemaining).toBe(0);
    route('out');
    const before = router.view();
    route('up');
    router.changed(before);
    const view = router.route();
    expect(view.previous).toBe(before);
    expect(view.warmupRemaining).toBeGreaterThan(50_000);
    const back = keys.filter((k) => view.primary(k) === X);
    expect(back.length).toBeGreaterThan(0);
    const sources = back.map((k) => before.ring.ownerExcluding(k, before.excluded));
    back.forEach((k, i) => {
      expect(sources[i]).not.toBe(X);
      expect(view.previousOwner(k, X)).toBe(sources[i]);
    });
    expect(view.away).toEqual(new Set());
    // X goes out again: the request's view still routes to X and reads its warm-up sources.
    route('out');
    back.forEach((k, i) => {
      expect(view.primary(k)).toBe(X);
      expect(view.previousOwner(k, X)).toBe(sources[i]);
      expect(router.primary(k)).not.toBe(X);
    });
    expect(router.away).toEqual(new Set([X]));
    expect(view.away).toEqual(new Set());
    expect(view.homeWalk('k:1', 3)).toEqual(router.homeWalk('k:1', 3));
  });
});
