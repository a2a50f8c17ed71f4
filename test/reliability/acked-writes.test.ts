import { Ring } from '@dcache/ring';
import { cleanupAll, freePort, sleep, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_TOKEN,
  call,
  FAST_HEALTH,
  nodeServing,
  type ProxyProcess,
  report,
  SOAK,
  startProxy,
} from './harness.js';
import { LoadClient, type Outcome } from './http-load.js';

/** Seconds of mixed load: 60 in the long form, ~15 in CI. */
const LOAD_S = SOAK ? 60 : 15;
const WORKERS = 16;
const KEYS_PER_WORKER = 40;

/** What the client last had acknowledged for one key. */
interface Known {
  /** JSON text of the value, or undefined when the key was acknowledged absent (deleted). */
  value: string | undefined;
  /** When an acknowledged TTL runs out (performance.now() ms), Infinity without one. */
  expiresAt: number;
  /** A write or delete whose outcome is unknown (no complete answer) came after the last ack. */
  uncertain: boolean;
}

type Phase = 'steady' | 'redis-down' | 'redis-back' | 'proxy-down' | 'proxy-back' | 'after';

/** The state a read may legitimately see for `k` at time `now`: 'present', 'absent' or 'either'. */
function allowed(k: Known, now: number): 'present' | 'absent' | 'either' {
  if (k.uncertain) return 'either';
  if (k.value === undefined) return 'absent';
  if (now >= k.expiresAt - 200) return now >= k.expiresAt + 1_000 ? 'absent' : 'either';
  return 'present';
}

