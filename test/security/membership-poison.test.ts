/**
 * Membership poisoning by a buggy or hostile peer holding the cluster token (issue 15, part 3),
 * against real proxy processes over real Redis: versions at or past the cap, reserved ids from
 * the admin API, in a peer's request and in a peer's reply, and a state file an older build
 * wrote with a version past the cap. The tests run in order and share two peered proxies.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { checksum, type MembershipDoc, validateDoc } from '@dcache/ring';
import {
  CI_SAFE_ENV,
  type ClusterProxy,
  cleanupAll,
  type ProxyCluster,
  type RedisCluster,
  spawnProxy,
  startProxyCluster,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** MAX_VERSION of @dcache/ring's membership.ts (not re-exported by the package index). */
const MAX_VERSION = 2 ** 39;
const ADMIN = 'adm-poison-7c3a5f8e2d6c0b9a';
const SYNC = '/internal/v1/membership/sync';
const adminH = { authorization: `Bearer ${ADMIN}` };

let redis: RedisCluster;
let cluster: ProxyCluster;
let A: ClusterProxy;
let B: ClusterProxy;
let fake: Server | undefined;
const dir = mkdtempSync(join(tmpdir(), 'dcache-poison-'));

interface Res {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON
  body: any;
}

async function call(
  url: string,
  init: { method?: string; json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...init.headers };
  let body = init.body;
  if (init.json !== undefined) body = JSON.stringify(init.json);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  return { status: r.status, headers: r.headers, body: parsed };
}

const peerH = () => ({ authorization: `Bearer ${cluster.token}` });

/** What a hostile peer sends: an envelope without a URL (so it is not learned) and `doc`. */
function envelope(doc: string): string {
  return `{"from":{"id":"evil-peer","url":""},"peers":[],"seeded":false,"doc":${doc}}`;
}

/** The document a proxy holds, as the exchange carries it. */
async function docOf(
  p: ClusterProxy,
): Promise<{ entries: Record<string, Record<string, unknown>> }> {
  const r = await call(`${p.url}/internal/v1/membership`, { headers: peerH() });
  expect(r.status).toBe(200);
  return r.body.doc;
}

async function ringOf(p: ClusterProxy) {
  const r = await call(`${p.url}/api/v1/ring`);
  expect(r.status).toBe(200);
  return r.body;
}

/** Both proxies hold the same document (and A's is `want`, when given). */
async function converged(want?: string): Promise<string> {
  let sum = '';
  await waitFor(
    async () => {
      const [a, b] = await Promise.all([ringOf(A), ringOf(B)]);
      sum = a.checksum;
      return a.checksum === b.checksum && (want === undefined || a.checksum === want);
    },
    { timeout: 60_000, interval: 50, message: 'both proxies to hold the same document' },
  );
  return sum;
}

/** The proxy serves a write and a read through its own data path. */
async function serves(p: ClusterProxy, key: string): Promise<void> {
  await waitFor(
    async () => {
      const put = await call(`${p.url}/api/v1/cache/${key}`, {
        method: 'PUT',
        json: { value: key },
      });
      if (put.status !== 200) return false;
      const get = await call(`${p.url}/api/v1/cache/${key}`);
      return get.status === 200 && get.body.value === key;
    },
    { timeout: 60_000, interval: 100, message: `${p.name} to serve ${key}` },
  );
}

// biome-ignore lint/suspicious/noExplicitAny: log lines are arbitrary JSON
function logLines(p: ClusterProxy, msg: string | RegExp): Record<string, any>[] {
  const out = [];
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line);
      if (typeof msg === 'string' ? j.msg === msg : msg.test(j.msg)) out.push(j);
    } catch {
      // not a log line
    }
  }
  return out;
}

/** A state file as an older build wrote it: the document it held, its checksum included. */
function olderBuildState(doc: unknown): string {
  return `${JSON.stringify(
    {
      format: 'dcache-membership/1',
      savedAt: new Date().toISOString(),
      savedBy: 'older-build',
      seeded: false,
      version: 0,
      checksum: checksum(doc as MembershipDoc),
      doc,
    },
    null,
    2,
  )}\n`;
}

beforeAll(async () => {
  redis = await startRedisCluster(3);
  cluster = await startProxyCluster({
    proxies: 2,
    addresses: redis.addresses,
    env: { ...CI_SAFE_ENV, DC_ADMIN_TOKEN: ADMIN, DC_REPLICATION_WARMUP_WINDOW: '0' },
  });
  [A, B] = cluster.proxies as [ClusterProxy, ClusterProxy];
  await converged();
});

