import type { Plan } from '@dcache/cli';
import { DcacheClient, type RingView } from '@dcache/client';
import { cleanupAll, type RedisServer, startRedis } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dcache, json, type ProxyFixture, plain, startProxy, TOKEN } from './helpers.js';

afterAll(cleanupAll);

/** Owner of every key as the proxy reports it (GET /api/v1/ring/owner/{key}). */
async function owners(client: DcacheClient, keys: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < keys.length; i += 200) {
    const chunk = keys.slice(i, i + 200);
    const got = await Promise.all(chunk.map((k) => client.owner(k)));
    for (const o of got) out.set(o.key, o.node as string);
  }
  return out;
}

function moved(a: Map<string, string>, b: Map<string, string>): string[] {
  return [...a.keys()].filter((k) => a.get(k) !== b.get(k));
}

describe('dcache ring: plan predicts exactly what add/remove move; admin commands', () => {
  let px: ProxyFixture;
  let client: DcacheClient;
  let extra: RedisServer;
  const keys = Array.from({ length: 1_000 }, (_, i) => `user:${i}`);

  beforeAll(async () => {
    px = await startProxy(3);
    extra = await startRedis();
    client = new DcacheClient({ url: px.url, token: TOKEN });
    await client.batchSet(Object.fromEntries(keys.map((k) => [k, { value: k }])));
  });
  afterAll(async () => {
    await client?.close();
    await px?.stop();
    await extra?.close();
  });

  it('ring plan add: shares and moves; then ring add moves exactly the keys the plan said', async () => {
    const ringBefore = await client.ring();
    const [h, j] = await Promise.all([
      px.cli(['ring', 'plan', 'add', extra.address, '--sample', '5000']),
      px.cli(['--json', 'ring', 'plan', 'add', extra.address, '--sample', '5000']),
    ]);
    expect(j.code).toBe(0);
    const plan = json<Plan>(j);
    expect(plan.change).toEqual({
      op: 'add',
      id: extra.address,
      address: extra.address,
      weight: 1,
    });
    expect(plan).toMatchObject({
      ring_version: ringBefore.version,
      nodes_before: 3,
      nodes_after: 4,
    });
    expect(plan.synthetic.keys).toBe(100_000);
    // Adding one node to 3 moves about 1/4 of the keys, all of them to the new node.
    expect(plan.ideal_fraction).toBeGreaterThan(0.15);
    expect(plan.ideal_fraction).toBeLessThan(0.35);
    expect(Math.abs(plan.synthetic.fraction - plan.ideal_fraction)).toBeLessThan(0.01);
    const newRow = plan.nodes.find((n) => n.id === extra.address);
    expect(newRow).toMatchObject({
      weight_before: null,
      weight_after: 1,
      moved_out: 0,
      share_before: 0,
    });
    expect(newRow?.moved_in).toBe(plan.synthetic.moved);
    expect(plan.nodes.reduce((a, n) => a + n.keys_after, 0)).toBe(100_000);
    expect(plan.nodes.reduce((a, n) => a + n.share_after, 0)).toBeCloseTo(1, 6);
    for (const n of plan.nodes.filter((x) => x.id !== extra.address)) {
      expect(n.moved_in).toBe(0);
      const live = ringBefore.nodes.find((x) => x.id === n.id);
      expect(n.share_before).toBeCloseTo(live?.share ?? -1, 9);
    }
    expect(plan.sample).toMatchObject({ keys: 1_000 });

    // Human form: the same figures.
    expect(h.code).toBe(0);
    const out = plain(h.stdout);
    expect(out).toContain(
      `plan: add ${extra.address} (weight 1) on ring v${ringBefore.version}: 3 → 4 nodes, hash murmur\ndry run: nothing was changed\n`,
    );
    expect(out).toMatch(
      /^NODE\s+WEIGHT\s+SHARE BEFORE\s+SHARE AFTER\s+KEYS BEFORE\s+KEYS AFTER\s+MOVED OUT\s+MOVED IN$/m,
    );
    expect(out).toMatch(
      new RegExp(`^${extra.address.replace(/\./g, '\\.')}\\s+- → 1\\s+0\\.00%`, 'm'),
    );
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    expect(out).toContain(
      `synthetic keys: ${plan.synthetic.moved.toLocaleString('en-US')} of 100,000 move (${pct(plan.synthetic.fraction)}); ideal ${pct(plan.ideal_fraction)} (the new node's share)`,
    );
    const sample = plan.sample;
    if (!sample) throw new Error('no sample in the plan');
    expect(out).toContain(
      `sample of real keys: ${sample.moved.toLocaleString('en-US')} of 1,000 move (${pct(sample.fraction)})`,
    );
    // A dry run: the ring did not change.
    expect((await client.ring()).version).toBe(ringBefore.version);

    const before = await owners(client, keys);
    const add = await px.cli(['ring', 'add', extra.address]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout.split('\n')[0]).toMatch(
      new RegExp(`^added ${extra.address} \\(weight 1\\): ring is now v\\d+$`),
    );
    expect(plain(add.stdout)).toMatch(
      new RegExp(`^${extra.address}\\s+${extra.address}\\s+1\\s+active\\s+yes`, 'm'),
    );
    const after = await owners(client, keys);
    const changed = moved(before, after);
    expect(changed.length).toBe(sample.moved);
    for (const k of changed) expect(after.get(k)).toBe(extra.address);

    // Real placement: a key the ring now gives the new node is written to that redis-server.
    const fresh = Array.from({ length: 200 }, (_, i) => `fresh:${i}`);
    await client.batchSet(Object.fromEntries(fresh.map((k) => [k, { value: 1 }])));
    const freshOwners = await owners(client, fresh);
    const onNew = fresh.filter((k) => freshOwners.get(k) === extra.address);
    expect(onNew.length).toBeGreaterThan(10);
    for (const k of onNew.slice(0, 20)) expect(await extra.command('EXISTS', k)).toBe(1);
  });

  it('ring plan remove predicts ring remove (both forms); a removed node exits 3', async () => {
    const j = await px.cli([
      '--json',
      'ring',
      'plan',
      'remove',
      extra.address,
      '--sample',
      '5000',
      '--keys',
      '20000',
    ]);
    expect(j.code).toBe(0);
    const plan = json<Plan>(j);
    expect(plan.change).toMatchObject({ op: 'remove', id: extra.address, in_ring: true });
    expect(plan).toMatchObject({ nodes_before: 4, nodes_after: 3 });
    expect(plan.synthetic.keys).toBe(20_000);
    expect(Math.abs(plan.synthetic.fraction - plan.ideal_fraction)).toBeLessThan(0.015);
    // The cluster holds the user:* keys and the fresh:* keys written after the add.
    const fresh = Array.from({ length: 200 }, (_, i) => `fresh:${i}`);
    const all = [...keys, ...fresh];
    const before = await owners(client, all);
    const onExtra = all.filter((k) => before.get(k) === extra.address).sort();
    expect(plan.sample).toEqual({
      keys: all.length,
      moved: onExtra.length,
      fraction: onExtra.length / all.length,
    });

    const rm = await px.cli(['--json', 'ring', 'remove', extra.address]);
    expect(rm.code).toBe(0);
    const view = json<RingView>(rm);
    expect(view.nodes.map((n) => n.id)).not.toContain(extra.address);
    const after = await owners(client, all);
    expect(moved(before, after).sort()).toEqual(onExtra);

    const [again, plan2] = await Promise.all([
      px.cli(['ring', 'remove', extra.address]),
      px.cli(['ring', 'plan', 'remove', extra.address]),
    ]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/^error NODE_NOT_FOUND: /);
    expect(plan2.code).toBe(3);
    expect(plan2.stderr).toMatch(/^error NODE_NOT_FOUND: /);
  });

  it('drain, activate and weight in both forms; a draining node plans no moves', async () => {
    const add = await px.cli(['--json', 'ring', 'add', extra.address, '--weight', '2']);
    expect(add.code).toBe(0);
    expect(json<RingView>(add).nodes.find((n) => n.id === extra.address)).toMatchObject({
      weight: 2,
      state: 'active',
    });

    const drain = await px.cli(['ring', 'drain', extra.address]);
    expect(drain.code).toBe(0);
    expect(drain.stdout.split('\n')[0]).toMatch(
      new RegExp(`^draining ${extra.address}: ring is now v\\d+$`),
    );
    expect(plain(drain.stdout)).toMatch(
      new RegExp(`^${extra.address}\\s+\\S+\\s+2\\s+draining\\s+yes\\s+0\\.00%$`, 'm'),
    );
    expect(drain.stdout).toMatch(/nodes 3 active, 1 other/);

    const [p, ph] = await Promise.all([
      px.cli(['--json', 'ring', 'plan', 'remove', extra.address, '--keys', '5000']),
      px.cli(['ring', 'plan', 'remove', extra.address, '--keys', '5000']),
    ]);
    expect(json<Plan>(p)).toMatchObject({
      change: { in_ring: false },
      nodes_before: 3,
      nodes_after: 3,
      synthetic: { moved: 0 },
    });
    expect(ph.stdout).toContain('not in the ring: nothing moves');

    const act = await px.cli(['--json', 'ring', 'activate', extra.address]);
    expect(json<RingView>(act).nodes.find((n) => n.id === extra.address)?.state).toBe('active');
    // The other form of each: drain --json, activate (human), weight --json.
    const drainJson = await px.cli(['--json', 'ring', 'drain', extra.address]);
    expect(drainJson.code).toBe(0);
    expect(json<RingView>(drainJson).nodes.find((n) => n.id === extra.address)).toMatchObject({
      state: 'draining',
      share: 0,
    });
    const actHuman = await px.cli(['ring', 'activate', extra.address]);
    expect(actHuman.code).toBe(0);
    expect(actHuman.stdout.split('\n')[0]).toMatch(
      new RegExp(`^activated ${extra.address}: ring is now v\\d+$`),
    );
    const wJson = await px.cli(['--json', 'ring', 'weight', extra.address, '4']);
    expect(json<RingView>(wJson).nodes.find((n) => n.id === extra.address)?.weight).toBe(4);
    const w = await px.cli(['ring', 'weight', extra.address, '3']);
    expect(w.code).toBe(0);
    expect(w.stdout.split('\n')[0]).toMatch(
      new RegExp(`^${extra.address} weight 3: ring is now v\\d+$`),
    );
    expect((await client.ring()).nodes.find((n) => n.id === extra.address)?.weight).toBe(3);
    const rm = await px.cli(['ring', 'remove', extra.address]);
    expect(rm.stdout.split('\n')[0]).toMatch(
      new RegExp(`^removed ${extra.address}: ring is now v\\d+$`),
    );
  });

  it('refusals: NODE_EXISTS exit 1, unknown node exit 3, no token exit 1, bad address exit 2', async () => {
    const present = px.cluster.addresses[0] as string;
    const [exists, unknown, anon, bad, planExists] = await Promise.all([
      px.cli(['ring', 'add', present]),
      px.cli(['ring', 'drain', '10.1.2.3:6379']),
      dcache(['--url', px.url, 'ring', 'add', extra.address]),
      px.cli(['ring', 'add', 'not-an-address']),
      px.cli(['ring', 'plan', 'add', present]),
    ]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toMatch(/^error NODE_EXISTS: .+\n$/);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^error NODE_NOT_FOUND: .+\n$/);
    expect(anon.code).toBe(1);
    expect(anon.stderr).toMatch(/^error UNAUTHORIZED: .*\(pass --token or set DCACHE_TOKEN\)\n$/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error INVALID_ADDRESS: .+\n$/);
    expect(planExists.code).toBe(1);
    expect(planExists.stderr).toMatch(/^error NODE_EXISTS: /);
    expect((await client.ring()).nodes).toHaveLength(3);
  });
});
