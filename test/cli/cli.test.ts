import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DcacheClient, type Health, type RingView, type Stats } from '@dcache/client';
import { cleanupAll, freePort, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  dcache,
  hasAnsi,
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

/** stderr is exactly one `error CODE: message` line. */
function oneErrorLine(r: Run, code: string): string {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^error ${code}: \\S`));
  return lines[0] as string;
}

/** The rows of the first table in `text`: the header line (matching `header`) and the rows after it. */
function tableRows(text: string, header: RegExp): { header: string; rows: string[] } {
  const lines = plain(text).split('\n');
  const i = lines.findIndex((l) => header.test(l));
  expect(i, `no table header ${header} in:\n${text}`).toBeGreaterThanOrEqual(0);
  const rows: string[] = [];
  for (const l of lines.slice(i + 1)) {
    if (l.trim() === '') break;
    rows.push(l);
  }
  return { header: lines[i] as string, rows };
}

describe('dcache against a real proxy over 3 redis-servers', () => {
  let px: ProxyFixture;
  let client: DcacheClient;
  let dir: string;

  beforeAll(async () => {
    px = await startProxy(3);
    client = new DcacheClient({ url: px.url, token: TOKEN });
    dir = mkdtempSync(join(tmpdir(), 'dcache-cli-'));
  });
  afterAll(async () => {
    await client?.close();
    await px?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ring list: an aligned table, and the API document with --json', async () => {
    const [h, j] = await Promise.all([
      px.cli(['ring', 'list']),
      px.cli(['--json', 'ring', 'list']),
    ]);
    expect(h.code).toBe(0);
    expect(h.stderr).toBe('');
    const view = await client.ring();
    expect(h.stdout.split('\n')[0]).toBe(
      `ring v${view.version}  checksum ${view.checksum.slice(0, 12)}  hash murmur  replication 1  nodes 3 active`,
    );
    const t = tableRows(h.stdout, /^NODE\s+ADDRESS\s+WEIGHT\s+STATE\s+HEALTHY\s+SHARE$/);
    expect(t.rows).toHaveLength(3);
    let total = 0;
    for (const [i, row] of t.rows.entries()) {
      const n = view.nodes[i];
      if (!n) throw new Error('row without node');
      // Columns start where their headers start (left-aligned) or end where they end (numbers).
      expect(row.indexOf(n.address, n.id.length)).toBe(t.header.indexOf('ADDRESS'));
      expect(row.indexOf('active')).toBe(t.header.indexOf('STATE'));
      expect(row.endsWith(`${(n.share * 100).toFixed(2)}%`)).toBe(true);
      expect(row.length).toBe(t.header.length);
      total += Number(row.split(/\s+/).at(-1)?.replace('%', ''));
    }
    expect(total).toBeCloseTo(100, 1);

    expect(j.code).toBe(0);
    const doc = json<RingView>(j);
    expect(doc.version).toBe(view.version);
    expect(doc.nodes.map((n) => n.id)).toEqual(view.nodes.map((n) => n.id));
    expect(doc.nodes[0]).toMatchObject({ weight: 1, state: 'active', healthy: true });
  });

  it('set, get, exists, del: human and --json forms, exit codes 0 / 3 / 2', async () => {
    const [set1, set2, set3, set4] = await Promise.all([
      px.cli(['set', 'cli:obj', '{"a":[1,2],"b":"x"}', '--ttl', '1h']),
      px.cli(['--json', 'set', 'cli:text', 'hello world']),
      px.cli(['set', 'cli:num-as-text', '123', '--string', '--ttl', '90']),
      px.cli(['set', 'cli:stdin'], { input: '{"from":"stdin"}\n' }),
    ]);
    expect([set1.code, set2.code, set3.code, set4.code]).toEqual([0, 0, 0, 0]);
    expect(set1.stdout).toBe('stored cli:obj (expires in 1h)\n');
    expect(json(set2)).toEqual({ key: 'cli:text', ttl_ms: 0 });
    expect(set3.stdout).toBe('stored cli:num-as-text (expires in 90s)\n');
    expect(await client.get('cli:obj')).toEqual({ a: [1, 2], b: 'x' });
    expect(await client.get('cli:text')).toBe('hello world');
    expect(await client.get('cli:num-as-text')).toBe('123');
    expect(await client.get('cli:stdin')).toEqual({ from: 'stdin' });

    const [g1, g2, g3, e1, e2, e3, e4] = await Promise.all([
      px.cli(['get', 'cli:obj']),
      px.cli(['get', 'cli:text']),
      px.cli(['--json', 'get', 'cli:obj']),
      px.cli(['exists', 'cli:obj']),
      px.cli(['exists', 'cli:absent']),
      px.cli(['--json', 'exists', 'cli:obj']),
      px.cli(['--json', 'exists', 'cli:absent']),
    ]);
    expect(g1).toMatchObject({
      code: 0,
      stdout: '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "x"\n}\n',
    });
    expect(g2).toMatchObject({ code: 0, stdout: 'hello world\n' });
    expect(json(g3)).toEqual({ key: 'cli:obj', value: { a: [1, 2], b: 'x' } });
    expect(e1).toMatchObject({ code: 0, stdout: 'cli:obj exists\n' });
    expect(e2).toMatchObject({ code: 3, stdout: 'cli:absent does not exist\n', stderr: '' });
    expect(json(e3)).toEqual({ key: 'cli:obj', exists: true });
    expect(e4.code).toBe(3);
    expect(json(e4)).toEqual({ key: 'cli:absent', exists: false });

    const d1 = await px.cli(['del', 'cli:obj']);
    expect(d1).toMatchObject({ code: 0, stdout: 'deleted cli:obj\n' });
    const [d2, g4, g5, d3, badTtl] = await Promise.all([
      px.cli(['del', 'cli:obj']),
      px.cli(['get', 'cli:obj']),
      px.cli(['--json', 'get', 'cli:obj']),
      px.cli(['--json', 'del', 'cli:text']),
      px.cli(['set', 'cli:x', '1', '--ttl', 'soon']),
    ]);
    expect(d2.code).toBe(3);
    expect(d2.stdout).toBe('');
    oneErrorLine(d2, 'KEY_NOT_FOUND');
    expect(g4.code).toBe(3);
    oneErrorLine(g4, 'KEY_NOT_FOUND');
    expect(g5.code).toBe(3);
    expect(json(g5)).toMatchObject({ error: { code: 'KEY_NOT_FOUND', status: 404 } });
    expect(json(d3)).toEqual({ key: 'cli:text', deleted: true });

    // A key or value that starts with a dash goes after `--`; `-` alone reads stdin.
    const dash = await px.cli(['set', '--', '-dash', '-1']);
    expect(dash).toMatchObject({ code: 0, stdout: 'stored -dash (no expiry)\n' });
    const [dg, dv] = await Promise.all([
      px.cli(['get', '--', '-dash']),
      px.cli(['set', 'cli:dash-value', '-'], { input: '--not-an-option' }),
    ]);
    expect(dg).toMatchObject({ code: 0, stdout: '-1\n' });
    expect(dv.code).toBe(0);
    expect(await client.get('cli:dash-value')).toBe('--not-an-option');
    expect(badTtl.code).toBe(2);
    oneErrorLine(badTtl, 'INVALID_TTL');
  });

  it('batch get/set/del read JSON from a file or stdin; human and --json; bad JSON exits 2', async () => {
    const file = join(dir, 'items.json');
    writeFileSync(file, JSON.stringify({ 'bt:a': 1, 'bt:b': { x: 2 }, 'bt:c': 'three' }));
    const s1 = await px.cli(['batch', 'set', file, '--ttl', '10m']);
    expect(s1).toMatchObject({ code: 0, stdout: 'stored 3 of 3 keys\n' });
    const s2 = await px.cli(['--json', 'batch', 'set'], {
      input: JSON.stringify({
        items: { 'bt:d': { value: [4], ttl: '1m' }, 'bt:e': { value: null } },
      }),
    });
    expect(s2.code).toBe(0);
    expect(json(s2)).toEqual({ stored: 2, failed: {} });
    expect(await client.get('bt:d')).toEqual([4]);

    const keysFile = join(dir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ keys: ['bt:a', 'bt:b', 'bt:e', 'bt:nope'] }));
    const [g1, g2] = await Promise.all([
      px.cli(['batch', 'get'], { input: '["bt:a","bt:b","bt:nope"]' }),
      px.cli(['--json', 'batch', 'get', keysFile]),
    ]);
    expect(g1.code).toBe(0);
    const t = tableRows(g1.stdout, /^KEY\s+VALUE$/);
    expect(t.rows.map((r) => r.split(/\s+/)[0]).sort()).toEqual(['bt:a', 'bt:b']);
    expect(t.rows.find((r) => r.startsWith('bt:b'))).toMatch(/\{"x":2\}$/);
    expect(g1.stdout).toContain('found 2, missing 1, failed 0\nmissing: bt:nope\n');
    expect(json(g2)).toEqual({
      items: { 'bt:a': 1, 'bt:b': { x: 2 }, 'bt:e': null },
      missing: ['bt:nope'],
      failed: {},
    });

    const [d1, d2] = await Promise.all([
      px.cli(['batch', 'del', '-'], { input: '["bt:a","bt:b","bt:nope"]' }),
      px.cli(['--json', 'batch', 'del'], { input: '{"keys":["bt:c","bt:d"]}' }),
    ]);
    expect(d1).toMatchObject({ code: 0, stdout: 'deleted 2 of 3 keys (1 did not exist)\n' });
    expect(json(d2)).toEqual({ deleted: 2, failed: {} });

    const [bad1, bad2, bad3, bad4] = await Promise.all([
      px.cli(['batch', 'get'], { input: '{not json' }),
      px.cli(['batch', 'set'], { input: '[1,2]' }),
      px.cli(['batch', 'del', join(dir, 'missing.json')]),
      px.cli(['batch', 'get'], { input: '' }),
    ]);
    for (const r of [bad1, bad2, bad3, bad4]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^error USAGE: .+\nusage: dcache batch (get|set|del) /);
    }
    expect(bad1.stderr).toContain('stdin is not valid JSON');
    expect(bad3.stderr).toContain('ENOENT');
    expect(bad4.stderr).toContain('stdin is empty');
  });

  it('keys lists every key across the 3 nodes exactly once (lines, --json, --pattern, --limit)', async () => {
    await client.flush();
    const items: Record<string, { value: number }> = {};
    for (let i = 0; i < 3_000; i++) items[`key:${i}`] = { value: i };
    for (let i = 0; i < 10; i++) items[`other:${i}`] = { value: i };
    expect((await client.batchSet(items)).stored).toBe(3_010);
    const sizes = await Promise.all(px.cluster.nodes.map((n) => n.command('DBSIZE')));
    for (const s of sizes) expect(Number(s)).toBeGreaterThan(500); // spread over all 3 nodes
    expect(sizes.reduce((a: number, s) => a + Number(s), 0)).toBe(3_010);

    const [all, js, limited, limitedJson] = await Promise.all([
      px.cli(['keys', '--page-size', '250']),
      px.cli(['--json', 'keys', '--pattern', 'key:*', '--page-size', '700']),
      px.cli(['keys', '--limit', '100', '--page-size', '64']),
      px.cli(['--json', 'keys', '--limit', '5']),
    ]);
    expect(all.code).toBe(0);
    expect(all.stderr).toBe('');
    expect(hasAnsi(all.stdout)).toBe(false); // piped: no progress indicator
    const lines = all.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3_010);
    expect(new Set(lines).size).toBe(3_010);
    expect(new Set(lines)).toEqual(new Set(Object.keys(items)));

    expect(js.code).toBe(0);
    const doc = json<{ keys: string[]; count: number; complete: boolean; skipped_nodes: string[] }>(
      js,
    );
    expect(doc.count).toBe(3_000);
    expect(doc.complete).toBe(true);
    expect(doc.skipped_nodes).toEqual([]);
    expect(new Set(doc.keys).size).toBe(3_000);
    expect(doc.keys.every((k) => k.startsWith('key:'))).toBe(true);

    const l = limited.stdout.trimEnd().split('\n');
    expect(limited.code).toBe(0);
    expect(l).toHaveLength(100);
    expect(new Set(l).size).toBe(100);
    expect(json(limitedJson)).toMatchObject({ count: 5, complete: false });
  });

  it('stats and health: tables and JSON; health exits 0 when ok', async () => {
    const [st, stj, h, hj] = await Promise.all([
      px.cli(['stats']),
      px.cli(['--json', 'stats']),
      px.cli(['health']),
      px.cli(['--json', 'health']),
    ]);
    expect(st.code).toBe(0);
    const t = tableRows(
      st.stdout,
      /^NODE\s+MEMBERSHIP\s+HEALTHY\s+KEYS\s+MEMORY\s+HITS\s+MISSES\s+OPS\/S\s+CLIENTS$/,
    );
    expect(t.rows).toHaveLength(4);
    expect(t.rows[3]).toMatch(/^total\s+3 nodes\s+3\/3\s+3,010\s/);
    for (const r of t.rows) expect(r.length).toBe(t.header.length);
    expect(st.stdout).toMatch(
      /\nproxy: [\d,]+ requests, hit ratio .+, up .+, ring v\d+ \([0-9a-f]{12}\), replication 1\n$/,
    );
    const s = json<Stats>(stj);
    expect(s.total.keys).toBe(3_010);
    expect(s.nodes.map((n) => n.keys ?? 0).reduce((a, b) => a + b, 0)).toBe(3_010);

    expect(h.code).toBe(0);
    expect(h.stdout.split('\n')[0]).toMatch(
      /^status: ok \(3\/3 ring nodes serving, ring v\d+, replication 1\)$/,
    );
    expect(
      tableRows(
        h.stdout,
        /^NODE\s+MEMBERSHIP\s+BREAKER\s+HEALTHY\s+CONNECTED\s+SINCE\s+LAST ERROR$/,
      ).rows,
    ).toHaveLength(3);
    expect(hj.code).toBe(0);
    expect(json<Health>(hj).status).toBe('ok');
  });

  it('ring owner agrees with the API, in both forms', async () => {
    const o = await client.owner('user:42');
    const [h, j] = await Promise.all([
      px.cli(['ring', 'owner', 'user:42']),
      px.cli(['--json', 'ring', 'owner', 'user:42']),
    ]);
    expect(h.code).toBe(0);
    const t = tableRows(h.stdout, /^KEY\s+NODE\s+HOME\s+REPLICAS\s+HASH\s+RING$/);
    expect(t.rows[0]?.split(/\s+/)).toEqual([
      'user:42',
      o.node,
      o.home,
      '-',
      String(o.hash),
      `v${o.ring_version}`,
    ]);
    expect(json(j)).toEqual(o);
  });

  it('flush: refuses without --yes off a terminal (exit 2), needs the token (exit 1), --yes flushes', async () => {
    await client.set('fl:1', 1);
    const refused = await px.cli(['flush']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'error USAGE: refusing to flush without --yes: stdin is not a terminal',
    );
    expect(refused.stderr).toContain('\nusage: dcache flush [--yes]\n');
    const anon = await dcache(['--url', px.url, 'flush', '--yes']);
    expect(anon.code).toBe(1);
    expect(oneErrorLine(anon, 'UNAUTHORIZED')).toContain('(pass --token or set DCACHE_TOKEN)');
    expect(await client.get('fl:1')).toBe(1);

    const ok = await dcache(['flush', '--yes'], {
      env: { DCACHE_URL: px.url, DCACHE_TOKEN: TOKEN },
    });
    expect(ok).toMatchObject({ code: 0, stdout: 'flushed 3 nodes\n' });
    expect(await client.exists('fl:1')).toBe(false);
    const j = await px.cli(['--json', 'flush', '-y']);
    expect(json(j)).toEqual({ flushed_nodes: 3, failed: {} });
  });

  it.skipIf(!hasScript)(
    'flush asks on a terminal: "no" keeps the data (exit 1), "yes" flushes',
    async () => {
      await client.set('fl:2', 2);
      const cmd = `node ${BIN} --url ${px.url} --token ${TOKEN} flush`;
      const no = await runProcess('script', ['-qfec', cmd, '/dev/null'], { input: 'no\n' });
      expect(plain(no.stdout)).toContain('Delete every key on 3 nodes behind');
      expect(plain(no.stdout)).toContain('error CANCELLED: nothing was flushed');
      expect(no.code).toBe(1);
      expect(await client.get('fl:2')).toBe(2);
      const yes = await runProcess('script', ['-qfec', cmd, '/dev/null'], { input: 'yes\n' });
      expect(plain(yes.stdout)).toContain('flushed 3 nodes');
      expect(yes.code).toBe(0);
      expect(await client.exists('fl:2')).toBe(false);
    },
  );

  it('bad arguments exit 2 with an error line and the command’s usage line', async () => {
    const cases: [string[], RegExp, string][] = [
      [[], /give a command/, 'dcache <command>'],
      [['bogus'], /Unknown argument: bogus/, 'dcache <command>'],
      [['ring'], /give a ring command/, 'dcache ring'],
      [['ring', 'add'], /Not enough non-option arguments/, 'dcache ring add <address>'],
      [
        ['ring', 'add', 'h:1', '--weight', 'abc'],
        /--weight must be a positive integer, got "abc"/,
        'dcache ring add <address>',
      ],
      [['ring', 'plan', 'add', 'no port here'], /no port/, 'dcache ring plan add <address>'],
      [['get'], /Not enough non-option arguments/, 'dcache get <key>'],
      [['get', 'a', 'b'], /Unknown argument: b/, 'dcache get <key>'],
      [['keys', '--limit', '0'], /--limit must be a positive integer/, 'dcache keys'],
      [
        ['keys', '--page-size', '20000'],
        /--page-size must be an integer from 1 to 10000/,
        'dcache keys',
      ],
      [['--timeout', 'soon', 'stats'], /--timeout "soon" is not a duration/, 'dcache stats'],
      [['--url', 'ftp://x:1', 'stats'], /only http and https/, 'dcache stats'],
      [['set', 'k'], /no value on stdin/, 'dcache set <key> [value]'],
      [['stats', '--nope'], /Unknown argument: nope/, 'dcache stats'],
    ];
    const runs = await Promise.all(cases.map(([args]) => dcache(['--url', px.url, ...args])));
    for (const [i, r] of runs.entries()) {
      const [args, message, usage] = cases[i] as [string[], RegExp, string];
      const what = `dcache ${args.join(' ')}:\n${r.stderr}`;
      expect(r.code, what).toBe(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0], what).toMatch(/^error USAGE: /);
      expect(lines[0], what).toMatch(message);
      expect(lines[1], what).toMatch(new RegExp(`^usage: ${usage.replace(/[[\]<>]/g, '\\$&')}`));
      expect(lines[2], what).toMatch(/^run 'dcache.* --help' for the options$/);
      expect(r.stdout, what).toBe('');
    }
    const j = await dcache(['--json', 'ring', 'add']);
    expect(j.code).toBe(2);
    expect(json(j)).toMatchObject({
      error: { code: 'USAGE', usage: 'dcache ring add <address> [--weight N] [--id NAME]' },
    });
  });

  it('an unreachable URL or a silent server exits 1 with one clear line', async () => {
    const port = await freePort(); // nothing listens there
    const url = `http://127.0.0.1:${port}`;
    const [a, b, c] = await Promise.all([
      dcache(['--url', url, 'ring', 'list']),
      dcache(['get', 'k'], { env: { DCACHE_URL: url } }),
      dcache(['--json', '--url', url, 'health']),
    ]);
    for (const r of [a, b]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r, 'UNREACHABLE')).toBe(
        `error UNREACHABLE: cannot connect to ${url} (ECONNREFUSED): is the proxy running? (set --url or DCACHE_URL)`,
      );
    }
    expect(c.code).toBe(1);
    expect(json(c)).toMatchObject({ error: { code: 'UNREACHABLE' } });
    // keys --json streams one document: a failure ends it with an "error" member, still one JSON.
    const k = await dcache(['--json', '--url', url, 'keys']);
    expect(k.code).toBe(1);
    expect(json(k)).toEqual({
      keys: [],
      count: 0,
      complete: false,
      skipped_nodes: [],
      error: { code: 'UNREACHABLE', message: expect.stringContaining(url) },
    });
    oneErrorLine(k, 'UNREACHABLE');

    const sockets = new Set<Socket>();
    const silent: Server = createServer(() => {});
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const t = await dcache(['--url', silentUrl, '--timeout', '300ms', 'stats']);
      expect(t.code).toBe(1);
      expect(oneErrorLine(t, 'TIMEOUT')).toBe(
        `error TIMEOUT: no answer from ${silentUrl} within 300 ms (raise --timeout)`,
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('colour: off when piped, on with FORCE_COLOR, and --no-color / NO_COLOR win', async () => {
    const [piped, forced, noColor, noColorEnv] = await Promise.all([
      px.cli(['health']),
      px.cli(['health'], { env: { FORCE_COLOR: '1' } }),
      px.cli(['--no-color', 'health'], { env: { FORCE_COLOR: '1' } }),
      px.cli(['health'], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } }),
    ]);
    expect(hasAnsi(piped.stdout)).toBe(false);
    expect(forced.stdout).toContain('\u001b[32mok\u001b[0m');
    expect(hasAnsi(noColor.stdout)).toBe(false);
    expect(hasAnsi(noColorEnv.stdout)).toBe(false);
    expect(plain(forced.stdout)).toBe(piped.stdout);
  });

  it.skipIf(!hasScript)(
    'keys shows a progress indicator on a terminal, never with --json',
    async () => {
      const keys = Array.from({ length: 400 }, (_, i) => `pg:${i}`);
      await client.flush();
      await client.batchSet(Object.fromEntries(keys.map((k) => [k, { value: 1 }])));
      const cmd = (extra: string) => `node ${BIN} --url ${px.url} ${extra} keys --page-size 50`;
      const [tty, ttyJson] = await Promise.all([
        runProcess('script', ['-qfec', cmd(''), '/dev/null']),
        runProcess('script', ['-qfec', cmd('--json'), '/dev/null']),
      ]);
      expect(tty.code).toBe(0);
      expect(tty.stdout).toMatch(/\d+\/400 keys \| page \d+/); // the bar, redrawn in place
      expect(plain(tty.stdout)).toContain('400 keys');
      // A redraw puts the bar and the next key on one line: keys are what ends with a newline.
      const listed = plain(tty.stdout).match(/pg:\d+(?=\r?\n)/g) ?? [];
      expect(listed).toHaveLength(400);
      expect(new Set(listed)).toEqual(new Set(keys));
      expect(ttyJson.stdout).not.toMatch(/keys \| page/);
      expect(JSON.parse(plain(ttyJson.stdout).trim())).toMatchObject({
        count: 400,
        complete: true,
      });
    },
  );

  it('shell completion comes from yargs', async () => {
    const [script, ring, top, help] = await Promise.all([
      dcache(['completion']),
      dcache(['--get-yargs-completions', 'dcache', 'ring', '']),
      dcache(['--get-yargs-completions', 'dcache', '']),
      dcache(['--help']),
    ]);
    expect(script.code).toBe(0);
    expect(script.stdout).toContain('###-begin-dcache-completions-###');
    expect(script.stdout).toContain('--get-yargs-completions');
    expect(ring.stdout.split('\n')).toEqual(
      expect.arrayContaining([
        'list',
        'add',
        'remove',
        'drain',
        'activate',
        'weight',
        'owner',
        'apply',
        'plan',
      ]),
    );
    expect(top.stdout.split('\n')).toEqual(
      expect.arrayContaining([
        'ring',
        'get',
        'set',
        'del',
        'exists',
        'batch',
        'keys',
        'stats',
        'health',
        'flush',
        'serve',
        'dev',
        'completion',
      ]),
    );
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(
      'Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not found, 130 interrupted.',
    );
  });

  it('`npx dcache` runs the built binary from the repository root', async () => {
    const r = await runProcess('npx', ['--no-install', 'dcache', '--version'], { timeout: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('0.1.0');
  });
});

