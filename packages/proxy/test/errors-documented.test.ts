import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { codeOf } from '../src/app.js';
import { DcacheError, ERROR_CODES, ERRORS, type ErrorCode, errorBody } from '../src/errors.js';

const SRC = fileURLToPath(new URL('../src', import.meta.url));
const API_MD = fileURLToPath(new URL('../../../docs/api.md', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

/**
 * Codes the source emits, found where a code is chosen: `new DcacheError('X'`, `code: 'X'`,
 * `failed[k] = 'X'`, `?? 'X'` fallbacks and the framework-error map `FST_ERR_…: 'X'`.
 */
function emittedCodes(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const patterns = [
    /new DcacheError\(\s*'([A-Z_]+)'/g,
    /\bcode:\s*'([A-Z_]+)'/g,
    /failed\[[^\]]+\]\s*=\s*'([A-Z_]+)'/g,
    /\?\?\s*'([A-Z_]+)'/g,
    /\bFST_ERR_[A-Z_]+:\s*'([A-Z_]+)'/g,
  ];
  for (const file of sources(SRC)) {
    if (file.endsWith('errors.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        const code = m[1] as string;
        const where = `${file.slice(SRC.length + 1)}:${text.slice(0, m.index).split('\n').length}`;
        found.set(code, [...(found.get(code) ?? []), where]);
      }
    }
  }
  return found;
}

/** `| \`CODE\` | 400 | … |` rows of the catalogue table in docs/api.md. */
function documented(): Map<string, number> {
  const md = readFileSync(API_MD, 'utf8');
  const section = md.slice(md.indexOf('## Error catalogue'));
  const rows = new Map<string, number>();
  for (const m of section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)) {
    rows.set(m[1] as string, Number(m[2]));
  }
  return rows;
}

describe('error catalogue', () => {
  it('every code of ERRORS is in docs/api.md with its HTTP status, and nothing else is', () => {
    const rows = documented();
    for (const code of ERROR_CODES) {
      expect(rows.get(code), `${code} in docs/api.md`).toBe(ERRORS[code].status);
    }
    expect([...rows.keys()].sort()).toEqual([...ERROR_CODES].sort());
  });

  it('every code the source emits is in the catalogue', () => {
    const found = emittedCodes();
    // The scan must see the codes of the data path, or it proves nothing.
    for (const c of ['INVALID_KEY', 'INVALID_TTL', 'KEY_NOT_FOUND', 'NO_NODES', 'ALL_FAILED'])
      expect(found.has(c), c).toBe(true);
    expect(found.size).toBeGreaterThan(15);
    for (const [code, where] of found) {
      expect(Object.hasOwn(ERRORS, code), `${code} at ${where.join(', ')}`).toBe(true);
    }
  });

  it('codes are typed: DcacheError takes only catalogue codes', () => {
    expectTypeOf<ConstructorParameters<typeof DcacheError>[0]>().toEqualTypeOf<ErrorCode>();
    expectTypeOf(errorBody).parameter(0).toEqualTypeOf<ErrorCode>();
    // Never called: the compiler refuses a code outside the catalogue.
    // @ts-expect-error NOT_A_CODE is not an ErrorCode
    const outside = () => new DcacheError('NOT_A_CODE');
    expectTypeOf(outside).toBeFunction();
    const e = new DcacheError('BATCH_TOO_LARGE');
    expect(e.status).toBe(400);
    expect(e.message).toBe(ERRORS.BATCH_TOO_LARGE.message);
  });

  it('every status is an HTTP error status and codes are SCREAMING_SNAKE_CASE', () => {
    for (const code of ERROR_CODES) {
      expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
      expect(ERRORS[code].status).toBeGreaterThanOrEqual(400);
      expect(ERRORS[code].status).toBeLessThan(600);
      expect(ERRORS[code].message).not.toBe('');
    }
  });

  it('maps framework errors to catalogue codes, and anything unknown to INTERNAL', () => {
    expect(codeOf({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', message: 'x' }).code).toBe(
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect(codeOf({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: 'x' }).code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
    expect(codeOf({ code: 'FST_ERR_BAD_URL', message: 'x' }).code).toBe('INVALID_KEY');
    expect(codeOf(new SyntaxError('Unexpected token')).code).toBe('INVALID_JSON');
    expect(codeOf({ statusCode: 429, message: 'x' }).code).toBe('RATE_LIMITED');
    expect(codeOf({ statusCode: 418, message: 'x' }).code).toBe('BAD_REQUEST');
    expect(codeOf(new Error('boom')).code).toBe('INTERNAL');
  });
});
