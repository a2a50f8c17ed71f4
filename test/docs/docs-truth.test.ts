import { ERRORS } from '@dcache/proxy';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Facts, loadFacts } from './facts.js';
import {
  anchors,
  brokenLink,
  type Markdown,
  parseMarkdown,
  relativeLinks,
  walk,
} from './markdown.js';

/**
 * Every markdown file of the repository. bench/results/ holds the reports `npm run bench` writes:
 * records of a past run that quote that run's output (flags and names of that version), so their
 * names are not held to today's code; their links are checked like everyone's.
 */
const ALL = walk('.', (n) => n.endsWith('.md'));
const HISTORICAL = (p: string) => p.startsWith('bench/results/');

/**
 * Names a page shows on purpose although the code does not define them, each with its reason.
 * Keep this list short: a name lands here only when the page says it is wrong or made up.
 */
const DELIBERATE: Record<string, string> = {
  DC_X: 'configuration.md: a placeholder for "any variable" in the empty-value rule',
  'no-such-flag': 'configuration.md: the error an unknown flag gets',
  STABLE_CODE: 'README.md: the placeholder of the error body shape',
  CODE: 'cli.md: the placeholder of the `error CODE: message` line',
  O_EXCL: "membership.md: the open(2) flag behind Node's 'wx'",
  REQUEST_TIMEOUT: 'reliability.md: a code proposed under "Open", not made yet',
  HEADERS_TOO_LARGE: 'reliability.md: a code proposed under "Open", not made yet',
};

/** `file:line: message` lines of every problem found. */
type Problems = string[];

let facts: Facts;
const docs = new Map<string, Markdown>();
const anchorCache = new Map<string, Set<string>>();

function doc(path: string): Markdown {
  let md = docs.get(path);
  if (!md) {
    md = parseMarkdown(path);
    docs.set(path, md);
  }
  return md;
}

function anchorsOf(path: string): Set<string> {
  let a = anchorCache.get(path);
  if (!a) {
    a = anchors(doc(path));
    anchorCache.set(path, a);
  }
  return a;
}

