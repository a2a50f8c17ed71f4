import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCurl, runCurl } from './curl.js';
import { startProxy, type TestProxy } from './helpers.js';

const API_MD = fileURLToPath(new URL('../../../docs/api.md', import.meta.url));
const VARS = { DC_ADMIN_TOKEN: 'my-admin-token' };

/** One curl example of docs/api.md: the command, the status after `# →`, the JSON shown below. */
interface Example {
  line: number;
  cmd: string;
  status: number | undefined;
  body: unknown;
}

/**
 * The curl commands of every ```bash block, in order. A command runs until its quotes close and
 * no line ends with a backslash. A ```json block right after a bash block is the body of that
 * block's last command (```jsonc blocks are illustrations and are not compared).
 */
function examples(md: string): Example[] {
  const out: Example[] = [];
  const lines = md.split('\n');
  let lastBash: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i] as string);
    if (!fence) continue;
    const lang = fence[1];
    const start = i + 1;
    let end = start;
    while (end < lines.length && !(lines[end] as string).startsWith('```')) end++;
    const block = lines.slice(start, end);
    if (lang === 'bash') {
      lastBash = [];
      for (let j = 0; j < block.length; j++) {
        const l = block[j] as string;
        if (l.startsWith('curl ')) {
          let cmd = l;
          while (
            (cmd.endsWith('\\') || (cmd.match(/'/g)?.length ?? 0) % 2 === 1) &&
            j + 1 < block.length
          ) {
            cmd += `\n${block[++j]}`;
          }
          const ex: Example = { line: start + j + 1, cmd, status: undefined, body: undefined };
          lastBash.push(ex);
          out.push(ex);
        } else {
          const st = /^# → (\d{3})$/.exec(l.trim());
          const last = lastBash[lastBash.length - 1];
          if (st && last) last.status = Number(st[1]);
        }
      }
    } else if (lang === 'json') {
      const last = lastBash[lastBash.length - 1];
      if (last && last.body === undefined) last.body = JSON.parse(block.join('\n'));
      lastBash = [];
    } else {
      lastBash = [];
    }
    i = end;
  }
  return out;
}

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  proxy = await startProxy(cluster.addresses, VARS);
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

describe('docs/api.md', () => {
  const md = readFileSync(API_MD, 'utf8');
  const list = examples(md);

  it('has a checked status for every curl example and parses each one', () => {
    expect(list.length).toBeGreaterThan(25);
    for (const ex of list) {
      expect(ex.status, `docs/api.md:${ex.line} has no "# → status"`).toBeTypeOf('number');
      expect(() => parseCurl(ex.cmd, VARS)).not.toThrow();
    }
    expect(list.filter((ex) => ex.body !== undefined).length).toBeGreaterThan(15);
  });

  it('every curl example works as documented, in order', async () => {
    for (const ex of list) {
      const res = await runCurl(ex.cmd, proxy.url, VARS);
      const where = `docs/api.md:${ex.line}: ${ex.cmd.split('\n')[0]}`;
      expect(res.status, `${where} → ${res.text.slice(0, 300)}`).toBe(ex.status);
      if (ex.body !== undefined) expect(res.body, where).toEqual(ex.body);
      if (parseCurl(ex.cmd, VARS).method === 'HEAD') expect(res.text).toBe('');
    }
  });

  it('documents every route the OpenAPI document lists', async () => {
    const doc = (await proxy.req('GET', '/openapi.json')).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        expect(md, `${method.toUpperCase()} ${path}`).toContain(`${method.toUpperCase()} ${path}`);
      }
    }
  });
});
