import { type Res, request } from './helpers.js';

/** A curl command line reduced to what it sends. */
export interface CurlRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** Split a shell command into words: quotes, backslash-newline continuations, `$VAR` in double quotes. */
function words(cmd: string, vars: Record<string, string>): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  const s = cmd.replace(/\\\r?\n/g, ' ');
  const expand = (name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`curl example uses $${name}, which the test does not set`);
    return v;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in ${cmd}`);
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) {
          cur += s[i + 1];
          i += 2;
        } else if (s[i] === '$') {
          const m = /^\$\{?([A-Z_][A-Z0-9_]*)\}?/.exec(s.slice(i));
          if (!m) throw new Error(`bad $ in ${cmd}`);
          cur += expand(m[1] as string);
          i += m[0].length;
        } else {
          cur += s[i];
          i++;
        }
      }
      if (i >= s.length) throw new Error(`unterminated " in ${cmd}`);
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else if (c === '$') {
      const m = /^\$\{?([A-Z_][A-Z0-9_]*)\}?/.exec(s.slice(i));
      if (!m) throw new Error(`bad $ in ${cmd}`);
      cur += expand(m[1] as string);
      i += m[0].length - 1;
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/**
 * Parse the curl options the docs use (-X, -H, -d/--data/--data-raw, -I, -i, -s, -S, -f);
 * anything else throws, so an example cannot silently drift from what the test sends.
 */
export function parseCurl(cmd: string, vars: Record<string, string> = {}): CurlRequest {
  const w = words(cmd.trim(), vars);
  if (w[0] !== 'curl') throw new Error(`not a curl command: ${cmd}`);
  let method: string | undefined;
  let url: string | undefined;
  let body: string | undefined;
  let head = false;
  const headers: Record<string, string> = {};
  for (let i = 1; i < w.length; i++) {
    const a = w[i] as string;
    const next = () => {
      const v = w[++i];
      if (v === undefined) throw new Error(`${a} needs a value in ${cmd}`);
      return v;
    };
    if (a === '-X' || a === '--request') method = next();
    else if (a === '-H' || a === '--header') {
      const h = next();
      const colon = h.indexOf(':');
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (a === '-d' || a === '--data' || a === '--data-raw') body = next();
    else if (a === '-I' || a === '--head') head = true;
    else if (['-i', '-s', '-S', '-sS', '-f', '--fail', '--silent', '--show-error'].includes(a)) {
      // output formatting only
    } else if (a.startsWith('-')) throw new Error(`unsupported curl option ${a} in ${cmd}`);
    else if (url === undefined) url = a;
    else throw new Error(`two URLs in ${cmd}`);
  }
  if (url === undefined) throw new Error(`no URL in ${cmd}`);
  if (body !== undefined) headers['content-type'] ??= 'application/x-www-form-urlencoded';
  return {
    method: method ?? (head ? 'HEAD' : body !== undefined ? 'POST' : 'GET'),
    url,
    headers,
    body,
  };
}

/** Send a curl command to `base` instead of the host it names (http://localhost:8080 in docs). */
export function runCurl(
  cmd: string,
  base: string,
  vars: Record<string, string> = {},
): Promise<Res> {
  const c = parseCurl(cmd, vars);
  const u = new URL(c.url);
  return request(base, c.method, u.pathname + u.search, {
    headers: c.headers,
    ...(c.body !== undefined ? { body: c.body } : {}),
  });
}
