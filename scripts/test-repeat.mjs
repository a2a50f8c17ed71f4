#!/usr/bin/env node
// Runs the test suite (or part of it) N times and prints how often each test failed.
// Usage: npm run test:repeat -- N [path-or-filter ...]
//   npm run test:repeat -- 5                       every workspace's tests, 5 times
//   npm run test:repeat -- 10 test/faults test/membership
//   taskset -c 0 npm run test:repeat -- 10 test/reliability   (one core: a slower machine)
// A filter that starts with a workspace folder (packages/proxy, test, ...) runs only there, with
// the rest of the path as vitest's file filter; any other word is passed to every workspace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const WORKSPACES = [
  'packages/ring',
  'packages/test-utils',
  'packages/proxy',
  'packages/client',
  'packages/cli',
  'test',
];

const [countArg, ...filters] = process.argv.slice(2);
const runs = Number(countArg);
if (!Number.isInteger(runs) || runs < 1) {
  console.error('usage: npm run test:repeat -- N [path-or-filter ...]   (N: runs, at least 1)');
  process.exit(2);
}

/** Which workspaces run, each with its vitest file filters. */
function plan() {
  if (filters.length === 0) return WORKSPACES.map((dir) => ({ dir, args: [] }));
  const byDir = new Map();
  const everywhere = [];
  for (const f of filters) {
    const rel = relative(root, resolve(root, f));
    const ws = WORKSPACES.filter((w) => rel === w || rel.startsWith(`${w}/`)).sort(
      (a, b) => b.length - a.length,
    )[0];
    if (ws === undefined) everywhere.push(f);
    else {
      const rest = relative(ws, rel);
      const args = byDir.get(ws) ?? [];
      if (rest !== '') args.push(rest);
      byDir.set(ws, args);
    }
  }
  if (everywhere.length > 0)
    for (const w of WORKSPACES) byDir.set(w, [...(byDir.get(w) ?? []), ...everywhere]);
  // A workspace named alone (no file filter) runs whole.
  return [...byDir].map(([dir, args]) => ({ dir, args }));
}

const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const work = mkdtempSync(join(tmpdir(), 'dcache-repeat-'));
/** test id → { runs, failed, message } */
const tally = new Map();
const perRun = [];
const t0 = Date.now();
try {
  for (let run = 1; run <= runs; run++) {
    let failedThisRun = 0;
    const started = Date.now();
    for (const { dir, args } of plan()) {
      const out = join(work, `${run}-${dir.replaceAll('/', '_')}.json`);
      const r = spawnSync(
        'npx',
        ['vitest', 'run', '--reporter=dot', '--reporter=json', `--outputFile.json=${out}`, ...args],
        { cwd: join(root, dir), stdio: ['ignore', 'inherit', 'inherit'], env: process.env },
      );
      let report;
      try {
        report = JSON.parse(readFileSync(out, 'utf8'));
      } catch {
        // No report: vitest itself failed (a crash, a bad filter); count it against the workspace.
        const id = `${dir} (vitest exited ${r.status} without a report)`;
        const t = tally.get(id) ?? { runs: 0, failed: 0, message: '' };
        t.runs++;
        t.failed++;
        tally.set(id, t);
        failedThisRun++;
        continue;
      }
      for (const file of report.testResults ?? []) {
        const fileName = relative(root, file.name);
        for (const a of file.assertionResults ?? []) {
          if (a.status === 'skipped' || a.status === 'pending' || a.status === 'todo') continue;
          const id = `${fileName} > ${a.fullName}`;
          const t = tally.get(id) ?? { runs: 0, failed: 0, message: '' };
          t.runs++;
          if (a.status !== 'passed') {
            t.failed++;
            failedThisRun++;
            t.message = String(a.failureMessages?.[0] ?? a.status)
              .split('\n')[0]
              .slice(0, 160);
          }
          tally.set(id, t);
        }
        // A file that failed outside its tests (a hook, an import) has no failed assertion.
        if (
          file.status === 'failed' &&
          (file.assertionResults ?? []).every((a) => a.status !== 'failed')
        ) {
          const id = `${fileName} (file: ${String(file.message ?? '').slice(0, 120)})`;
          const t = tally.get(id) ?? { runs: 0, failed: 0, message: '' };
          t.runs++;
          t.failed++;
          failedThisRun++;
          tally.set(id, t);
        }
      }
    }
    const secs = Math.round((Date.now() - started) / 1000);
    perRun.push({ run, failed: failedThisRun, secs });
    console.log(
      `\n[test:repeat] run ${run}/${runs}: ${failedThisRun} failed test(s) in ${secs} s\n`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const tests = [...tally.values()];
const flaky = [...tally].filter(([, t]) => t.failed > 0).sort((a, b) => b[1].failed - a[1].failed);
console.log(
  `\n[test:repeat] ${runs} run(s), ${tally.size} tests, ${Math.round((Date.now() - t0) / 1000)} s`,
);
console.log(`runs: ${perRun.map((r) => `#${r.run} ${r.failed} failed (${r.secs} s)`).join(', ')}`);
if (flaky.length === 0) {
  console.log(
    `every test passed in every run (${tests.reduce((a, t) => a + t.runs, 0)} test runs)`,
  );
} else {
  console.log('failures per test:');
  for (const [id, t] of flaky) console.log(`  ${t.failed}/${t.runs}  ${id}\n         ${t.message}`);
}
process.exit(flaky.length === 0 ? 0 : 1);
