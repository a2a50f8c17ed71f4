import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ApplyPlan, type ApplyStep, applySteps, parseRingFile, planApply } from '@dcache/cli';
import { DcacheClient, type RingView } from '@dcache/client';
import { cleanupAll, type RedisServer, startRedis } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  hasScript,
  json,
  type ProxyFixture,
  plain,
  type Run,
  runProcess,
  startProxy,
  TOKEN,
} from './helpers.js';

afterAll(cleanupAll);

const dir = mkdtempSync(join(tmpdir(), 'dcache-ring-apply-'));
let files = 0;

/** Write `text` to a new file and return its path. */
function file(text: string, ext = 'yaml'): string {
  const p = join(dir, `ring-${++files}.${ext}`);
  writeFileSync(p, text);
  return p;
}

/** A ring file listing `nodes`. */
function yamlRing(nodes: readonly { address: string; weight?: number; state?: string }[]): string {
  return `# desired ring\nnodes:\n${nodes
    .map(
      (n) =>
        `  - address: ${n.address}\n${n.weight ? `    weight: ${n.weight}\n` : ''}${n.state ? `    state: ${n.state}\n` : ''}`,
    )
    .join('')}`;
}

/** What `ring apply --json` prints on success. */
type ApplyOutput = ApplyPlan & {
  dry_run: boolean;
  applied: ApplyStep[];
  ring_version_after: number;
};

/** The `--json` error document. */
type ErrorOutput = {
  error: { code: string; message: string; applied?: ApplyStep[]; ring_version?: number };
};

/** Owner of every key as the proxy reports it. */
async function owners(client: DcacheClient, keys: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < keys.length; i += 200) {
    const got = await Promise.all(keys.slice(i, i + 200).map((k) => client.owner(k)));
    for (const o of got) out.set(o.key, o.node as string);
  }
  return out;
}

/** The ring's nodes as `id weight state` lines, sorted. */
function shape(v: RingView): string[] {
  return v.nodes.map((n) => `${n.id} ${n.weight} ${n.state}`).sort();
}

