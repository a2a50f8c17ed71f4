import secureJson from 'secure-json-parse';
import { DcacheError } from '../errors.js';

// Prototype poisoning (`__proto__`, `constructor.prototype`) is refused, not stripped.
const PARSE_OPTS = { protoAction: 'error', constructorAction: 'error' } as const;

/**
 * Parse a JSON request body, for every route and front end (Fastify's parser of
 * `application/json` is this function too). Throws INVALID_JSON for an empty body, bad JSON or
 * a poisoned prototype.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0)
    throw new DcacheError(
      'INVALID_JSON',
      "Body cannot be empty when content-type is set to 'application/json'",
    );
  try {
    return secureJson.parse(text, undefined, PARSE_OPTS);
  } catch {
    throw new DcacheError(
      'INVALID_JSON',
      "Body is not valid JSON but content-type is set to 'application/json'",
    );
  }
}