/** Whether `name` occurs as a whole word in a source, config or script file. */
function inCorpus(name: string): boolean {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![\\w-])${esc}(?![\\w-])`).test(facts.corpus);
}

/** Lines of a file with their numbers (fenced code included). */
function lines(md: Markdown): { line: number; text: string }[] {
  return md.text.split('\n').map((text, i) => ({ line: i + 1, text }));
}

const NAME_FILES = () => ALL.filter((p) => !HISTORICAL(p));

beforeAll(async () => {
  facts = await loadFacts();
  for (const p of ALL) doc(p);
});

describe('markdown tells the truth about the code', () => {
  it('finds the pages and the facts it checks them against (or it would prove nothing)', () => {
    for (const p of ['README.md', 'docs/api.md', 'docs/cli.md', 'docs/monitoring.md'])
      expect(ALL).toContain(p);
    expect(facts.metrics.has('dcache_http_requests_total')).toBe(true);
    expect(facts.metrics.size).toBeGreaterThan(30);
    expect(facts.apiCodes.has('KEY_NOT_FOUND')).toBe(true);
    expect(facts.cliCodes).toEqual(expect.objectContaining({}));
    for (const c of ['USAGE', 'UNREACHABLE', 'INTERNAL', 'ABORTED', 'INVALID_RING_FILE'])
      expect(facts.cliCodes.has(c), c).toBe(true);
    expect(facts.envNames.has('DC_SERVER_PORT')).toBe(true);
    expect(facts.proxyFlags.has('server-port')).toBe(true);
    expect(facts.cliFlags.get('ring apply')?.has('dry-run')).toBe(true);
    expect(facts.cliFlags.get('serve')?.has('cache-addresses')).toBe(true);
    expect(facts.cliFlags.size).toBeGreaterThan(20);
  });

  it('every relative link leads to a file, and every #anchor to a heading', () => {
    const problems: Problems = [];
    let checked = 0;
    for (const p of ALL) {
      for (const l of relativeLinks(doc(p))) {
        checked++;
        const why = brokenLink(p, l.target, anchorsOf);
        if (why) problems.push(`${p}:${l.line}: ${why}`);
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect(problems).toEqual([]);
  });

  it('every dcache_* metric named is one /metrics exposes', () => {
    const problems: Problems = [];
    let seen = 0;
    for (const p of NAME_FILES())
      for (const { line, text } of lines(doc(p)))
        for (const m of text.matchAll(/(?<![\w@/.-])dcache_[a-z0-9_]*[a-z0-9](?![\w.-])/g)) {
          seen++;
          if (!facts.metrics.has(m[0])) problems.push(`${p}:${line}: no metric ${m[0]}`);
        }
    expect(seen).toBeGreaterThan(50);
    expect(problems).toEqual([]);
  });

  it('every DC_* variable named is a setting (or an alias), a prefix of one, or read by a script or test', () => {
    const problems: Problems = [];
    const named = new Set<string>();
    for (const p of NAME_FILES())
      for (const { line, text } of lines(doc(p)))
        for (const m of text.matchAll(/(?<!\w)(DC_[A-Z0-9_]*[A-Z0-9])(_\*|_(?![\w]))?/g)) {
          const name = m[1] as string;
          named.add(name);
          if (m[2]) {
            if (![...facts.envNames].some((e) => e.startsWith(`${name}_`)))
              problems.push(`${p}:${line}: no setting starts with ${name}_`);
          } else if (!facts.envNames.has(name) && !(name in DELIBERATE) && !inCorpus(name))
            problems.push(`${p}:${line}: ${name} is no setting and nothing reads it`);
        }
    // The other way round: each setting, and each alias, is documented somewhere.
    for (const e of facts.envNames)
      if (!named.has(e)) problems.push(`${e} (a setting of config.ts) is in no markdown file`);
    expect(named.size).toBeGreaterThan(50);
    expect(problems).toEqual([]);
  });

  it('every config key named (`section.key`) is a setting', () => {
    const sections = new Set([...facts.configKeys].map((k) => k.split('.')[0] as string));
    const problems: Problems = [];
    for (const p of NAME_FILES())
      for (const { line, text } of doc(p).spans) {
        const m = /^([a-z_]+)\.([a-z_]+)(?::.*)?$/.exec(text);
        if (!m || !sections.has(m[1] as string)) continue;
        if (/^(ts|js|mjs|json|md|ya?ml|sh|conf)$/.test(m[2] as string)) continue;
        const key = `${m[1]}.${m[2]}`;
        if (!facts.configKeys.has(key)) problems.push(`${p}:${line}: no setting ${key}`);
      }
    expect(problems).toEqual([]);
  });

  it('every error code named is one the proxy or the CLI reports, with its documented status', () => {
    const known = (c: string) => facts.apiCodes.has(c) || facts.cliCodes.has(c) || c in DELIBERATE;
    const problems: Problems = [];
    for (const p of NAME_FILES()) {
      const md = doc(p);
      for (const { line, text } of lines(md)) {
        // CLI output and JSON error bodies.
        for (const m of text.matchAll(/\berror ([A-Z][A-Z0-9_]+)(?=:)/g))
          if (!known(m[1] as string)) problems.push(`${p}:${line}: no error code ${m[1]}`);
        for (const m of text.matchAll(/"code":\s*"([A-Z][A-Z0-9_]+)"/g))
          if (!known(m[1] as string)) problems.push(`${p}:${line}: no error code ${m[1]}`);
        // An HTTP status and the codes that answer with it: `409 \`NODE_EXISTS\``.
        for (const m of text.matchAll(
          /\b([1-5]\d\d)\s+`([A-Z][A-Z0-9_]+)`((?:\s*(?:,|\/|or|and)\s*`[A-Z][A-Z0-9_]+`)*)/g,
        )) {
          const status = Number(m[1]);
          const codes = [
            m[2] as string,
            ...[...(m[3] ?? '').matchAll(/`([A-Z0-9_]+)`/g)].map((x) => x[1] as string),
          ];
          for (const c of codes) {
            const e = (ERRORS as Record<string, { status: number }>)[c];
            if (!e) problems.push(`${p}:${line}: ${status} ${c}: no such code in the catalogue`);
            else if (e.status !== status)
              problems.push(`${p}:${line}: ${c} answers ${e.status}, the page says ${status}`);
          }
        }
      }
      // Any code-like name in backticks: a code, or a name some source or config defines.
      for (const { line, text } of md.spans) {
        if (!/^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(text) || text.startsWith('DC_')) continue;
        if (!known(text) && !(text in DELIBERATE) && !inCorpus(text))
          problems.push(`${p}:${line}: ${text} is no error code and nothing defines it`);
      }
    }
    // The CLI's own codes are listed in cli.md.
    const cli = doc('docs/cli.md').text;
    for (const c of facts.cliCodes)
      if (!facts.apiCodes.has(c) && !cli.includes(`\`${c}\``))
        problems.push(`docs/cli.md: the CLI reports ${c}, the page does not list it`);
    expect(problems).toEqual([]);
  });

  it('every flag of a dcache or proxy command line is one that command takes', () => {
    const all = new Set([...facts.cliFlags.values()].flatMap((s) => [...s]));
    const problems: Problems = [];
    const VALUE_GLOBALS = new Set(['url', 'token', 'timeout']);
    /** Check the words of a command line after `dcache`. */
    const checkDcache = (where: string, words: string[]) => {
      let path: string[] = [];
      let extending = true;
      const flags: string[] = [];
      for (let i = 0; i < words.length; i++) {
        const w = words[i] as string;
        const f = /^--([a-z][a-z0-9-]*)(=.*)?$/.exec(w);
        if (f) {
          flags.push(f[1] as string);
          if (VALUE_GLOBALS.has(f[1] as string) && !f[2]) i++;
          continue;
        }
        if (extending && facts.cliFlags.has([...path, w].join(' '))) path = [...path, w];
        else extending = false;
      }
      const allowed = facts.cliFlags.get(path.join(' ')) ?? all;
      for (const f of flags) {
        const base = f.startsWith('no-') && !allowed.has(f) ? f.slice(3) : f;
        if (!allowed.has(base) && !(f in DELIBERATE))
          problems.push(`${where}: dcache ${path.join(' ')} has no --${f}`);
      }
    };
    const checkProxy = (where: string, words: string[]) => {
      for (const w of words) {
        const f = /^--([a-z][a-z0-9-]*)/.exec(w);
        if (f && !facts.proxyFlags.has(f[1] as string) && !((f[1] as string) in DELIBERATE))
          problems.push(`${where}: the proxy has no --${f[1]}`);
      }
    };
    /** The words of a shell command up to its end (pipe, redirect, comment, `--`). */
    const words = (rest: string): string[] => {
      const out: string[] = [];
      for (const raw of rest.trim().split(/\s+/)) {
        if (/^(\||\|\||&&|;|>|>>|2>&1|#.*|--)$/.test(raw) || raw.startsWith('#')) break;
        out.push(raw.replace(/[),;:]+$/, ''));
      }
      return out;
    };
    for (const p of NAME_FILES()) {
      const md = doc(p);
      const texts = [...md.codeLines.map((c) => ({ line: c.line, text: c.text })), ...md.spans];
      for (const { line, text } of texts) {
        const where = `${p}:${line}`;
        for (const m of text.matchAll(/(?:^|[\s$(`|;&])(?:npx )?dcache (.*)$/g))
          checkDcache(where, words(m[1] as string));
        for (const m of text.matchAll(
          /(?:npm (?:run )?start --|node (?:packages\/proxy\/)?dist\/(?:main|start)\.js) (.*)$/g,
        ))
          checkProxy(where, words(m[1] as string));
      }
      // A flag on its own (`--weight N`): a flag of dcache or of the proxy, or of another tool
      // some script, test or config file uses (`--profile`, `--requirepass`, bench's `--quick`).
      for (const { line, text } of md.spans) {
        const f = /^--([a-z][a-z0-9-]*)/.exec(text);
        if (!f) continue;
        const name = f[1] as string;
        const base = name.replace(/^no-/, '');
        if (all.has(name) || all.has(base) || facts.proxyFlags.has(name)) continue;
        // Scripts that read `arg('duration')` name the flag without its dashes.
        if (name in DELIBERATE || inCorpus(`--${name}`) || inCorpus(`'${name}'`)) continue;
        problems.push(`${p}:${line}: --${name} is no flag of dcache, the proxy or a script here`);
      }
    }
    expect(problems).toEqual([]);
  });
});