describe('dcache ring apply -f: a declarative ring against a real proxy', () => {
  let px: ProxyFixture;
  let client: DcacheClient;
  let extra: RedisServer;
  let a: string;
  let b: string;
  let c: string;
  const keys = Array.from({ length: 1_000 }, (_, i) => `apply:${i}`);

  beforeAll(async () => {
    // The allow-list lets the test show a change the proxy refuses (an address outside it).
    px = await startProxy(3, { DC_CACHE_ALLOWED_ADDRESSES: '127.0.0.0/8' });
    extra = await startRedis();
    client = new DcacheClient({ url: px.url, token: TOKEN });
    [a, b, c] = px.cluster.addresses as [string, string, string];
    await client.batchSet(Object.fromEntries(keys.map((k) => [k, { value: k }])));
  });
  afterAll(async () => {
    await client?.close();
    await px?.stop();
    await extra?.close();
  });

  it('the seeded ring written as a file: nothing to change (exit 0, version unchanged)', async () => {
    const before = await client.ring();
    const f = file(yamlRing([{ address: a }, { address: b }, { address: c }]));
    const [h, j] = await Promise.all([
      px.cli(['ring', 'apply', '-f', f]),
      px.cli(['--json', 'ring', 'apply', '-f', f]),
    ]);
    expect(h.code, h.stderr).toBe(0);
    expect(plain(h.stdout)).toBe(
      `nothing to change: ring v${before.version} already matches ${f} (3 active nodes)\n`,
    );
    expect(j.code, j.stderr).toBe(0);
    const out = json<ApplyOutput>(j);
    expect(out).toMatchObject({
      file: f,
      ring_version: before.version,
      changed: false,
      steps: [],
      applied: [],
      nodes_before: 3,
      nodes_after: 3,
      ring_version_after: before.version,
    });
    expect(out.synthetic.moved).toBe(0);
    expect((await client.ring()).version).toBe(before.version);
  });

  it('--dry-run shows the plan (both forms) and changes nothing; the apply then moves what it said', async () => {
    const before = await client.ring();
    const f = file(
      yamlRing([
        { address: a, weight: 2 },
        { address: b },
        { address: c },
        { address: extra.address },
      ]),
    );
    const [h, j] = await Promise.all([
      px.cli(['ring', 'apply', '-f', f, '--dry-run']),
      px.cli(['--json', 'ring', 'apply', '-f', f, '--dry-run', '--sample', '5000']),
    ]);
    expect(j.code, j.stderr).toBe(0);
    const plan = json<ApplyOutput>(j);
    expect(plan).toMatchObject({
      file: f,
      ring_version: before.version,
      hash: 'murmur',
      changed: true,
      dry_run: true,
      applied: [],
      nodes_before: 3,
      nodes_after: 4,
      ring_version_after: before.version,
      steps: [
        { op: 'add', id: extra.address, address: extra.address, weight: 1, state: 'active' },
        {
          op: 'update',
          id: a,
          weight_before: 1,
          weight: 2,
          state_before: 'active',
          state: 'active',
        },
      ],
    });
    expect(plan.synthetic.keys).toBe(100_000);
    expect(plan.nodes.reduce((s, n) => s + n.keys_after, 0)).toBe(100_000);
    expect(plan.nodes.reduce((s, n) => s + n.share_after, 0)).toBeCloseTo(1, 6);
    expect(plan.nodes.find((n) => n.id === a)).toMatchObject({ weight_before: 1, weight_after: 2 });
    expect(plan.nodes.find((n) => n.id === extra.address)).toMatchObject({
      weight_before: null,
      weight_after: 1,
      share_before: 0,
      moved_out: 0,
    });
    // The ideal is the least movement between the two share vectors: a lower bound (a weight
    // change in ketama also moves points between the nodes that keep their weight).
    expect(plan.ideal_fraction).toBeGreaterThan(0.1);
    expect(plan.synthetic.fraction).toBeGreaterThan(plan.ideal_fraction - 0.01);
    expect(plan.sample?.keys).toBe(1_000);

    expect(h.code, h.stderr).toBe(0);
    const text = plain(h.stdout);
    expect(text).toContain(
      `plan: apply ${f} to ring v${before.version}: 3 → 4 active nodes, hash murmur\n2 changes, in this order:\n  1. add ${extra.address} weight 1\n  2. ${a}: weight 1 → 2\n`,
    );
    expect(text).toMatch(
      /^NODE\s+WEIGHT\s+SHARE BEFORE\s+SHARE AFTER\s+KEYS BEFORE\s+KEYS AFTER\s+MOVED OUT\s+MOVED IN$/m,
    );
    expect(text).toMatch(new RegExp(`^${a.replace(/\./g, '\\.')}\\s+1 → 2\\s`, 'm'));
    expect(text).toContain('(the shares that change hands)');
    expect(text.trimEnd().split('\n').at(-1)).toBe('dry run: nothing was changed');
    expect(await client.ring()).toMatchObject({ version: before.version });

    const ownersBefore = await owners(client, keys);
    const r = await px.cli(['--json', 'ring', 'apply', '-f', f, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    const done = json<ApplyOutput>(r);
    expect(done.dry_run).toBe(false);
    expect(done.applied).toEqual(plan.steps);
    const after = await client.ring();
    expect(done.ring_version_after).toBe(after.version);
    expect(after.version).toBeGreaterThan(before.version);
    expect(shape(after)).toEqual(
      [`${a} 2 active`, `${b} 1 active`, `${c} 1 active`, `${extra.address} 1 active`].sort(),
    );
    // The shares the plan predicted are the ones the proxy now reports.
    for (const n of after.nodes)
      expect(n.share).toBeCloseTo(plan.nodes.find((x) => x.id === n.id)?.share_after ?? -1, 9);
    // The real keys that changed owner are exactly as many as the sample said.
    const ownersAfter = await owners(client, keys);
    const moved = keys.filter((k) => ownersBefore.get(k) !== ownersAfter.get(k));
    expect(moved.length).toBe(plan.sample?.moved);

    // Idempotent: the same file again changes nothing and says so.
    const again = await px.cli(['ring', 'apply', '-f', f, '--yes']);
    expect(again.code, again.stderr).toBe(0);
    expect(plain(again.stdout)).toBe(
      `nothing to change: ring v${after.version} already matches ${f} (4 active nodes)\n`,
    );
    expect((await client.ring()).version).toBe(after.version);
  });

  it('a removal and a drain (JSON file from stdin): drains before it removes', async () => {
    const body = JSON.stringify({
      nodes: [
        { address: a, weight: 2 },
        { address: c, state: 'draining' },
        { address: extra.address },
      ],
    });
    const r = await px.cli(['--json', 'ring', 'apply', '-f', '-', '--yes'], { input: body });
    expect(r.code, r.stderr).toBe(0);
    const out = json<ApplyOutput>(r);
    expect(out.file).toBe('stdin');
    expect(out.applied).toEqual([
      {
        op: 'update',
        id: c,
        weight_before: 1,
        weight: 1,
        state_before: 'active',
        state: 'draining',
      },
      { op: 'remove', id: b, address: b },
    ]);
    expect(out).toMatchObject({ nodes_before: 4, nodes_after: 2 });
    const after = await client.ring();
    expect(shape(after)).toEqual(
      [`${a} 2 active`, `${c} 1 draining`, `${extra.address} 1 active`].sort(),
    );
    // The removed and the drained node own no key afterwards.
    expect(out.nodes.find((x) => x.id === c)).toMatchObject({ weight_after: null, keys_after: 0 });
    expect(out.nodes.find((x) => x.id === b)).toMatchObject({ weight_after: null, keys_after: 0 });

    // Back to three active nodes for the next tests: an activation and a re-add.
    const back = await px.cli(
      ['ring', 'apply', '-f', file(yamlRing([{ address: a }, { address: b }, { address: c }]))],
      { input: '' },
    );
    // stdin is a pipe, not a terminal: no prompt, exit 2, nothing changed.
    expect(back.code).toBe(2);
    expect(back.stderr).toMatch(
      /^error USAGE: refusing to apply without --yes: stdin is not a terminal/m,
    );
    const backJson = await px.cli(
      ['--json', 'ring', 'apply', '-f', file(yamlRing([{ address: a }, { address: b }]))],
      { input: '' },
    );
    expect(backJson.code).toBe(2);
    expect(json<ErrorOutput>(backJson).error.code).toBe('USAGE');
    expect((await client.ring()).version).toBe(after.version);
  });

  it('bad files exit 2 with INVALID_RING_FILE naming the line and field; nothing changes', async () => {
    const v = (await client.ring()).version;
    const cases: [string, string, string][] = [
      ['nodes:\n  - address: [1, 2\n', 'yaml', `:3: not valid YAML or JSON`],
      [
        `nodes:\n  - address: ${a}\n    wieght: 2\n`,
        'yaml',
        `:3: nodes[0]: unknown field "wieght"; expected address, id, weight, state`,
      ],
      [
        `nodes:\n  - address: ${a}\n  - address: ${b}\n    weight: heavy\n`,
        'yaml',
        `:4: nodes[1].weight must be an integer 1..1000, got "heavy"`,
      ],
      [
        `nodes:\n  - address: ${a}\n    state: drain\n`,
        'yaml',
        `:3: nodes[0].state must be active or draining`,
      ],
      [
        `nodes:\n  - address: ${a}\n  - address: ${a}\n`,
        'yaml',
        `:3: nodes[1]: node id ${a} is also declared on line 2`,
      ],
      [`nodes:\n  - address: nohost\n`, 'yaml', ':2: nodes[0].address: '],
      [`nodes:\n  - weight: 2\n`, 'yaml', ':2: nodes[0].address is missing'],
      [`nodes:\n  - address: ${a}\n    state: draining\n`, 'yaml', ':2: no node is active'],
      [`ring:\n  - address: ${a}\n`, 'yaml', ':1: unknown field "ring"; expected nodes'],
      ['', 'yaml', ': the file is empty'],
      [
        `{"nodes": [{"address": "${a}", "weight": 0}]}`,
        'json',
        ':1: nodes[0].weight must be an integer 1..1000, got 0',
      ],
      [`{"nodes": [{"address": "${a}"}]}}`, 'json', ':1: not valid YAML or JSON'],
    ];
    // The human form of every case (four processes at a time), the JSON form of two.
    const runs = cases.map(([text, ext, want]) => ({ f: file(text, ext), text, want }));
    for (let k = 0; k < runs.length; k += 4) {
      await Promise.all(
        runs.slice(k, k + 4).map(async ({ f, text, want }) => {
          const h = await px.cli(['ring', 'apply', '-f', f, '--yes']);
          expect(h.code, `${text}\n${h.stderr}`).toBe(2);
          expect(h.stderr).toContain(`error INVALID_RING_FILE: ${f}${want}`);
          expect(h.stdout).toBe('');
        }),
      );
    }
    for (const { f, want } of [runs[1], runs[10]] as (typeof runs)[number][]) {
      const j = await px.cli(['--json', 'ring', 'apply', '-f', f, '--yes']);
      expect(j.code).toBe(2);
      expect(json<ErrorOutput>(j).error).toMatchObject({ code: 'INVALID_RING_FILE' });
      expect(json<ErrorOutput>(j).error.message).toContain(`${f}${want}`);
    }
    const missing = await px.cli(['ring', 'apply', '-f', join(dir, 'nope.yaml'), '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
    const noFile = await px.cli(['ring', 'apply', '--yes']);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('give the desired ring: -f ring.yaml');
    expect((await client.ring()).version).toBe(v);
  });

  it('a change the proxy refuses: exit 1 with its code, naming what was already made', async () => {
    const now = await client.ring();
    const outside = '10.255.255.1:6379';
    const desired = [
      { address: a, weight: 2 },
      { address: b },
      { address: c, state: 'draining' },
      { address: extra.address },
      { address: outside },
    ];
    const r = await px.cli(['--json', 'ring', 'apply', '-f', file(yamlRing(desired)), '--yes']);
    expect(r.code, r.stderr).toBe(1);
    const err = json<ErrorOutput>(r).error;
    expect(err.code).toBe('NODE_NOT_ALLOWED');
    expect(err.applied).toEqual([{ op: 'add', id: b, address: b, weight: 1, state: 'active' }]);
    expect(err.message).toContain(`the proxy refused "add ${outside} weight 1"`);
    expect(err.message).toContain(`1 of 2 changes were made (add ${b} weight 1)`);
    const after = await client.ring();
    expect(err.ring_version).toBe(after.version);
    expect(shape(after)).toEqual(
      [`${a} 2 active`, `${b} 1 active`, `${c} 1 draining`, `${extra.address} 1 active`].sort(),
    );
    expect(after.version).toBeGreaterThan(now.version);

    // Without the admin token the first change is refused: nothing was changed.
    const f = file(yamlRing([{ address: a }, { address: b }, { address: c }]));
    const noToken = await runProcess('node', [
      BIN,
      '--url',
      px.url,
      'ring',
      'apply',
      '-f',
      f,
      '--yes',
    ]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(
      /^error UNAUTHORIZED: the proxy refused .*; nothing was changed/m,
    );
    expect((await client.ring()).version).toBe(after.version);
  });

  it('a concurrent change between two steps stops the apply with RING_CHANGED', async () => {
    const target = [{ address: a }, { address: b }, { address: c }];
    const desired = parseRingFile(yamlRing(target), 'ring.yaml');
    const view = await client.ring();
    const plan = planApply(view, desired, 'ring.yaml', { syntheticKeys: 1_000 });
    expect(plan.steps.map((s) => s.op)).toEqual(['update', 'update', 'remove']);
    // A second admin changes the weight of b right after the first step of this apply.
    const other = new DcacheClient({ url: px.url, token: TOKEN });
    class Racing extends DcacheClient {
      override async updateNode(...args: Parameters<DcacheClient['updateNode']>) {
        const v = await super.updateNode(...args);
        if (args[0] === a) await other.updateNode(b, { weight: 3 });
        return v;
      }
    }
    const racing = new Racing({ url: px.url, token: TOKEN });
    try {
      const e = await applySteps(racing, desired, plan).then(
        () => undefined,
        (x: unknown) => x as { code: string; message: string; details: { applied: ApplyStep[] } },
      );
      expect(e?.code).toBe('RING_CHANGED');
      expect(e?.details.applied).toEqual([plan.steps[0]]);
      expect(e?.message).toMatch(/the ring changed while applying .*1 of 3 changes were made/);
      const after = await client.ring();
      // The other admin's change stands; the rest of the plan was not made.
      expect(shape(after)).toEqual(
        [`${a} 1 active`, `${b} 3 active`, `${c} 1 draining`, `${extra.address} 1 active`].sort(),
      );
    } finally {
      await racing.close();
      await other.close();
    }
    // Run again: a new plan from the ring as it is now, applied to the end.
    const again = await px.cli(['ring', 'apply', '-f', file(yamlRing(target)), '--yes']);
    expect(again.code, again.stderr).toBe(0);
    expect(shape(await client.ring())).toEqual(
      [`${a} 1 active`, `${b} 1 active`, `${c} 1 active`].sort(),
    );
  });

  it.skipIf(!hasScript)(
    'asks on a terminal: "n" changes nothing (exit 1), "y" applies',
    async () => {
      const f = file(
        yamlRing([{ address: a }, { address: b }, { address: c }, { address: extra.address }]),
      );
      const cmd = `node ${BIN} --url ${px.url} --token ${TOKEN} ring apply -f ${f}`;
      const v = (await client.ring()).version;
      const no: Run = await runProcess('script', ['-qfec', cmd, '/dev/null'], { input: 'n\n' });
      expect(plain(no.stdout)).toContain(`apply 1 change to ${px.url}? [y/N]`);
      expect(plain(no.stdout)).toContain('error CANCELLED: nothing was changed');
      expect(no.code).toBe(1);
      expect((await client.ring()).version).toBe(v);
      const yes = await runProcess('script', ['-qfec', cmd, '/dev/null'], { input: 'y\n' });
      expect(plain(yes.stdout)).toMatch(/applied 1 change: ring is now v\d+/);
      expect(yes.code).toBe(0);
      expect(shape(await client.ring())).toContain(`${extra.address} 1 active`);
    },
  );
});