describe('acknowledged writes are never lost on healthy nodes', () => {
  afterAll(async () => {
    await cleanupAll();
  });

  it(`${LOAD_S}s of PUT/GET/DEL/batch on two peered proxies while a Redis node is SIGKILLed and restarted and a proxy is SIGTERMed and restarted`, async () => {
    const redis = await startRedisCluster(3);
    const [portA, portB] = [await freePort(), await freePort()];
    const urlA = `http://127.0.0.1:${portA}`;
    const urlB = `http://127.0.0.1:${portB}`;
    const envFor = (self: string, peer: string): Record<string, string> => ({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_CLUSTER_TOKEN: CLUSTER_TOKEN,
      DC_CLUSTER_PEERS: peer,
      DC_CLUSTER_ADVERTISE_URL: self,
      DC_CLUSTER_SYNC_INTERVAL: '300ms',
      DC_SERVER_SHUTDOWN_TIMEOUT: '5s',
      ...FAST_HEALTH,
    });
    const proxyA = await startProxy(envFor(urlA, urlB), { port: portA });
    let proxyB: ProxyProcess = await startProxy(envFor(urlB, urlA), { port: portB });
    const clients = [
      new LoadClient('127.0.0.1', portA, 32),
      new LoadClient('127.0.0.1', portB, 32),
    ];

    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const victim = redis.nodes[0]!;
    const known = new Map<string, Known>();
    const perPhase = new Map<
      Phase,
      { requests: number; failed: number; byKind: Record<string, number> }
    >();
    let phase: Phase = 'steady';
    const staleReads: string[] = [];
    let stop = false;

    let lastRefused = false;
    const record = (o: Outcome) => {
      lastRefused = o.error === 'ECONNREFUSED';
      const p = perPhase.get(phase) ?? { requests: 0, failed: 0, byKind: {} };
      perPhase.set(phase, p);
      p.requests++;
      if (o.status === 0 || o.status >= 500) {
        p.failed++;
        const kind = o.status ? String(o.status) : (o.error ?? 'error');
        p.byKind[kind] = (p.byKind[kind] ?? 0) + 1;
      }
    };
    // A failed write or delete leaves the key uncertain, unless the request never reached a proxy.
    const unknownOutcome = (o: Outcome) => o.status === 0 && o.error !== 'ECONNREFUSED';
    const ack = (key: string, value: string | undefined, ttlMs: number) => {
      known.set(key, {
        value,
        expiresAt: ttlMs > 0 ? performance.now() + ttlMs : Number.POSITIVE_INFINITY,
        uncertain: false,
      });
    };
    const taint = (key: string) => {
      const k = known.get(key) ?? {
        value: undefined,
        expiresAt: Number.POSITIVE_INFINITY,
        uncertain: true,
      };
      known.set(key, { ...k, uncertain: true });
    };

    const worker = async (w: number) => {
      let seq = 0;
      const own = (j: number) => `ack:${w}:${j % KEYS_PER_WORKER}`;
      while (!stop) {
        seq++;
        const client = clients[(w + seq) % 2]!;
        const key = own(seq * 7 + w);
        const r = (seq * 2_654_435_761 + w) % 100;
        if (r < 40) {
          const ttl = r < 8 ? 3_000 : 0;
          const value = JSON.stringify({ w, seq });
          const body: Record<string, unknown> = { value: { w, seq } };
          if (ttl) body.ttl = `${ttl}ms`;
          const o = await client.send('PUT', `/api/v1/cache/${key}`, body, 5_000);
          record(o);
          if (o.status === 200) ack(key, value, ttl);
          else if (unknownOutcome(o) || o.status >= 500) taint(key);
        } else if (r < 70) {
          const k = known.get(key);
          const now = performance.now();
          const o = await client.send('GET', `/api/v1/cache/${key}`, undefined, 5_000);
          record(o);
          // Read-your-writes, for keys on nodes that never failed.
          if (k && ring.owner(key) !== victim.address && (o.status === 200 || o.status === 404)) {
            const want = allowed(k, now);
            const got = o.status === 404 ? undefined : JSON.stringify(JSON.parse(o.body).value);
            if (
              (want === 'present' && got !== k.value) ||
              (want === 'absent' && got !== undefined)
            ) {
              staleReads.push(`${key}: want ${want} ${k.value} got ${got} (${phase})`);
            }
          }
        } else if (r < 80) {
          const o = await client.send('DELETE', `/api/v1/cache/${key}`, undefined, 5_000);
          record(o);
          if (o.status === 200 || o.status === 404) ack(key, undefined, 0);
          else if (unknownOutcome(o) || o.status >= 500) taint(key);
        } else if (r < 90) {
          const ks = [...new Set([key, own(seq + 1), own(seq + 3), own(seq + 11)])];
          const items = Object.fromEntries(ks.map((k) => [k, { value: { w, seq, k } }]));
          const o = await client.send('POST', '/api/v1/cache/batch', { items }, 5_000);
          record(o);
          if (o.status === 200 || o.status === 207) {
            const failed = JSON.parse(o.body).failed as Record<string, string>;
            for (const k of ks) {
              if (failed[k]) taint(k);
              else ack(k, JSON.stringify({ w, seq, k }), 0);
            }
          } else if (unknownOutcome(o) || o.status >= 500) for (const k of ks) taint(k);
        } else {
          const ks = [...new Set([key, own(seq + 5)])];
          const o = await client.send('DELETE', '/api/v1/cache/batch', { keys: ks }, 5_000);
          record(o);
          if (o.status === 200 || o.status === 207) {
            const failed = JSON.parse(o.body).failed as Record<string, string>;
            for (const k of ks) {
              if (failed[k]) taint(k);
              else ack(k, undefined, 0);
            }
          } else if (unknownOutcome(o) || o.status >= 500) for (const k of ks) taint(k);
        }
        // A refused connection (the proxy is down): do not spin.
        if (lastRefused) await sleep(2);
      }
    };

    const t0 = performance.now();
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    const hold = (ms: number) => sleep(ms);
    const slot = (LOAD_S * 1_000) / 6;
    const marks: Record<string, number> = {};
    const mark = (m: string) => {
      marks[m] = Math.round(performance.now() - t0);
    };
    try {
      await hold(slot);
      phase = 'redis-down';
      mark('redis_kill');
      await victim.kill();
      await waitFor(async () => !(await nodeServing(urlA, victim.address)), {
        timeout: 15_000,
        interval: 20,
        message: 'proxy A to eject the killed node',
      });
      mark('redis_ejected');
      await hold(slot);
      phase = 'redis-back';
      await victim.restart();
      mark('redis_restarted');
      await waitFor(
        async () =>
          (await nodeServing(urlA, victim.address)) && (await nodeServing(urlB, victim.address)),
        { timeout: 15_000, interval: 20, message: 'both proxies to re-add the node' },
      );
      mark('redis_readded');
      await hold(slot);
      phase = 'proxy-down';
      mark('proxy_sigterm');
      proxyB.proc.signal('SIGTERM');
      const code = await Promise.race([proxyB.proc.exited, sleep(15_000).then(() => 'timeout')]);
      expect(code).toBe(0);
      mark('proxy_exited');
      await hold(slot / 2);
      proxyB = await startProxy(envFor(urlB, urlA), { port: portB });
      phase = 'proxy-back';
      mark('proxy_restarted');
      await hold(slot / 2);
      phase = 'after';
      await hold(Math.max(slot, LOAD_S * 1_000 - (performance.now() - t0)));
    } finally {
      stop = true;
      await load;
    }
    mark('load_end');

    // Verify through both proxies: every acknowledged write on a node that never failed.
    let checked = 0;
    let lost = 0;
    let resurrected = 0;
    let skippedVictim = 0;
    let skippedUncertain = 0;
    const lostKeys: string[] = [];
    for (const [key, k] of known) {
      if (ring.owner(key) === victim.address) {
        skippedVictim++;
        continue;
      }
      if (k.uncertain) {
        skippedUncertain++;
        continue;
      }
      for (const url of [urlA, urlB]) {
        const now = performance.now();
        const g = await call(url, 'GET', `/api/v1/cache/${encodeURIComponent(key)}`);
        const got = g.status === 404 ? undefined : JSON.stringify(g.body.value);
        const want = allowed(k, now);
        checked++;
        if (want === 'present' && got !== k.value) {
          lost++;
          lostKeys.push(`${url} ${key}: ${g.status} ${got} want ${k.value}`);
        }
        if (want === 'absent' && got !== undefined) {
          resurrected++;
          lostKeys.push(`${url} ${key}: resurrected ${got}`);
        }
      }
    }
    // The two proxies converged on one ring (peer sync, or the same seed).
    const ringA = (await call(urlA, 'GET', '/api/v1/ring')).body;
    const ringB = (await call(urlB, 'GET', '/api/v1/ring')).body;
    expect(ringB.checksum).toBe(ringA.checksum);
    for (const c of clients) c.close();
    await proxyB.proc.stop();
    await proxyA.proc.stop();

    const phases = Object.fromEntries(perPhase);
    report('acked-writes', {
      load_s: LOAD_S,
      workers: WORKERS,
      keys: known.size,
      phases,
      marks_ms: marks,
      verified_reads: checked,
      skipped_victim_keys: skippedVictim,
      skipped_uncertain_keys: skippedUncertain,
      lost_acknowledged_writes: lost,
      resurrected_deletes: resurrected,
      stale_reads_during_load: staleReads.length,
      peer_sync: ringA.peer_sync,
      peers_of_a: (ringA.peers as { url?: string; state?: string }[]).map((p) =>
        `${p.url} ${p.state ?? ''}`.trim(),
      ),
    });
    if (lostKeys.length) console.log(lostKeys.slice(0, 20).join('\n'));
    if (staleReads.length) console.log(staleReads.slice(0, 20).join('\n'));
    expect(checked).toBeGreaterThan(500);
    expect(lost).toBe(0);
    expect(resurrected).toBe(0);
    expect(staleReads).toEqual([]);
    // Healthy nodes and a live proxy: the only failures are the killed node's keys before
    // ejection and requests to the proxy that was stopped.
    expect(perPhase.get('steady')?.failed ?? 0).toBe(0);
    expect(perPhase.get('after')?.failed ?? 0).toBe(0);
  });
});
