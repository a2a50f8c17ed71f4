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

/** Serialize a value to its stored JSON text, enforcing the size limit (PAYLOAD_TOO_LARGE). */
export function serializeValue(value: unknown, maxBytes: number): string {
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
