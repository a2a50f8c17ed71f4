/**
 * DC_CACHE_ADDRESSES_AUTHORITATIVE with real peered proxy processes (each with its state file):
 * at start the ring becomes exactly DC_CACHE_ADDRESSES, overriding the state file and what the
 * peer holds, and the peer receives it as an admin change.
 */
import { rmSync } from 'node:fs';
import {
  CI_SAFE_ENV,
  type ClusterProxy,
  cleanupAll,
  type ProxyCluster,
  type RedisCluster,
  startProxyCluster,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ADMIN = 'adm-authoritative-test-token';
const WAIT = { timeout: 60_000, interval: 100 };

let redis: RedisCluster;
let cluster: ProxyCluster;

interface RingNode {
  id: string;
  address: string;
  state: string;
  version: number;
}

async function ring(p: ClusterProxy): Promise<{ nodes: RingNode[] }> {
  const r = await fetch(`${p.url}/api/v1/ring`, { signal: AbortSignal.timeout(30_000) });
  return (await r.json()) as { nodes: RingNode[] };
}

/** Membership entries as "id state version" (routing registers left out: health moves them). */
async function entries(p: ClusterProxy): Promise<string> {
  return (await ring(p)).nodes
    .map((n) => `${n.id} ${n.state} ${n.version}`)
    .sort()
    .join(', ');
}

/** Live nodes as "address state", sorted. */
async function live(p: ClusterProxy): Promise<string[]> {
  return (await ring(p)).nodes
    .filter((n) => n.state !== 'removed')
    .map((n) => `${n.address} ${n.state}`)
    .sort();
}

async function admin(p: ClusterProxy, method: string, path: string, body?: unknown) {
  const r = await fetch(`${p.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  await r.arrayBuffer();
  return r.status;
}

async function bothHold(a: ClusterProxy, b: ClusterProxy, want: string[], what: string) {
  for (const p of [a, b]) {
    await waitFor(async () => JSON.stringify(await live(p)) === JSON.stringify(want), {
      ...WAIT,
      message: `${p.name} to hold ${what}: ${want.join(', ')}`,
    });
  }
}

beforeAll(async () => {
  redis = await startRedisCluster(3);
  cluster = await startProxyCluster({
    proxies: 2,
    addresses: redis.addresses.slice(0, 2),
    env: { ...CI_SAFE_ENV, DC_ADMIN_TOKEN: ADMIN },
  });
}, 90_000);

afterAll(async () => {
  await cluster?.close();
  await cleanupAll();
});

describe('DC_CACHE_ADDRESSES_AUTHORITATIVE (real proxy processes with state files)', () => {
  it('a restart makes the ring exactly the list, over the state file and the peer, and the peer follows', async () => {
    const [a, b] = cluster.proxies as [ClusterProxy, ClusterProxy];
    const [r1, r2, r3] = redis.addresses as [string, string, string];

    // An admin change the list does not have: r3 added (both state files now hold it).
    expect(await admin(a, 'POST', '/api/v1/ring/nodes', { address: r3 })).toBe(201);
    await bothHold(a, b, [`${r1} active`, `${r2} active`, `${r3} active`].sort(), 'the admin add');

    // Without the setting, a restart keeps it (DC_CACHE_ADDRESSES only seeds).
    await a.restart();
    expect(await live(a)).toEqual([`${r1} active`, `${r2} active`, `${r3} active`].sort());

    // With it: the admin add is undone at start, and B (which held r3 too) follows.
    a.env.DC_CACHE_ADDRESSES_AUTHORITATIVE = 'true';
    await a.restart();
    await bothHold(a, b, [`${r1} active`, `${r2} active`].sort(), 'exactly DC_CACHE_ADDRESSES');
    expect(a.output()).toContain('made the ring exactly DC_CACHE_ADDRESSES');
    expect(a.output()).toContain(`removed ${r3}`);

    // A list that grew, while a listed node was set draining by an admin on B: the restart adds
    // the new node and makes the draining one active again; B follows.
    expect(
      await admin(b, 'PATCH', `/api/v1/ring/nodes/${encodeURIComponent(r2)}`, {
        state: 'draining',
      }),
    ).toBe(200);
    await bothHold(a, b, [`${r1} active`, `${r2} draining`].sort(), 'the drain');
    a.env.DC_CACHE_ADDRESSES = [r1, r2, r3].join(',');
    await a.restart();
    await bothHold(a, b, [`${r1} active`, `${r2} active`, `${r3} active`].sort(), 'the grown list');
    expect(a.output()).toContain(`added ${r3}`);
    expect(a.output()).toContain(`activated ${r2}`);

    // The same list again: nothing to change, no admin change made (entry versions unchanged).
    const before = await entries(b);
    const logged = a.output().split('made the ring exactly').length;
    await a.restart();
    await waitFor(async () => (await entries(a)) === before, {
      ...WAIT,
      message: 'A to hold the same entries after a restart with the same list',
    });
    expect(a.output().split('made the ring exactly').length).toBe(logged);
    expect(await entries(b)).toBe(before);
  });

  it("a proxy that starts from its seed list (peer unreachable, no state file) applies the list again after it adopts the peer's ring", async () => {
    const [a, b] = cluster.proxies as [ClusterProxy, ClusterProxy];
    const [r1, r2, r3] = redis.addresses as [string, string, string];
    await bothHold(
      a,
      b,
      [`${r1} active`, `${r2} active`, `${r3} active`].sort(),
      'the ring of the first test',
    );
    const removals = () => a.output().split(`removed ${r3}`).length;
    const before = removals();

    // B is unreachable (paused) while A starts without its state file: A starts seeded from
    // [r1, r2], which is already the list, so nothing to change yet.
    a.env.DC_CACHE_ADDRESSES = [r1, r2].join(',');
    await a.stop();
    rmSync(a.env.DC_CLUSTER_STATE_FILE as string, { force: true });
    b.pause();
    try {
      await a.restart();
    } finally {
      b.resume();
    }
    expect(a.output()).toContain('no peer knows the ring better');
    // B answers again: A adopts B's ring (r3 back) whole, then applies the list once more.
    await bothHold(
      a,
      b,
      [`${r1} active`, `${r2} active`].sort(),
      'exactly the list after the merge',
    );
    expect(removals()).toBe(before + 1);
  });
});
