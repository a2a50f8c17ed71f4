/**
 * Case 1: GET and PUT of a 100-byte value through dcache, the minimal node:http + ioredis server
 * and webdis, all in front of the same single Redis. Runs are interleaved (dcache, minimal,
 * webdis, then again) so drift in the machine's load hits every server alike.
 */
import { startRedis } from '@dcache/test-utils';
import { type Measured, runLoad } from '../lib/load.js';
import type { RequestSpec } from '../lib/load-spec.js';
import {
  pinRedis,
  type Server,
  seed,
  startFastifyBaseline,
  startMinimal,
  startProxy,
  startWebdis,
} from '../lib/procs.js';
import { median, ratio } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, type Row, rowOf } from '../lib/types.js';
import { getSpec, keys, putSpec, VALUE, VALUE_JSON } from './data.js';

const N_KEYS = 1_000;

/** Run case 1. */
export async function singleKey(ctx: BenchContext): Promise<CaseResult> {
  const redis = await startRedis();
  pinRedis([redis]);
  const servers: Server[] = [];
  // The bare-Fastify reference is left out of quick runs (it has no target) to keep them short.
  const want = (name: string) =>
    ctx.servers ? ctx.servers.includes(name) : !(ctx.quick && name === 'fastify');
  try {
    // Started together; every start is awaited before anything else happens.
    const started = await Promise.allSettled([
      startProxy(redis.address),
      startMinimal(redis.address),
      want('webdis') ? startWebdis(redis) : Promise.resolve(undefined),
      want('fastify') ? startFastifyBaseline(redis.address) : Promise.resolve(undefined),
    ]);
    for (const r of started) if (r.status === 'fulfilled' && r.value) servers.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const dcache = servers.find((s) => s.name === 'dcache')!;
    const minimal = servers.find((s) => s.name === 'minimal')!;
    const webdis = servers.find((s) => s.name === 'webdis');

    const getKeys = keys('get', N_KEYS);
    const putKeys = keys('put', N_KEYS);
    await seed(dcache.url, getKeys, VALUE);
    // Every server reads the same Redis: check that each answers the seeded value.
    for (const s of servers) {
      const k = getKeys[7]!;
      const r = await fetch(
        s.name === 'webdis' ? `${s.url}/GET/${k}` : `${s.url}/api/v1/cache/${k}`,
      );
      const text = await r.text();
      if (r.status !== 200 || !text.includes(VALUE))
        throw new Error(`${s.name} GET: ${r.status} ${text}`);
    }

    const specFor = (s: Server, op: 'get' | 'put'): RequestSpec => {
      if (s.name !== 'webdis') return op === 'get' ? getSpec(getKeys) : putSpec(putKeys);
      return op === 'get'
        ? { method: 'GET', paths: getKeys.map((k) => `/GET/${k}`) }
        : {
            method: 'PUT',
            paths: putKeys.map((k) => `/SET/${k}`),
            bodies: [VALUE_JSON],
            contentType: 'application/octet-stream',
          };
    };
    const results: Record<string, Measured[]> = {};
    for (const op of ['get', 'put'] as const) {
      for (let run = 0; run < ctx.runs; run++) {
        for (const s of servers.filter((x) => want(x.name))) {
          ctx.log(`case 1 ${op.toUpperCase()} ${s.name} run ${run + 1}/${ctx.runs}`);
          const m = await runLoad(
            {
              url: s.url,
              connections: ctx.connections,
              durationS: ctx.durationS,
              warmupS: ctx.warmupS,
              requests: [specFor(s, op)],
            },
            { watch: { server: [s.pid], redis: [redis.pid!] }, redis: [redis] },
          );
          const k = `${s.name} ${op}`;
          results[k] = [...(results[k] ?? []), m];
        }
      }
    }
    // The load generator's ceiling: node:http answering a constant body, no Redis.
    ctx.log('case 1 ceiling (node:http constant body)');
    const ceiling = await runLoad(
      {
        url: minimal.url,
        connections: ctx.connections,
        durationS: ctx.durationS,
        warmupS: ctx.warmupS,
        requests: [{ method: 'GET', paths: ['/static'] }],
      },
      { watch: { server: [minimal.pid] } },
    );

    const rows: Row[] = [];
    const NAMES: Record<string, string> = {
      dcache: 'dcache',
      minimal: 'minimal node:http + ioredis',
      webdis: 'webdis',
      fastify: 'bare Fastify + ioredis (reference)',
    };
    const label = (name: string, op: string) => `${NAMES[name]} ${op.toUpperCase()}`;
    for (const op of ['get', 'put'] as const)
      for (const s of servers.filter((x) => want(x.name)))
        rows.push(rowOf(label(s.name, op), results[`${s.name} ${op}`]!, {}, median));
    rows.push({
      ...rowOf('node:http constant body, no Redis (generator ceiling)', [ceiling], {}, median),
      note: 'one run: an upper bound of what the load generator can drive',
    });
    const v = (name: string, op: string) =>
      rows.find((r) => r.label === label(name, op))?.value ?? Number.NaN;
    // Targets of issue 16: the speed of Node itself, not of what a naive user writes.
    const p99 = (name: string, op: string) =>
      rows.find((r) => r.label === label(name, op))?.p99 ?? Number.NaN;
    const ceil = rows.at(-1)?.value ?? Number.NaN;
    const checks = [
      check('GET dcache / minimal', ratio(v('dcache', 'get'), v('minimal', 'get')), '>=', 1.25),
      check('PUT dcache / minimal', ratio(v('dcache', 'put'), v('minimal', 'put')), '>=', 1.25),
      check('GET dcache / node:http ceiling', ratio(v('dcache', 'get'), ceil), '>=', 0.7),
      check('PUT dcache / node:http ceiling', ratio(v('dcache', 'put'), ceil), '>=', 0.7),
      check(
        'GET p99 dcache ÷ minimal',
        ratio(p99('dcache', 'get'), p99('minimal', 'get')),
        '<=',
        1,
      ),
      check(
        'PUT p99 dcache ÷ minimal',
        ratio(p99('dcache', 'put'), p99('minimal', 'put')),
        '<=',
        1,
      ),
    ];
    if (webdis) {
      checks.splice(
        1,
        0,
        check('GET dcache / webdis', ratio(v('dcache', 'get'), v('webdis', 'get')), '>=', 1.4),
      );
      checks.push(
        check('PUT dcache / webdis', ratio(v('dcache', 'put'), v('webdis', 'put')), '>=', 1.4),
      );
    }
    const cap = (name: string, op: string) =>
      rows.find((r) => r.label === label(name, op))?.capacity ?? Number.NaN;
    const info = 'CPU capacity, informational: not limited by the load generator';
    checks.push(
      check(
        'GET dcache / minimal, CPU capacity',
        ratio(cap('dcache', 'get'), cap('minimal', 'get')),
        '>=',
        1.25,
        'x',
        info,
      ),
      check(
        'PUT dcache / minimal, CPU capacity',
        ratio(cap('dcache', 'put'), cap('minimal', 'put')),
        '>=',
        1.25,
        'x',
        info,
      ),
    );
    const notes = webdis ? [] : ['webdis is not installed: its comparison was skipped'];
    const short = (r: Row) =>
      r.label
        .replace('minimal node:http + ioredis', 'minimal')
        .replace('bare Fastify + ioredis (reference)', 'bare Fastify')
        .replace(/ \(generator ceiling\)$/, '')
        .replace('node:http constant body, no Redis', 'no-Redis ceiling');
    return {
      id: 'single',
      title: '1. Single-key GET / PUT of a 100-byte value',
      setup:
        `one redis-server; dcache (defaults, 1 node), the minimal server, webdis ${webdis ? '(2 threads)' : '(not installed)'} and, as a reference for Fastify's own cost, a bare Fastify server with the same two routes, all in front of it; ` +
        `${N_KEYS.toLocaleString('en')} keys in turn; ${ctx.connections} connections; runs interleaved across servers`,
      rows,
      checks,
      notes,
      chart: {
        throughput: { unit: 'req/s', bars: rows.map((r) => ({ label: short(r), value: r.value })) },
        p99: {
          unit: 'ms',
          bars: rows.map((r) => ({ label: short(r), value: r.p99 ?? Number.NaN })),
        },
      },
    };
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await redis.close();
  }
}
