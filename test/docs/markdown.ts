import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', 'coverage', '.turbo']);

/** Every file under `dir` (repo-relative paths) whose name passes `keep`, skipping build output. */
export function walk(dir: string, keep: (name: string) => boolean): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) visit(join(d, e.name));
      } else if (keep(e.name)) out.push(relative(ROOT, join(d, e.name)));
    }
  };
  visit(join(ROOT, dir));
  return out.sort();
}

/** A markdown file split into its fenced code, its inline code spans and its prose. */
export interface Markdown {
  path: string;
  text: string;
  /** Lines of fenced code blocks, with their 1-based line numbers. */
  codeLines: { line: number; text: string; lang: string }[];
  /** Inline code spans outside fences, with their line numbers. */
  spans: { line: number; text: string }[];
  /** Text outside fences with inline code removed, line by line. */
  prose: { line: number; text: string }[];
}

/** Split a markdown file into fenced code lines, inline code spans and prose. */
export function parseMarkdown(path: string): Markdown {
  const text = readFileSync(join(ROOT, path), 'utf8');
  const md: Markdown = { path, text, codeLines: [], spans: [], prose: [] };
  let fence: string | undefined;
  let lang = '';
  text.split('\n').forEach((l, i) => {
    const line = i + 1;
    const f = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(l);
    if (fence) {
      if (f && l.trim().startsWith(fence)) fence = undefined;
      else md.codeLines.push({ line, text: l, lang });
      return;
    }
    if (f) {
      fence = f[1] as string;
      lang = f[2] ?? '';
      return;
    }
    for (const m of l.matchAll(/(`+)([^`]|[^`].*?[^`])\1(?!`)/g))
      md.spans.push({ line, text: (m[2] as string).trim() });
    md.prose.push({ line, text: l.replace(/(`+)([^`]|[^`].*?[^`])\1(?!`)/g, ' ') });
  });
  return md;
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors a markdown file defines: its headings (duplicates get -1, -2…) and `<a id/name>`. */
export function anchors(md: Markdown): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const lines = md.text.split('\n');
  const codeAt = new Set(md.codeLines.map((c) => c.line));
  lines.forEach((l, i) => {
    if (codeAt.has(i + 1)) return;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (h) {
      const base = slug(h[1] as string);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of l.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(a[1] as string);
  });
  return out;
}

/** A relative link of a markdown file: where it points and where it was written. */
export interface Link {
  line: number;
  target: string;
}

/** Relative links (inline, images and reference definitions) outside code. */
export function relativeLinks(md: Markdown): Link[] {
  const out: Link[] = [];
  for (const { line, text } of md.prose) {
    for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
      out.push({ line, target: m[1] as string });
    const ref = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(text);
    if (ref) out.push({ line, target: ref[1] as string });
  }
  return out.filter((l) => !/^(?:[a-z][a-z0-9+.-]*:|\/\/)/i.test(l.target));
}

/** Why a relative link is broken, or undefined when the file (and heading) exist. */
export function brokenLink(
  from: string,
  target: string,
  anchorsOf: (path: string) => Set<string>,
): string | undefined {
  const [rawPath, anchor] = target.split('#', 2) as [string, string | undefined];
  const path = decodeURIComponent(rawPath);
  const file = path === '' ? join(ROOT, from) : resolve(dirname(join(ROOT, from)), path);
  if (!file.startsWith(ROOT)) return `${target} leaves the repository`;
  if (!existsSync(file)) return `${target}: no file ${relative(ROOT, file)}`;
  if (anchor === undefined || anchor === '') return undefined;
  if (!file.endsWith('.md') || statSync(file).isDirectory()) return undefined;
  const have = anchorsOf(relative(ROOT, file));
  if (!have.has(decodeURIComponent(anchor).toLowerCase()))
    return `${target}: no heading #${anchor} in ${relative(ROOT, file)}`;
  return undefined;
}
