// Issue 15, part 7 (compose without open doors): scripts/check-deploy-secrets.mjs, which
// scripts/check-deploy.sh runs in CI, passes the shipped docker-compose.yml and fails each
// door the 2026-12-02 review found open (C1-C3, D1) when it is put back into a copy.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHECKER = join(REPO_ROOT, 'scripts/check-deploy-secrets.mjs');
const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');
const ENV_EXAMPLE = join(REPO_ROOT, '.env.example');
const COMPOSE = readFileSync(COMPOSE_FILE, 'utf8');

const dir = mkdtempSync(join(tmpdir(), 'dcache-check-deploy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  out: string;
}

/** Runs the checker as check-deploy.sh does: `node check-deploy-secrets.mjs [args] FILE`. */
function check(file: string, args: readonly string[] = []): Run {
  const r = spawnSync(process.execPath, [CHECKER, ...args, file], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * `text` with its one match of `from` replaced by `to` (String.replace patterns: `$&`, `$1`).
 * Throws when `from` does not match exactly once: the shipped file changed and the mutation
 * must follow it, rather than the test passing on an unmutated copy.
 */
function mutate(text: string, from: string | RegExp, to: string): string {
  const re =
    typeof from === 'string'
      ? new RegExp(from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g')
      : new RegExp(from.source, `${from.flags.replace('g', '')}g`);
  const n = text.match(re)?.length ?? 0;
  if (n !== 1) throw new Error(`mutation: expected exactly one match of ${re}, found ${n}`);
  return text.replace(re, to);
}

let copies = 0;
/** Writes `text` to a new compose file in the temp dir and checks it. */
function checkText(text: string, args: readonly string[] = []): Run {
  const file = join(dir, `docker-compose.${++copies}.yml`);
  writeFileSync(file, text);
  return check(file, args);
}

/** A compose interpolation, `${inner}` (built so that it does not read as a JS template). */
const interp = (inner: string) => '$' + '{' + inner + '}';

const failures = (out: string) => out.split('\n').filter((l) => l.startsWith('FAIL '));

describe('scripts/check-deploy-secrets.mjs', () => {
  it('passes the shipped docker-compose.yml against the shipped .env.example', () => {
    const r = check(COMPOSE_FILE, ['--env-example', ENV_EXAMPLE]);
    expect(r.out).not.toMatch(/FAIL/);
    expect(r.status).toBe(0);
    // Every secret compose needs is required, and named in the summary.
    for (const name of [
      'DC_CACHE_PASSWORD',
      'DC_ADMIN_TOKEN',
      'DC_CLUSTER_TOKEN',
      'GRAFANA_ADMIN_PASSWORD',
      'REDIS_COMMANDER_PASSWORD',
    ]) {
      expect(r.out).toContain(name);
    }
  });

  const doors: {
    name: string;
    text: () => string;
    want: RegExp[];
  }[] = [
    {
      name: 'a Redis port published on the host',
      text: () =>
        mutate(COMPOSE, /^ {2}redis-1:\n {4}<<: \*redis\n/m, '$&    ports: ["6379:6379"]\n'),
      want: [/service redis-1: Redis port published on the host \(0\.0\.0\.0:6379->6379\)/],
    },
    {
      name: 'a Redis port published with the long syntax',
      text: () =>
        mutate(
          COMPOSE,
          /^ {2}redis-2:\n {4}<<: \*redis\n/m,
          '$&    ports:\n      - target: 6379\n        published: 6380\n',
        ),
      want: [/service redis-2: Redis port published on the host \(0\.0\.0\.0:6380->6379\)/],
    },
    {
      name: 'a `:-change-me` fallback on a token',
      text: () =>
        mutate(
          COMPOSE,
          /\$\{DC_CLUSTER_TOKEN:\?[^}]*\}/,
          interp('DC_CLUSTER_TOKEN:-change-me-cluster-token'),
        ),
      want: [
        /secret DC_CLUSTER_TOKEN has a default \("\$\{DC_CLUSTER_TOKEN:-change-me-cluster-token\}"\)/,
        /placeholder credential/,
      ],
    },
    {
      name: 'a literal Grafana admin password',
      text: () => mutate(COMPOSE, /^( +GF_SECURITY_ADMIN_PASSWORD:).*$/m, '$1 admin'),
      want: [/service grafana: GF_SECURITY_ADMIN_PASSWORD has a literal value \("admin"\)/],
    },
    {
      name: 'a default admin password in a fallback (admin/admin)',
      text: () =>
        mutate(
          COMPOSE,
          /\$\{REDIS_COMMANDER_PASSWORD:\?[^}]*\}/,
          interp('REDIS_COMMANDER_PASSWORD:-admin'),
        ),
      want: [/secret REDIS_COMMANDER_PASSWORD has a default/],
    },
    {
      name: 'a proxy port published directly',
      text: () => mutate(COMPOSE, '"127.0.0.1:8080:8080"', '"8080:8080"'),
      want: [/service cache-server: proxy port published directly \(0\.0\.0\.0:8080->8080\)/],
    },
    {
      name: 'a proxy published on every interface by an explicit 0.0.0.0',
      text: () => mutate(COMPOSE, '"127.0.0.1:8082:8080"', '"0.0.0.0:8082:8080"'),
      want: [/service cache-server-2: proxy port published directly \(0\.0\.0\.0:8082->8080\)/],
    },
    {
      name: "Prometheus's lifecycle API",
      text: () =>
        mutate(
          COMPOSE,
          /^( +)- --storage\.tsdb\.retention\.time=7d\n/m,
          '$&$1- --web.enable-lifecycle\n',
        ),
      want: [/service prometheus: --web\.enable-lifecycle lets anyone/],
    },
    {
      name: 'DC_ADMIN_TOKEN without `:?`',
      text: () => mutate(COMPOSE, /\$\{DC_ADMIN_TOKEN:\?[^}]*\}/, interp('DC_ADMIN_TOKEN')),
      want: [/secret DC_ADMIN_TOKEN is used without ":\?" \("\$\{DC_ADMIN_TOKEN\}"\)/],
    },
    {
      name: 'a Redis node without --requirepass',
      text: () => mutate(COMPOSE, /^ +- --requirepass\n +- \$\{DC_CACHE_PASSWORD:\?[^}]*\}\n/m, ''),
      want: [/service redis-1: Redis runs without a password/],
    },
    {
      name: 'proxies that do not trust nginx',
      text: () => mutate(COMPOSE, /^ +DC_SERVER_TRUSTED_PROXIES: .*\n/m, ''),
      want: [/service cache-server: DC_SERVER_TRUSTED_PROXIES \(unset\) does not include nginx's/],
    },
  ];

  it.each(doors)('fails on $name, naming the problem', ({ text, want }) => {
    const r = checkText(text());
    expect(r.status, r.out).toBe(1);
    for (const re of want) expect(r.out).toMatch(re);
    // Only the mutation is reported (plus, for a placeholder, its second angle).
    expect(failures(r.out).length, r.out).toBeLessThanOrEqual(3);
  });

  it('accepts a Redis port published on 127.0.0.1 only (a debugging profile)', () => {
    const text = mutate(
      COMPOSE,
      /^ {2}redis-1:\n {4}<<: \*redis\n/m,
      '$&    ports: ["127.0.0.1:6379:6379"]\n',
    );
    const r = checkText(text);
    expect(r.out).not.toMatch(/FAIL/);
    expect(r.status).toBe(0);
  });

  it('fails an .env.example that gives a secret a value, or misses a variable', () => {
    const example = readFileSync(ENV_EXAMPLE, 'utf8');
    const withValue = join(dir, 'env.with-value');
    writeFileSync(withValue, mutate(example, /^DC_ADMIN_TOKEN=$/m, 'DC_ADMIN_TOKEN=change-me'));
    let r = check(COMPOSE_FILE, ['--env-example', withValue]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/\.env\.example gives secret DC_ADMIN_TOKEN a value/);

    const missing = join(dir, 'env.missing');
    writeFileSync(missing, mutate(example, /^GRAFANA_ADMIN_PASSWORD=\n/m, ''));
    r = check(COMPOSE_FILE, ['--env-example', missing]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/\.env\.example does not list GRAFANA_ADMIN_PASSWORD/);
  });

  it('answers 2, not a pass, on a file that is not YAML', () => {
    const r = checkText('services: [\n');
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/not valid YAML/);
  });
});