afterAll(async () => {
  await new Promise<void>((r) => (fake ? fake.close(() => r()) : r()));
  await cluster?.close();
  await cleanupAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('membership poisoning by a peer holding the cluster token', () => {
  it('(a) a version at MAX_SAFE_INTEGER or above the cap is refused 400; the proxy serves and restarts', async () => {
    const before = (await ringOf(A)).checksum;
    const node = redis.addresses[0] as string;
    for (const version of [Number.MAX_SAFE_INTEGER, MAX_VERSION + 1, 2 ** 53]) {
      const doc = await docOf(A);
      (doc.entries[node] as Record<string, unknown>).version = version;
      const r = await call(`${A.url}${SYNC}`, {
        method: 'POST',
        headers: peerH(),
        body: envelope(JSON.stringify(doc)),
      });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('INVALID_MEMBERSHIP');
      expect(r.body.error.message).toMatch(/version/);
    }
    expect((await ringOf(A)).checksum).toBe(before);
    // Logged at warn, naming the peer and the reason (once: later ones within a minute are counted).
    await waitFor(() => logLines(A, 'refused a peer document').length > 0, {
      timeout: 30_000,
      message: 'the refusal to be logged',
    });
    const line = logLines(A, 'refused a peer document')[0];
    expect(line).toMatchObject({ level: 40, peer: 'evil-peer', code: 'INVALID_MEMBERSHIP' });
    expect(line?.reason).toMatch(/version/);
    await serves(A, 'poison-a-1');
    // Its state file still loads: the restarted process starts with the same document.
    await A.restart();
    expect((await ringOf(A)).checksum).toBe(before);
    await serves(A, 'poison-a-2');
    await converged(before);
  });

  it('(b) the id __proto__ is refused from the admin API and from a peer; sync goes on', async () => {
    for (const id of ['__proto__', 'constructor', 'prototype']) {
      const r = await call(`${A.url}/api/v1/ring/nodes`, {
        method: 'POST',
        headers: adminH,
        json: { address: redis.addresses[2], id },
      });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('INVALID_BODY');
      expect(r.body.error.message).toContain(`"${id}" is reserved`);
    }
    // A peer's request carrying it as an entry key (what an older build would send).
    const doc = JSON.stringify(await docOf(A));
    const entry = JSON.stringify({
      id: '__proto__',
      address: redis.addresses[2],
      weight: 1,
      state: 'active',
      version: 1,
      writer: 'evil-peer',
      updatedAt: Date.now(),
    });
    const poisoned = doc.replace('"entries":{', `"entries":{"__proto__":${entry},`);
    expect(poisoned).not.toBe(doc);
    const r = await call(`${A.url}${SYNC}`, {
      method: 'POST',
      headers: peerH(),
      body: envelope(poisoned),
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('INVALID_MEMBERSHIP');
    expect(r.body.error.message).toMatch(/"__proto__" is reserved/);

    // A peer whose *replies* carry it: A learns it (a digest call naming its URL), meets it, and
    // refuses what it answers, logged with its URL.
    let fakeUrl = '';
    const srv = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const from = `"from":{"id":"old-build","url":"${fakeUrl}"},"peers":[],"seeded":false`;
        const digest = `"digest":{"version":1,"checksum":"${'0'.repeat(64)}"}`;
        res.setHeader('content-type', 'application/json');
        res.end(
          req.url?.endsWith('/sync')
            ? `{${from},${digest},"doc":${poisoned}}`
            : `{${from},${digest}}`,
        );
      });
    });
    fake = srv;
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
    fakeUrl = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const hello = await call(`${A.url}/internal/v1/membership/digest`, {
      method: 'POST',
      headers: peerH(),
      json: {
        from: { id: 'old-build', url: fakeUrl },
        peers: [],
        seeded: false,
        digest: { version: 1, checksum: '0'.repeat(64) },
      },
    });
    expect(hello.status).toBe(200);
    await waitFor(() => logLines(A, 'refused a peer document').some((l) => l.peer === fakeUrl), {
      timeout: 60_000,
      message: "A to refuse the old build's reply",
    });
    const refused = logLines(A, 'refused a peer document').find((l) => l.peer === fakeUrl);
    expect(refused?.reason).toMatch(/reserved/);
    for (const p of [A, B]) {
      const ids = (await ringOf(p)).nodes.map((n: { id: string }) => n.id);
      expect(ids).not.toContain('__proto__');
    }

    // Sync between the two real proxies keeps working: a later admin change converges.
    const change = await call(`${A.url}/api/v1/ring/nodes/${redis.addresses[1]}`, {
      method: 'PATCH',
      headers: adminH,
      json: { weight: 2 },
    });
    expect(change.status).toBe(200);
    await converged(change.body.checksum);
    const back = await call(`${B.url}/api/v1/ring/nodes/${redis.addresses[1]}`, {
      method: 'PATCH',
      headers: adminH,
      json: { weight: 1 },
    });
    expect(back.status).toBe(200);
    await converged(back.body.checksum);
  });

  it('(c) an admin change that would pass the cap is 409 VERSION_LIMIT; peers still accept the document', async () => {
    const node = redis.addresses[0] as string;
    const doc = await docOf(A);
    // A peer pins the node at the cap (a valid version: accepted), same address and weight.
    Object.assign(doc.entries[node] as object, {
      version: MAX_VERSION,
      writer: 'evil-peer',
      updatedAt: Date.now(),
    });
    const r = await call(`${A.url}${SYNC}`, {
      method: 'POST',
      headers: peerH(),
      body: envelope(JSON.stringify(doc)),
    });
    expect(r.status).toBe(200);
    const pinned = await converged();
    for (const p of [A, B]) {
      const ring = await ringOf(p);
      expect(ring.nodes.find((n: { id: string }) => n.id === node)?.version).toBe(MAX_VERSION);
      expect(Number.isSafeInteger(ring.version)).toBe(true);
    }
    for (const p of [A, B]) {
      for (const [method, json] of [
        ['PATCH', { weight: 3 }],
        ['PATCH', { state: 'draining' }],
        ['DELETE', undefined],
      ] as const) {
        const res = await call(`${p.url}/api/v1/ring/nodes/${node}`, {
          method,
          headers: adminH,
          ...(json === undefined ? {} : { json }),
        });
        expect(res.status).toBe(409);
        expect(res.body.error.code).toBe('VERSION_LIMIT');
        expect(res.body.error.message).toMatch(/version cap/);
      }
    }
    expect((await ringOf(A)).checksum).toBe(pinned);
    // The document with the pinned entry still travels: B accepts A's next change, and back.
    const next = await call(`${A.url}/api/v1/ring/nodes/${redis.addresses[1]}`, {
      method: 'PATCH',
      headers: adminH,
      json: { weight: 3 },
    });
    expect(next.status).toBe(200);
    await converged(next.body.checksum);
    await serves(B, 'poison-c-1');
    // Both state files hold it and load: a restart brings the same document back.
    await B.restart();
    await converged(next.body.checksum);
  });

  it('(d) a state file holding a version past the cap: the proxy starts, the file moved aside and logged', async () => {
    const path = B.env.DC_CLUSTER_STATE_FILE as string;
    await B.stop();
    const want = (await ringOf(A)).checksum;
    // What an older build wrote after incrementing a MAX_SAFE_INTEGER version: 2^53.
    const saved = JSON.parse(readFileSync(path, 'utf8'));
    const node = redis.addresses[2] as string;
    saved.doc.entries[node].version = 2 ** 53;
    const text = olderBuildState(saved.doc);
    writeFileSync(path, text);
    await B.restart();
    // It started from its peer: the same document as A.
    await converged(want);
    const moved = readdirSync(dirname(path)).filter((f) =>
      f.startsWith(`${basename(path)}.rejected-`),
    );
    expect(moved).toHaveLength(1);
    expect(readFileSync(join(dirname(path), moved[0] as string), 'utf8')).toBe(text);
    const err = logLines(B, /moved it aside/);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatchObject({ level: 50, path });
    expect(err[0]?.msg).toContain('DC_CLUSTER_STATE_FILE');
    expect(err[0]?.reason).toMatch(/version/);
    // A fresh state file was written, and it loads at the next restart.
    expect(checksum(validateDoc(JSON.parse(readFileSync(path, 'utf8')).doc))).toBe(want);
    await B.restart();
    await converged(want);
    await serves(B, 'poison-d-1');
  });

  it('(d) without peers: the proxy starts from DC_CACHE_ADDRESSES', async () => {
    const path = join(dir, 'alone', 'ring.json');
    const doc = JSON.parse(readFileSync(A.env.DC_CLUSTER_STATE_FILE as string, 'utf8')).doc;
    doc.entries[redis.addresses[0] as string].version = Number.MAX_SAFE_INTEGER + 1;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, olderBuildState(doc));
    const p = await spawnProxy({
      ...CI_SAFE_ENV,
      DC_CACHE_ADDRESSES: redis.addresses.slice(0, 2).join(','),
      DC_CLUSTER_STATE_FILE: path,
      DC_ADMIN_TOKEN: ADMIN,
    });
    try {
      const ring = (await call(`${p.url}/api/v1/ring`)).body;
      expect(ring.seeded).toBe(true);
      expect(ring.nodes.map((n: { id: string }) => n.id).sort()).toEqual(
        redis.addresses.slice(0, 2).sort(),
      );
      expect(p.proc.output()).toMatch(/moved it aside/);
      expect(readdirSync(dirname(path)).some((f) => f.startsWith('ring.json.rejected-'))).toBe(
        true,
      );
    } finally {
      await p.proc.stop(5_000);
    }
  });
});
