import { setRouting, upsertEntry } from '@dcache/ring';
import { describe, expect, it } from 'vitest';
import { MembershipHolder, seedDoc } from '../src/membership/membership-holder.js';
import { FENCED, Router } from '../src/router.js';

const NODES = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379'];
const X = NODES[1] as string;
const keys = Array.from({ length: 2_000 }, (_, i) => `k:${i}`);

function setup(replicas = 1) {
  const holder = new MembershipHolder(seedDoc(NODES), { hash: 'murmur' });
  const router = new Router(holder, replicas, 0);
  const route = (state: 'up' | 'out' | 'rejoining') => {
    const prev = holder.current;
    holder.apply(setRouting(holder.current.doc, X, state, 'p', Date.now()), 'health');
    return prev;
  };
  return { holder, router, route };
}

describe('Router: one routing view and its fence', () => {
  it('an `out` node is skipped: only its keys move, to the next owner', () => {
    const { router, route, holder } = setup();
    const before = new Map(keys.map((k) => [k, router.primary(k)]));
    route('out');
    expect(holder.current.excluded).toEqual(new Set([X]));
    for (const k of keys) {
      const was = before.get(k);
      if (was === X) expect(router.primary(k)).not.toBe(X);
      else expect(router.primary(k)).toBe(was);
    }
  });

  it('a held view fences exactly the keys it routes differently, until confirmed', () => {
    const { router, route } = setup();
    const owned = keys.filter((k) => router.primary(k) === X);
    const prev = route('out');
    router.hold(prev);
    expect(router.fenceReason()).toBe('unconfirmed');
    for (const k of keys) {
      expect(router.primary(k) === FENCED).toBe(owned.includes(k));
      expect(router.owners(k)[0] === FENCED).toBe(owned.includes(k));
    }
    router.confirm();
    expect(router.fenceReason()).toBeUndefined();
    expect(keys.some((k) => router.primary(k) === FENCED)).toBe(false);
  });

  it('a rejoining node fences its keys everywhere (with R=2: every key it is an owner of)', () => {
    for (const r of [1, 2]) {
      const { router, route } = setup(r);
      const homes = new Map(keys.map((k) => [k, router.owners(k)]));
      route('rejoining');
      for (const k of keys) {
        const fenced = router.owners(k)[0] === FENCED;
        expect(fenced, `${k} with R=${r}`).toBe(homes.get(k)?.includes(X));
      }
      route('up');
      for (const k of keys) expect(router.owners(k)).toEqual(homes.get(k));
    }
  });

  it('a lapsed lease fences every key; a fresh one none', () => {
    const { router } = setup();
    router.setLease(performance.now() - 1);
    expect(router.fenceReason()).toBe('lease');
    expect(keys.every((k) => router.primary(k) === FENCED)).toBe(true);
    router.setLease(performance.now() + 60_000);
    expect(keys.some((k) => router.primary(k) === FENCED)).toBe(false);
    router.setLease(Number.POSITIVE_INFINITY);
    expect(router.fenceReason()).toBeUndefined();
  });

  it('a draining node is away: the walk from its keys passes it (writes journal for it)', () => {
    const { holder, router } = setup();
    holder.apply(
      upsertEntry(holder.current.doc, { id: X, state: 'draining' }, 'p', Date.now()),
      'admin',
    );
    expect(router.away).toEqual(new Set([X]));
    const k = keys.find((key) => router.homeWalk(key, 1)[0] === X) as string;
    expect(router.primary(k)).not.toBe(X);
    expect(router.homeWalk(k, 2)).toEqual([X, router.primary(k)]);
  });
});
