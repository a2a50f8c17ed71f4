import { parseDuration } from './duration.js';
import { DcacheError } from './errors.js';

/** Longest TTL accepted: 365 days. */
export const MAX_TTL_MS = 365 * 86_400_000;

/** Validate a key: 1..maxBytes of well-formed UTF-8; throws INVALID_KEY. */
export function checkKey(key: unknown, maxBytes: number): string {
  if (typeof key !== 'string' || key.length === 0)
    throw new DcacheError('INVALID_KEY', 'the key is empty');
  if (!key.isWellFormed()) throw new DcacheError('INVALID_KEY', 'the key is not valid UTF-8');
  // Fast path: a JS string of n UTF-16 units is at most 3n UTF-8 bytes.
  if (key.length * 3 > maxBytes && Buffer.byteLength(key) > maxBytes) {
    throw new DcacheError('INVALID_KEY', `the key is longer than ${maxBytes} bytes`);
  }
  return key;
}

/** TTL in ms from a duration string or a number of seconds; undefined → `def`; throws INVALID_TTL. */
export function checkTtl(ttl: unknown, def: number): number {
  if (ttl === undefined || ttl === null) return def;
  const ms = parseDuration(ttl);
  if (ms === undefined || (typeof ttl === 'number' && ttl < 0)) {
    throw new DcacheError(
      'INVALID_TTL',
      `ttl ${JSON.stringify(ttl)} is not a duration such as "500ms", "30s", "1h30m" or a number of seconds`,
    );
  }
  if (ms > MAX_TTL_MS) throw new DcacheError('INVALID_TTL', 'ttl is longer than 365 days');
  if (ms === 0 && typeof ttl === 'number' && ttl > 0)
    throw new DcacheError(
      'INVALID_TTL',
      `ttl ${ttl} s rounds to 0 ms, which would mean no expiry; the shortest TTL is 1 ms (0.001)`,
    );
  if (
    ms === 0 &&
    ttl !== 0 &&
    ttl !== '0' &&
    typeof ttl === 'string' &&
    !/^0+(\.0+)?(ms|s|m|h|d)?$/.test(ttl.trim())
  ) {
    throw new DcacheError('INVALID_TTL', `ttl ${JSON.stringify(ttl)} rounds to zero`);
  }
  return ms;
}

/** Default deepest nesting of a value (DC_LIMITS_MAX_VALUE_DEPTH). */
export const DEFAULT_MAX_DEPTH = 64;

/**
 * Throws VALUE_TOO_DEEP when `value` nests arrays or objects deeper than `maxDepth` (a scalar
 * is depth 0, `[1]` depth 1). Iterative: JSON.stringify recurses and would overflow the stack
 * on a value parsed from a few kilobytes of brackets, which must be a 400, never a 500.
 */
export function checkDepth(value: unknown, maxDepth: number): void {
  if (typeof value !== 'object' || value === null) return;
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const v = stack.pop() as object;
    const d = depths.pop() as number;
    if (d > maxDepth)
      throw new DcacheError(
        'VALUE_TOO_DEEP',
        `the value nests arrays or objects more than ${maxDepth} levels deep (DC_LIMITS_MAX_VALUE_DEPTH)`,
      );
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) {
      if (typeof c === 'object' && c !== null) {
        stack.push(c);
        depths.push(d + 1);
      }
    }
  }
}

/** Serialize a value to its stored JSON text, enforcing the size limit (PAYLOAD_TOO_LARGE). */
export function serializeValue(
  value: unknown,
  maxBytes: number,
  maxDepth = DEFAULT_MAX_DEPTH,
): string {
  checkDepth(value, maxDepth);
  const text = JSON.stringify(value);
  if (text === undefined) throw new DcacheError('MISSING_VALUE');
  if (
    text.length > maxBytes ||
    (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes)
  ) {
    throw new DcacheError('PAYLOAD_TOO_LARGE', `the value is larger than ${maxBytes} bytes`);
  }
  return text;
}

/** A plain JSON object (not null, not an array), or throws INVALID_BODY. */
export function checkObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new DcacheError('INVALID_BODY', `${what} must be a JSON object`);
  }
  return body as Record<string, unknown>;
}

/** A `keys` array of a batch body, validated and bounded; throws INVALID_BODY/BATCH_TOO_LARGE/INVALID_KEY. */
export function checkKeyList(body: unknown, maxKeys: number, maxKeyBytes: number): string[] {
  const obj = checkObject(body, 'the body');
  const keys = obj.keys;
  if (!Array.isArray(keys))
    throw new DcacheError('INVALID_BODY', 'the body must be {"keys": [...]}');
  if (keys.length > maxKeys)
    throw new DcacheError('BATCH_TOO_LARGE', `${keys.length} keys; at most ${maxKeys} per batch`);
  for (const k of keys) {
    if (typeof k !== 'string') throw new DcacheError('INVALID_KEY', 'every key must be a string');
    checkKey(k, maxKeyBytes);
  }
  return keys as string[];
}

/** First characters JSON text can start with: { [ " - 0-9 t f n. */
const JSON_START = /^[[{"\-0-9tfn]/;

/**
 * A stored value as JSON text for a REST answer. Values the REST API stored are JSON already and
 * are spliced in as they are; one written another way (a RESP client, a tool talking to the node)
 * that is not JSON is answered as a JSON string of its text. `strict` (the RESP front end is on,
 * so any bytes may be stored) checks with a full parse; otherwise the first character decides.
 */
export function asJsonText(raw: string, strict: boolean): string {
  if (!JSON_START.test(raw)) return JSON.stringify(raw);
  if (!strict) return raw;
  try {
    JSON.parse(raw);
    return raw;
  } catch {
    return JSON.stringify(raw);
  }
}
