#!/usr/bin/env node
// Writes packages/proxy/config.example.yaml and the settings table of docs/configuration.md
// from SETTINGS (run after `npm run build -w @dcache/proxy`):
//   node packages/proxy/scripts/gen-config-example.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { envName, flagName, SETTINGS } from '../dist/config.js';
import { formatDuration } from '../dist/duration.js';

/** YAML text of one default value. */
function yamlValue(s) {
  const d = s.def;
  if (Array.isArray(d)) return `[${d.map((x) => JSON.stringify(x)).join(', ')}]`;
  if (s.kind === 'duration') return formatDuration(d);
  if (typeof d === 'string') return JSON.stringify(d);
  return String(d);
}

/** The whole example file. */
export function render() {
  const lines = [
    '# dcache proxy configuration: every setting with its default.',
    '#',
    '# Use it with `--config config.yaml` or `DC_CONFIG=config.yaml`.',
    '# Precedence: command-line flags > environment (DC_*) > this file > defaults.',
    '# Durations: "500ms", "30s", "1m", "1h30m" (a bare number is seconds).',
    '# Sizes: bytes, or "512kb", "1mb", "1gb".',
    '# Generated from SETTINGS (packages/proxy/src/config.ts) by scripts/gen-config-example.mjs.',
  ];
  let section = '';
  for (const s of SETTINGS) {
    const [sec, key] = s.path.split('.');
    if (sec !== section) {
      lines.push('', `${sec}:`);
      section = sec;
    }
    const extra = [];
    if (s.values) extra.push(`one of ${s.values.join(', ')}`);
    if (s.min !== undefined && s.kind !== 'duration') extra.push(`min ${s.min}`);
    if (s.max !== undefined) extra.push(`max ${s.max}`);
    if (s.secret) extra.push('secret: never logged');
    lines.push(`  # ${s.doc}.`);
    lines.push(
      `  # env ${envName(s.path)}, flag --${flagName(s.path)}${extra.map((x) => `; ${x}`).join('')}`,
    );
    lines.push(`  ${key}: ${yamlValue(s)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Default as the docs show it. */
function docDefault(s) {
  const d = s.def;
  if (Array.isArray(d)) return d.length ? `\`${d.join(',')}\`` : '(none)';
  if (s.kind === 'duration') return `\`${formatDuration(d)}\``;
  if (d === '') return '(empty)';
  return `\`${d}\``;
}

/** The Markdown table of every setting, one section per YAML section. */
export function renderTable() {
  const out = [];
  let section = '';
  for (const s of SETTINGS) {
    const [sec] = s.path.split('.');
    if (sec !== section) {
      if (section) out.push('');
      out.push(
        `### \`${sec}\``,
        '',
        '| YAML key | env | flag | default | meaning |',
        '|---|---|---|---|---|',
      );
      section = sec;
    }
    const extra = [];
    if (s.values) extra.push(`one of ${s.values.map((v) => `\`${v}\``).join(', ')}`);
    if (s.kind !== 'duration' && s.min !== undefined && s.max !== undefined)
      extra.push(`${s.min}–${s.max}`);
    else if (s.kind !== 'duration' && s.min !== undefined && s.min > 0)
      extra.push(`at least ${s.min}`);
    if (s.kind === 'duration') extra.push('duration');
    if (s.kind === 'bytes') extra.push('size');
    if (s.secret) extra.push('secret, never logged');
    const doc = `${s.doc.replaceAll('|', '\\|')}${extra.length ? ` (${extra.join('; ')})` : ''}`;
    out.push(
      `| \`${s.path}\` | \`${envName(s.path)}\` | \`--${flagName(s.path)}\` | ${docDefault(s)} | ${doc} |`,
    );
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = fileURLToPath(new URL('../config.example.yaml', import.meta.url));
  writeFileSync(out, render());
  process.stdout.write(`wrote ${out}\n`);
  const docs = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));
  const text = readFileSync(docs, 'utf8');
  const start = '<!-- settings:start -->';
  const end = '<!-- settings:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${docs} has no ${start} … ${end} region`);
  writeFileSync(docs, `${text.slice(0, a + start.length)}\n${renderTable()}\n${text.slice(b)}`);
  // The repo's formatter aligns the table; without this the lint step of CI fails after a regen.
  execFileSync('npx', ['biome', 'format', '--write', docs], { stdio: 'ignore' });
  process.stdout.write(`wrote the settings table of ${docs}\n`);
}
