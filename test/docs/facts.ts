import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCli, Session } from '@dcache/cli';
import { createMetrics, ERROR_CODES, envName, flagName, SETTINGS } from '@dcache/proxy';
import { ROOT, walk } from './markdown.js';

/** Names the code defines, which the docs may name. */
export interface Facts {
  /** Every series name /metrics can expose (histograms with _bucket, _sum and _count). */
  metrics: Set<string>;
  /** The proxy's error catalogue (packages/proxy/src/errors.ts). */
  apiCodes: Set<string>;
  /** Codes the CLI reports besides the catalogue's (its own and the client's network codes). */
  cliCodes: Set<string>;
  /** DC_* names of every setting, aliases included. */
  envNames: Set<string>;
  /** The aliases alone. */
  envAliases: Set<string>;
  /** YAML keys of every setting (`server.port`). */
  configKeys: Set<string>;
  /** Flags of the proxy's own entry (`node packages/proxy/dist/main.js`, `npm start --`). */
  proxyFlags: Set<string>;
  /** `dcache` command paths ('' is the root) and the flags each accepts. */
  cliFlags: Map<string, Set<string>>;
  /** The text of every non-markdown source, config and script file (to find other tools' names). */
  corpus: string;
}

/** Help of `dcache ...path --help`, as yargs prints it. */
async function help(path: readonly string[]): Promise<string> {
  const y = await buildCli([...path, '--help'], new Session({}));
  let out = '';
  const log = console.log;
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  try {
    await y.parseAsync();
  } finally {
    console.log = log;
  }
  return out;
}

/** Every command path of the CLI with its flags, from the yargs definitions (`--help` of each). */
async function cliFlags(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const visit = async (path: string[]) => {
    const text = await help(path);
    const flags = new Set<string>();
    for (const m of text.matchAll(/^\s+(?:-\w, )?--([a-z][a-z0-9-]*)/gm)) flags.add(m[1] as string);
    out.set(path.join(' '), flags);
    const commands = text.split(/^Commands:$/m)[1]?.split(/^\S.*:$/m)[0] ?? '';
    for (const m of commands.matchAll(/^\s+dcache ((?:[a-z][a-z-]* ?)+)/gm)) {
      const sub = (m[1] as string).trim().split(' ');
      if (sub.length === path.length + 1 && sub.slice(0, -1).join(' ') === path.join(' '))
        await visit(sub);
    }
  };
  await visit([]);
  return out;
}

/** Codes the CLI's sources can report: CommandError codes, `code: 'X'`, `error X` notes. */
function cliSourceCodes(): Set<string> {
  const out = new Set<string>();
  const files = [
    ...walk('packages/cli/src', (n) => n.endsWith('.ts')),
    ...walk('packages/client/src', (n) => n.endsWith('.ts')),
  ];
  for (const f of files) {
    const t = readFileSync(join(ROOT, f), 'utf8');
    for (const re of [
      /CommandError\(\s*'([A-Z_]+)'/g,
      /\bcode: '([A-Z_]+)'/g,
      /'error ([A-Z_]+)'/g,
      /\| '([A-Z_]+)'/g,
      /readonly code = '([A-Z_]+)'/g,
    ])
      for (const m of t.matchAll(re)) out.add(m[1] as string);
  }
  return out;
}

/** Load every fact from the built packages and the sources. */
export async function loadFacts(): Promise<Facts> {
  const { register } = createMetrics();
  const metrics = new Set<string>();
  for (const m of await register.getMetricsAsJSON()) {
    metrics.add(m.name);
    const type = String(m.type);
    if (type === 'histogram' || type === 'summary')
      for (const s of ['_bucket', '_sum', '_count']) metrics.add(m.name + s);
  }
  const envAliases = new Set<string>(
    SETTINGS.flatMap((s) => [...((s as { envAliases?: readonly string[] }).envAliases ?? [])]),
  );
  const corpusFiles = [
    ...walk('packages', (n) => /\.(ts|mjs|js|json|ya?ml)$/.test(n)),
    ...walk('test', (n) => /\.(ts|mjs|js|json)$/.test(n)),
    ...walk('bench', (n) => /\.(ts|mjs|js|json|sh)$/.test(n)),
    ...walk('scripts', () => true),
    ...walk('docker', () => true),
    ...walk('deploy', () => true),
    ...walk('.ci', () => true),
    'docker-compose.yml',
    'package.json',
    '.env.example',
  ].filter((f) => !f.startsWith('test/docs/'));
  let corpus = '';
  for (const f of corpusFiles) {
    try {
      corpus += `${readFileSync(join(ROOT, f), 'utf8')}\n`;
    } catch {
      // A file listed by a walk that another process removed meanwhile.
    }
  }
  return {
    metrics,
    apiCodes: new Set(ERROR_CODES),
    cliCodes: cliSourceCodes(),
    envNames: new Set([...SETTINGS.map((s) => envName(s.path)), ...envAliases, 'DC_CONFIG']),
    envAliases,
    configKeys: new Set(SETTINGS.map((s) => s.path)),
    proxyFlags: new Set([
      ...SETTINGS.map((s) => flagName(s.path).replace(/^--/, '')),
      'config',
      'help',
      'version',
    ]),
    cliFlags: await cliFlags(),
    corpus,
  };
}