describe('dcache health exits 1 when degraded or down', () => {
  let px: ProxyFixture;

  beforeAll(async () => {
    px = await startProxy(2, {
      DC_HEALTH_INTERVAL: '300ms',
      DC_HEALTH_TIMEOUT: '300ms',
      DC_HEALTH_FAILURE_THRESHOLD: '2',
    });
  });
  afterAll(async () => {
    await px?.stop();
  });

  it('degraded with one of two nodes dead, down with both', async () => {
    const [a, b] = px.cluster.nodes;
    if (!a || !b) throw new Error('two nodes expected');
    await a.kill();
    const probe = new DcacheClient({ url: px.url });
    await waitFor(async () => (await probe.health()).status === 'degraded', {
      timeout: 10_000,
      message: 'degraded',
    });
    const [h, j] = await Promise.all([px.cli(['health']), px.cli(['--json', 'health'])]);
    expect(h.code).toBe(1);
    expect(h.stdout.split('\n')[0]).toMatch(/^status: degraded \(1\/2 ring nodes serving/);
    expect(plain(h.stdout)).toMatch(new RegExp(`${a.address}\\s+active\\s+open\\s+no`));
    expect(j.code).toBe(1);
    expect(json<Health>(j).status).toBe('degraded');

    await b.kill();
    await waitFor(async () => (await probe.health()).status === 'down', {
      timeout: 10_000,
      message: 'down',
    });
    const down = await px.cli(['--json', 'health']);
    expect(down.code).toBe(1);
    expect(json<Health>(down).status).toBe('down');
    await probe.close();
  });
});
